"""What an image file says about itself before any decoder sees it: its format, from its first
bytes, and its width and height, from its header.

Every format OpenCV decodes has a parser here, and a file whose format is not named here is never
handed to a decoder: so no decoder allocates for a size that was not checked first. Where a
header can state its size in more than one place (a JPEG 2000's ``ihdr`` box and its codestream,
a TIFF tag given twice), the largest is taken; numbers are read as the decoder reads them.
"""

from __future__ import annotations

import re
import struct

HEAD_BYTES = 1 << 20  # where a header's size fields must be found; image data follows them
JPEG_HEAD_BYTES = 32 << 20  # a JPEG's frame header comes after at most this much metadata (ICC, EXIF, XMP)
# a JPEG 2000 decoder sets up every tile of every component from the header alone, about 1 KiB
# each or more (a 380-byte file of 65,535 tiles × 100 components took 7.5 GB): at most this many
MAX_TILE_COMPONENTS = 1 << 16


class HeaderRefused(Exception):
    """A header whose file is not decoded whatever its size, with the reason."""


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"\x93NUMPY", "npy"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
    (b"\xff\x4f\xff\x51", "jp2"),  # a bare JPEG 2000 codestream
    (b"#?RADIANCE", "hdr"),
    (b"#?RGBE", "hdr"),
    (b"\x59\xa6\x6a\x95", "sunras"),
    (b"P7", "pam"),
)


def detect_format(data: bytes) -> str | None:
    """Name the image format of ``data`` from its first bytes, or ``None``.

    >>> detect_format(b"\\x89PNG\\r\\n\\x1a\\n....")
    'png'
    >>> detect_format(b"P6\\n2 2\\n255\\n")
    'pnm'
    """
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "avif"  # and HEIF and the other ISO media files: none is decoded (see _avif)
    if len(head) > 2 and head[:1] == b"P" and head[2:3].isspace():
        if head[1:2] in b"123456":
            return "pnm"
        if head[1:2] in b"Ff":
            return "pfm"
    return next((fmt for signature, fmt in _SIGNATURES if head.startswith(signature)), None)


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """``(width, height)`` as the header of ``fmt`` states it; None where it does not say within
    its first ``HEAD_BYTES`` (or says it in a form the parser does not read). A header that
    is refused whatever it states raises ``HeaderRefused``."""
    parser = _PARSERS.get(fmt)
    if parser is None:
        return None
    try:
        # a JPEG's or a TIFF's size may come after megabytes of metadata
        return parser(data if fmt == "tiff" else data[: JPEG_HEAD_BYTES if fmt == "jpeg" else HEAD_BYTES])
    except (struct.error, ValueError, IndexError, SyntaxError):
        return None


def _png(data: bytes) -> tuple[int, int] | None:
    return struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None


def _gif(data: bytes) -> tuple[int, int] | None:
    """The logical screen, or the first frame where it reaches beyond the screen."""
    width, height = struct.unpack("<HH", data[6:10])
    for kind, position in _gif_blocks(data):
        if kind == 0x2C:
            left, top, frame_width, frame_height = struct.unpack("<HHHH", data[position + 1 : position + 9])
            return max(width, left + frame_width), max(height, top + frame_height)
    return width, height


def _gif_blocks(data: bytes):
    """``(kind, position)`` of each extension (0x21) and image (0x2C) block of a GIF, in order,
    stepping over colour tables and data sub-blocks by their lengths."""
    position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while position < len(data) and data[position] in (0x21, 0x2C):
        kind = data[position]
        yield kind, position
        if kind == 0x2C:
            flags = data[position + 9]
            position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # + LZW code size
        else:
            position += 2
        while position < len(data) and data[position]:  # data sub-blocks, ended by an empty one
            position += 1 + data[position]
        position += 1


def count_frames(data: bytes, fmt: str) -> int:
    """How many frames (GIF) or pages (TIFF) ``data`` holds, read from the block structure
    alone: nothing is decoded, so a file of 100,000 tiny pages is counted at once."""
    try:
        if fmt == "gif":
            return max(1, sum(kind == 0x2C for kind, _ in _gif_blocks(data)))
        if fmt == "tiff":
            return max(1, _tiff_pages(data))
    except (struct.error, IndexError):
        pass
    return 1


