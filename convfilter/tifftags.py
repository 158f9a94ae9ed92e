"""Metadata into a TIFF whose pixels OpenCV has already encoded, so that they are encoded once.

OpenCV writes the pixels (any depth, LZW with a predictor) and one directory of layout tags. The
metadata — the ICC profile, the resolution, the EXIF tags with their camera and GPS
sub-directories — is appended after the pixels, laid out by Pillow for its final place in the
file, and a new first directory is written after it: OpenCV's entries (their values stay where
they are) merged with the new ones, in tag order. The header then points at it; OpenCV's own
directory is left as a few unused bytes. Classic and BigTIFF files are handled alike.
"""

from __future__ import annotations

import struct

EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
# Tags of a first directory carried into a TIFF: those that describe the picture, not its pixels'
# layout (DocumentName, ImageDescription, Make, Model, Software, DateTime, Artist, HostComputer,
# Rating, RatingPercent, XMP, Copyright, IPTC, the Windows XP fields) and the EXIF and GPS
# directories. Any other (a private tag, SubIFDs, an SGI matte, Photoshop's layers) may describe
# pixels that are no longer there: left out, and named in a note.
DESCRIPTIVE_TAGS = frozenset({269, 270, 271, 272, 305, 306, 315, 316, 18246, 18249, 700, 33432, 33723,
                              *range(40091, 40096), EXIF_IFD, GPS_IFD})  # fmt: skip
POINTERS = frozenset({330, EXIF_IFD, GPS_IFD, INTEROP_IFD})  # SubIFDs, camera, GPS, interoperability
# an ImageDescription that is a layout: ImageJ's hyperstack header, tifffile's shape
LAYOUT_DESCRIPTIONS = ("ImageJ=", '{"shape":')


class Layout:
    """The sizes of one TIFF flavour's fields, read from its header."""

    def __init__(self, data: bytes) -> None:
        order = {b"II": "<", b"MM": ">"}.get(bytes(data[:2]))
        version = struct.unpack(order + "H", data[2:4])[0] if order else None
        if version not in (42, 43):
            raise ValueError("not a TIFF")
        self.order, self.big = order, version == 43
        self.count, self.offset = ("Q", "Q") if self.big else ("H", "L")
        self.entry = 20 if self.big else 12
        self.header_offset = 8 if self.big else 4  # where the first directory's offset is kept

    def unpack(self, fmt: str, data: bytes, at: int) -> int:
        """One number of ``fmt`` at ``at`` in ``data``."""
        return struct.unpack_from(self.order + fmt, data, at)[0]

    def pack(self, fmt: str, value: int) -> bytes:
        """One number as ``fmt``."""
        return struct.pack(self.order + fmt, value)

    def entries(self, data: bytes, at: int) -> tuple[dict[int, bytes], int]:
        """The raw entries of the directory at ``at`` by tag, and its next directory's offset."""
        count = self.unpack(self.count, data, at)
        start = at + struct.calcsize(self.count)
        raw = {
            self.unpack("H", data, start + i * self.entry): bytes(
                data[start + i * self.entry : start + (i + 1) * self.entry]
            )
            for i in range(count)
        }
        return raw, self.unpack(self.offset, data, start + count * self.entry)


def tiff_tags(meta) -> tuple[dict[int, object], list[int]]:
    """The tags ``meta`` adds to a TIFF's first directory — its EXIF's descriptive tags, its
    camera and GPS sub-directories as dictionaries, the ICC profile and the resolution in dots
    per inch — and the EXIF's other first-directory tags, left out (the orientation, already
    applied, and the resolution, carried on its own, are left out unnamed)."""
    from PIL import Image

    from .metadata import ICC_PROFILE, ORIENTATION, RESOLUTION_UNIT, X_RESOLUTION, Y_RESOLUTION

    tags: dict[int, object] = {}
    left_out = []
    if meta.exif:
        exif = Image.Exif()
        exif.load(b"Exif\0\0" + meta.exif)
        for tag, value in exif.items():
            if tag in (ORIENTATION, X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT):
                continue
            if tag not in DESCRIPTIVE_TAGS or (isinstance(value, str) and value.startswith(LAYOUT_DESCRIPTIONS)):
                left_out.append(tag)
                continue
            if tag in (EXIF_IFD, GPS_IFD) and not (value := _directory(exif, tag)):
                continue
            tags[tag] = value
    if meta.icc:
        tags[ICC_PROFILE] = meta.icc
    if meta.dpi:
        tags[X_RESOLUTION], tags[Y_RESOLUTION], tags[RESOLUTION_UNIT] = *meta.dpi, 2
    return tags, sorted(left_out)


def _directory(exif, tag: int) -> dict[int, object]:
    """The camera or GPS sub-directory of ``exif`` as a dictionary, the camera's interoperability
    directory nested in it, without what has no place there: pointers to other directories (one
    that loops back would bring the first directory's tags) and tags that lay out pixels."""
    from .metadata import TIFF_LAYOUT_TAGS

    def own(directory: dict) -> dict:
        return {k: v for k, v in directory.items() if k not in TIFF_LAYOUT_TAGS and k not in POINTERS}

    value = own(exif.get_ifd(tag))
    if tag == EXIF_IFD and INTEROP_IFD in exif.get_ifd(tag) and (interop := own(exif.get_ifd(INTEROP_IFD))):
        value[INTEROP_IFD] = interop
    return value


def tags_block(layout: Layout, tags: dict[int, object], at: int) -> bytes:
    """``tags`` as a directory laid out by Pillow to sit at offset ``at`` (its values and
    sub-directories follow it)."""
    from PIL import TiffImagePlugin

    header = {"<": b"II", ">": b"MM"}[layout.order] + layout.pack("H", 43 if layout.big else 42)
    header += (layout.pack("H", 8) + layout.pack("H", 0) + layout.pack("Q", 16)) if layout.big else layout.pack("L", 8)
    directory = TiffImagePlugin.ImageFileDirectory_v2(ifh=header)
    for tag, value in tags.items():
        directory[tag] = value
    return directory.tobytes(at)


def add_to_tiff(data, meta) -> list:
    """The pieces of a TIFF (OpenCV's ``data`` first, unchanged but for its header) that carries
    ``meta`` as well: write them one after another. Raises ValueError (or Pillow's errors) for
    a file or tag it cannot lay out."""
    tags, _ = tiff_tags(meta)
    if not tags:
        return [data]
    layout = Layout(data)
    first = layout.unpack(layout.offset, data, layout.header_offset)
    own, following = layout.entries(data, first)
    place = len(data) + len(data) % 2  # directories start on a word boundary
    block = tags_block(layout, tags, place)
    added, _ = layout.entries(block, 0)
    merged = {**own, **added}
    directory = place + len(block) + len(block) % 2
    new = layout.pack(layout.count, len(merged)) + b"".join(merged[tag] for tag in sorted(merged))
    new += layout.pack(layout.offset, following)
    head = bytearray(data[: layout.header_offset + struct.calcsize(layout.offset)])
    head[layout.header_offset :] = layout.pack(layout.offset, directory)
    pad = b"\0" * (len(data) % 2)
    return [bytes(head), memoryview(data)[len(head) :], pad, block, b"\0" * (len(block) % 2), new]
