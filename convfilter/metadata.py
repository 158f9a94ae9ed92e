"""What an image carries besides pixels, read with Pillow and written back into the encoded
output: EXIF orientation (applied on reading, never written again), the ICC colour profile,
the rest of EXIF, and the resolution (DPI).

OpenCV encodes the pixels; the metadata is then spliced into the JPEG, PNG or WebP bytes as the
formats define it (APP1/APP2 segments, iCCP/eXIf/pHYs chunks, VP8X with ICCP/EXIF chunks), and
into a TIFF of any depth as tags of its first directory (``tifftags.py``), so the pixels are
encoded once. The result is a list of pieces to write one after another: the encoder's buffer
is one of them, never copied.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import warnings
import zlib
from dataclasses import dataclass, replace

import numpy as np

ORIENTATION, X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT, ICC_PROFILE = 0x0112, 282, 283, 296, 34675
# tags of a TIFF's first directory that describe its own pixels (sizes, strips, tiles, samples,
# compression, colour map) or hold its ICC profile
TIFF_LAYOUT_TAGS = (254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 292, 293)
TIFF_LAYOUT_TAGS += (285, 297, 317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 530, 531, 532, 34675)
JPEG_SEGMENT = 65533  # the most a JPEG segment's payload holds
JPEG_EXIF_BYTES = JPEG_SEGMENT - len(b"Exif\0\0")
JPEG_ICC_PIECE = JPEG_SEGMENT - len(b"ICC_PROFILE\0") - 2  # a sequence number and a count
JPEG_ICC_BYTES = 255 * JPEG_ICC_PIECE


@dataclass(frozen=True)
class Metadata:
    """The metadata worth keeping: ``exif`` is TIFF-structured EXIF without the orientation."""

    orientation: int = 1
    icc: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()  # what was read but cannot be carried, said once written


def might_have_metadata(data: bytes, fmt: str) -> bool:
    """A quick look at the header for anything worth reading, so that plain files (most JPEGs
    straight from OpenCV or a converter) are not opened a second time."""
    if fmt == "jpeg":
        head = data[: max(0, data.find(b"\xff\xda")) or 65536]
        jfif_units = head[13] if head[6:11] == b"JFIF\0" and len(head) > 13 else 0
        return b"Exif\0\0" in head or b"ICC_PROFILE\0" in head or jfif_units != 0
    if fmt == "png":
        head = data[: max(0, data.find(b"IDAT")) or 65536]
        return any(kind in head for kind in (b"iCCP", b"eXIf", b"pHYs"))
    if fmt == "webp":
        return data[12:16] == b"VP8X"
    return fmt == "tiff"


def read_metadata(data: bytes) -> Metadata:
    """The metadata of encoded image bytes; an image Pillow cannot open has none, and a part that
    does not parse (a malformed EXIF tag, a resolution of 1/0) is left out on its own."""
    from PIL import Image, UnidentifiedImageError

    try:
        with pillow_without_size_limit(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings on odd tags: the tags are dropped, not printed
            if bytes(data[:4]) in (b"II*\0", b"MM\0*"):
                return _tiff_metadata(data)
            with Image.open(io.BytesIO(data)) as image:
                if image.format == "PNG":  # Pillow's PNG getexif() decodes every pixel to look past them
                    exif = Image.Exif()
                    exif.load(image.info.get("exif") or b"")
                else:
                    exif = image.getexif()
                icc = image.info.get("icc_profile")
                return _metadata(exif, icc, image.info.get("dpi"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
        return Metadata()


def _tiff_metadata(data: bytes) -> Metadata:
    """A TIFF's metadata from the tags of its first directory, read as EXIF is (Pillow opens
    no TIFF of 16-bit colour or float pixels as an image, but reads the tags of any)."""
    from PIL import Image

    exif = Image.Exif()
    exif.load_from_fp(io.BytesIO(data))  # the camera and GPS sub-directories are read from it on demand
    dpi = _tiff_dpi(exif.get(X_RESOLUTION), exif.get(Y_RESOLUTION), exif.get(RESOLUTION_UNIT))
    icc = exif.get(ICC_PROFILE)
    # the tags that lay out the TIFF's own pixels, and its ICC profile (carried on its own), do
    # not belong in another file's EXIF
    for tag in TIFF_LAYOUT_TAGS:
        exif.pop(tag, None)
    return _metadata(exif, icc, dpi)


def _tiff_dpi(x: object, y: object, unit: object) -> tuple[float, float] | None:
    """A TIFF's resolution in dots per inch: none without both values or with a unit other than
    inches (2, or none given) and centimetres (3), or with values that are not numbers."""
    if x is None or y is None or unit not in (None, 2, 3):
        return None
    try:
        factor = 2.54 if unit == 3 else 1.0
        return _dpi((float(x) * factor, float(y) * factor))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _metadata(exif, icc: object, dpi: object) -> Metadata:
    """The ``Metadata`` of an image's EXIF (less its orientation, which is returned on its own),
    ICC profile and resolution, each as read, each left out on its own where it does not parse."""
    orientation = exif.pop(ORIENTATION, 1)
    exif_bytes, notes = _exif_bytes(exif)
    return Metadata(
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
        icc=icc if isinstance(icc, bytes) and icc else None,
        exif=exif_bytes,
        dpi=_dpi(dpi),
        notes=notes,
    )


def _exif_bytes(exif) -> tuple[bytes | None, tuple[str, ...]]:
    """EXIF as classic TIFF-structured bytes without the ``Exif\\0\\0`` header (None for none),
    and notes: a tag Pillow reads but cannot write back (a date stored as a fraction) is left
    out on its own and named; the EXIF as a whole only where it still cannot be written."""
    from PIL import ExifTags, TiffImagePlugin

    exif.bigtiff = False  # a BigTIFF's tags are written back as classic EXIF, which every reader takes
    if not len(exif):
        return None, ()

    def writable(tag: int, value: object, group: int | None) -> bool:
        probe = TiffImagePlugin.ImageFileDirectory_v2(group=group)
        try:
            probe[tag] = value
            probe.tobytes(8)
        except Exception:  # Pillow raises many kinds here (TypeError, AttributeError, OverflowError, …)
            return False
        return True

    left_out = []
    try:
        return exif.tobytes()[6:], ()
    except Exception:
        pointers = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)
        directories = [(None, exif)] + [(tag, exif.get_ifd(tag)) for tag in pointers if tag in exif]
        for group, directory in directories:
            for tag, value in list(directory.items()):
                if tag not in pointers and tag != ExifTags.IFD.Interop and not writable(tag, value, group):
                    del directory[tag]
                    name = (ExifTags.GPSTAGS if group == ExifTags.IFD.GPSInfo else ExifTags.TAGS).get(tag, "tag")
                    left_out.append(f"{name} ({tag})")
    try:
        data = exif.tobytes()[6:]
    except Exception:
        return None, ("the EXIF data cannot be written back: left out",)
    return data, (f"EXIF tags that cannot be written back are left out: {', '.join(left_out)}",) if left_out else ()


def _dpi(value: object) -> tuple[float, float] | None:
    """A resolution worth carrying: two finite numbers from 1 to 65535 dots per inch."""
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return (x, y) if all(math.isfinite(v) and 1 <= v <= 65535 for v in (x, y)) else None


@contextlib.contextmanager
def pillow_without_size_limit():
    """Pillow's own limits off (the decompression-bomb check: a warning from 89 MP, an error from
    179 MP; a PNG text chunk over 1 MB), for bytes whose size ``guards.check_size`` and
    ``guards.byte_limit`` have already bounded."""
    from PIL import Image, PngImagePlugin

    previous = Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    # a PNG's iCCP chunk over 1 MB is refused by Pillow, and every other part with it
    Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY = None, 1 << 30, 1 << 30
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY = previous


def fit_metadata(meta: Metadata, fmt: str) -> tuple[Metadata, tuple[str, ...]]:
    """``meta`` without what ``fmt`` cannot carry, and a note for each part left out: a JPEG
    holds EXIF in one 64 KiB segment and an ICC profile in at most 255 of them; a TIFF holds
    EXIF whose tags Pillow can lay out."""
    notes, meta = list(meta.notes), replace(meta, notes=())
    if fmt == "jpeg" and meta.exif and len(meta.exif) > JPEG_EXIF_BYTES:
        notes.append(f"the EXIF data ({len(meta.exif):,} bytes) is over the {JPEG_EXIF_BYTES:,} a JPEG holds: left out")
        meta = replace(meta, exif=None)
    if fmt == "jpeg" and meta.icc and len(meta.icc) > JPEG_ICC_BYTES:
        notes.append(f"the ICC profile ({len(meta.icc):,} bytes) is over the {JPEG_ICC_BYTES:,} a JPEG holds: left out")
        meta = replace(meta, icc=None)
    if fmt == "tiff" and meta.exif:
        from .tifftags import Layout, tags_block, tiff_tags

        tags, not_carried = tiff_tags(meta)
        if not_carried:
            notes.append(
                f"TIFF tags not carried into the output: {', '.join(map(str, not_carried))} (only descriptive tags, "
                "EXIF, GPS, the ICC profile and the resolution are)"
            )
        try:  # laid out once here, where a tag Pillow cannot write can still be left out with a note
            tags_block(Layout(b"II*\0\0\0\0\0"), tags, 8)
        except Exception:  # Pillow raises many kinds on odd tags (TypeError, ValueError, struct.error, …)
            notes.append("the EXIF data cannot be written into a TIFF: left out")
            meta = replace(meta, exif=None)
    return meta, tuple(notes)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` upright (as Pillow's ``exif_transpose``)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return pixels if transform is None else np.ascontiguousarray(transform(pixels))


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def add_to_jpeg(data, meta: Metadata) -> list:
    """Splice EXIF (APP1), the ICC profile (APP2, in 64 KiB pieces) and the DPI (JFIF APP0) into
    a JPEG right after its start; the pieces to write, ``data``'s bulk among them uncopied."""
    data = memoryview(data)
    assert data[:2] == b"\xff\xd8"
    rest = data[2:]
    head = b""
    if rest[:2] == b"\xff\xe0":  # keep APP0 first, as JFIF wants
        length = struct.unpack(">H", rest[2:4])[0]
        head, rest = bytes(rest[: 2 + length]), rest[2 + length :]
        if meta.dpi and head[4:9] == b"JFIF\0":
            x, y = (max(1, min(65535, round(v))) for v in meta.dpi)
            head = head[:11] + struct.pack(">BHH", 1, x, y) + head[16:]
    segments = b""
    if meta.exif:
        segments += _jpeg_segment(0xE1, b"Exif\0\0" + meta.exif)
    if meta.icc:
        pieces = [meta.icc[i : i + JPEG_ICC_PIECE] for i in range(0, len(meta.icc), JPEG_ICC_PIECE)]
        for index, piece in enumerate(pieces, 1):
            segments += _jpeg_segment(0xE2, b"ICC_PROFILE\0" + bytes([index, len(pieces)]) + piece)
    return [b"\xff\xd8" + head + segments, rest]