def _tiff_pages(data: bytes) -> int:
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    pointer, count_format, entry_size = (8, "Q", 20) if big else (4, "H", 12)
    pointer_format = order + ("Q" if big else "I")
    seen = set()
    while True:
        offset = struct.unpack(pointer_format, data[pointer : pointer + struct.calcsize(pointer_format)])[0]
        if offset == 0 or offset in seen or offset >= len(data):
            return len(seen)
        seen.add(offset)
        count_size = struct.calcsize(count_format)
        count = struct.unpack(order + count_format, data[offset : offset + count_size])[0]
        pointer = offset + count_size + count * entry_size


def _bmp(data: bytes) -> tuple[int, int] | None:
    if struct.unpack("<I", data[14:18])[0] == 12:  # the old OS/2 header: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The first start-of-frame, found as libjpeg finds it: bytes that are not a marker are
    skipped (libjpeg warns and goes on), segments are stepped over by their lengths."""
    position = 2
    while position + 1 < len(data):
        if data[position] != 0xFF:
            position = data.find(b"\xff", position)
            if position < 0:
                return None
            continue
        marker = data[position + 1]
        if marker in (0xFF, 0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # fill, stuffing, markers without a length
            position += 1 if marker == 0xFF else 2
            continue
        if marker in (0xD9, 0xDA):  # the end, or a scan before any frame: there is no size
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def tiff_ifd_offset(data: bytes) -> int:
    """Where a TIFF's first directory (which states its size) begins."""
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    return struct.unpack(order + ("Q" if big else "I"), data[8:16] if big else data[4:8])[0]


def _tiff(data: bytes) -> tuple[int, int] | None:
    """Image width and length of the first page (the one decoded), classic TIFF or BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    offset = tiff_ifd_offset(data)
    count_format, entry_size = (order + "Q", 20) if big else (order + "H", 12)
    count_size = struct.calcsize(count_format)
    count = struct.unpack(count_format, data[offset : offset + count_size])[0]
    values = {}
    types = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    for index in range(min(count, 4096)):
        entry = offset + count_size + index * entry_size
        tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
        if tag in (256, 257) and kind in types:
            start = entry + (12 if big else 8)
            value = struct.unpack(order + types[kind], data[start : start + struct.calcsize(types[kind])])[0]
            values[tag] = max(values.get(tag, 0), value)  # given twice: decoders differ on which counts
    return (values[256], values[257]) if len(values) == 2 else None


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """``(type, payload start, payload end)`` of each ISO box (JPEG 2000, AVIF) in a range."""
    end = len(data) if end is None else min(end, len(data))
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:  # a 64-bit size follows
            size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif size == 0:  # to the end
            size = end - position
        if size < header:
            return
        yield kind, position + header, min(position + size, end)
        position += size


def _jp2(data: bytes) -> tuple[int, int] | None:
    """The largest size the ``ihdr`` box or the codestream's SIZ marker states; more than four
    components count as that many images (the decoder holds 32 bits for each sample)."""
    sizes = []
    for start, _ in _nested(data, (b"jp2h", b"ihdr")):
        height, width, components = struct.unpack(">IIH", data[start : start + 10])
        sizes.append((width * ((components + 3) // 4 or 1), height))
    codestreams = [start for start, _ in _nested(data, (b"jp2c",))]
    for start in codestreams if data[:4] != b"\xff\x4f\xff\x51" else [0]:
        if data[start : start + 4] == b"\xff\x4f\xff\x51":
            fields = struct.unpack(">HHIIIIIIIIH", data[start + 4 : start + 42])
            width, height, components = fields[2] - fields[4], fields[3] - fields[5], fields[10]
            sizes.append((abs(width) * ((components + 3) // 4 or 1), abs(height)))
            tile_width, tile_height, tile_left, tile_top = fields[6:10]
            across = -(-(fields[2] - tile_left) // max(1, tile_width))
            tiles = across * -(-(fields[3] - tile_top) // max(1, tile_height))
            if tiles * components > MAX_TILE_COMPONENTS:
                raise HeaderRefused(
                    f"its JPEG 2000 codestream has {tiles:,} tiles × {components:,} components, which a decoder "
                    f"sets up before decoding; more than {MAX_TILE_COMPONENTS:,} are not read"
                )
    return _largest(sizes)


def _largest(pairs) -> tuple[int, int] | None:
    sizes = [(int(width), int(height)) for width, height in pairs]
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def _hdr(data: bytes) -> tuple[int, int] | None:
    """Radiance: every resolution line in the header (a decoder reads one of them)."""
    return _largest((w, h) for h, w in re.findall(rb"-Y\s*\+?(\d+)\s*\+X\s*\+?(\d+)", data))


def _pnm(data: bytes) -> tuple[int, int] | None:
    """PBM/PGM/PPM: width and height read as OpenCV reads them: whitespace and ``#`` comments
    (to the end of the line) before a number, and the byte that ends a number swallowed."""
    position, numbers = 2, []
    while len(numbers) < 2:
        code = data[position]
        position += 1
        while not 0x30 <= code <= 0x39:
            if code == 0x23:  # '#': a comment to the end of the line
                while data[position] not in b"\n\r":
                    position += 1
                code, position = data[position + 1], position + 2
            elif chr(code).isspace():
                code, position = data[position], position + 1
            else:
                return None
        value = 0
        while 0x30 <= code <= 0x39:
            value = value * 10 + code - 0x30
            code, position = data[position], position + 1
        numbers.append(value)
    return numbers[0], numbers[1]


def _pfm(data: bytes) -> tuple[int, int] | None:
    """PFM: the first two words after the magic, each read as C's ``atoi`` reads it."""
    words = data[2:4096].split()[:2]
    numbers = [re.match(rb"[+-]?\d*", word).group() for word in words]
    if len(numbers) < 2 or not all(n.lstrip(b"+-") for n in numbers):
        return None
    return abs(int(numbers[0])), abs(int(numbers[1]))