def add_to_png(data, meta: Metadata) -> list:
    """Insert iCCP, eXIf and pHYs chunks right after the PNG's IHDR; the pieces to write."""
    data = memoryview(data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
    chunks = b""
    if meta.icc:
        chunks += _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc))
    if meta.exif:
        chunks += _png_chunk(b"eXIf", meta.exif)
    if meta.dpi:
        x, y = (round(v / 0.0254) for v in meta.dpi)  # pixels per metre
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", x, y, 1))
    return [data[:ihdr_end], chunks, data[ihdr_end:]]


def add_to_webp(data, meta: Metadata, width: int, height: int, alpha: bool) -> list:
    """Wrap a simple WebP in the extended (VP8X) form with ICCP and EXIF chunks; the pieces to write."""
    data = memoryview(data)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    body = data[12:]
    if not (meta.icc or meta.exif):
        return [data]
    flags = (0x20 if meta.icc else 0) | (0x10 if alpha else 0) | (0x08 if meta.exif else 0)
    if body[:4] == b"VP8X":  # the encoder made it extended (for alpha): add to its flags
        flags |= struct.unpack("<I", body[8:12])[0]
        body = body[18:]  # the image's own chunks follow the 10-byte VP8X payload
    vp8x = struct.pack("<I", flags) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunks = _riff_chunk(b"VP8X", vp8x)
    if meta.icc:
        chunks += _riff_chunk(b"ICCP", meta.icc)
    tail = _riff_chunk(b"EXIF", meta.exif) if meta.exif else b""
    size = 4 + len(chunks) + len(body) + len(tail)
    return [b"RIFF" + struct.pack("<I", size) + b"WEBP" + chunks, body, tail]


def add_metadata(data, fmt: str, pixels: np.ndarray, meta: Metadata) -> list:
    """Put ``meta`` into the encoded ``data`` of ``pixels`` in format ``fmt``, where it fits:
    the pieces of the file to write one after another (``data`` itself is never copied)."""
    if meta == Metadata():
        return [data]
    if fmt == "jpeg":
        return add_to_jpeg(data, meta)
    if fmt == "png":
        return add_to_png(data, meta)
    if fmt == "webp":
        return add_to_webp(data, meta, pixels.shape[1], pixels.shape[0], pixels.shape[2] == 4)
    if fmt == "tiff":
        from .tifftags import add_to_tiff

        return add_to_tiff(data, meta)
    return [data]