def _pam(data: bytes) -> tuple[int, int] | None:
    """PAM: the largest WIDTH and HEIGHT lines, times the depth in fours."""
    header = re.sub(rb"#[^\n\r]*", b" ", data[:4096])
    fields = {
        key: max((int(value) for value in re.findall(key + rb"\s+(\d+)", header)), default=None)
        for key in (rb"WIDTH", rb"HEIGHT", rb"DEPTH")
    }
    if fields[rb"WIDTH"] is None or fields[rb"HEIGHT"] is None:
        return None
    return fields[rb"WIDTH"] * max(1, ((fields[rb"DEPTH"] or 1) + 3) // 4), fields[rb"HEIGHT"]


def _sunras(data: bytes) -> tuple[int, int] | None:
    return struct.unpack(">II", data[4:12])


def _avif(data: bytes) -> tuple[int, int] | None:
    """Never a size: an AVIF's (or HEIF's) boxes may state a small image while its coded frame is
    far larger, and the frame's own size is inside the compressed stream; it is not decoded."""
    raise HeaderRefused(
        "AVIF and HEIF files are not read (their size cannot be checked before decoding); convert to PNG first"
    )


def _nested(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None):
    """``(payload start, payload end)`` of each box reached by the box types of ``path``."""
    for kind, payload, payload_end in _boxes(data, start, end):
        if kind == path[0]:
            payload += 4 if kind == b"meta" else 0  # a full box: version and flags first
            if len(path) == 1:
                yield payload, payload_end
            else:
                yield from _nested(data, path[1:], payload, payload_end)


def _npy(data: bytes) -> tuple[int, int] | None:
    """A .npy image's shape (H, W) or (H, W, C), from its header; more than four channels count
    as that many images."""
    import io

    import numpy as np

    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape = read_header(stream)[0]
    if len(shape) not in (2, 3):
        return None
    channels = shape[2] if len(shape) == 3 else 1
    return shape[1] * ((channels + 3) // 4 or 1), shape[0]


_PARSERS = {
    "npy": _npy,
    "png": _png,
    "gif": _gif,
    "bmp": _bmp,
    "jpeg": _jpeg,
    "webp": _webp,
    "tiff": _tiff,
    "jp2": _jp2,
    "hdr": _hdr,
    "pnm": _pnm,
    "pfm": _pfm,
    "pam": _pam,
    "sunras": _sunras,
    "avif": _avif,
}
