"""Checks on image bytes before they are decoded: an image cut off part-way, and an image whose
header claims more pixels than the limit (a decompression bomb), refused from the header alone."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ImageError

DEFAULT_MAX_PIXELS = 256_000_000  # 256 MP: a 16000×16000 scan fits, a 60000×60000 bomb does not


@dataclass(frozen=True)
class Limits:
    """What an input may be: at most ``max_pixels`` pixels, and whole unless ``allow_truncated``."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_truncated: bool = False


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """``(width, height)`` as the header states it, for PNG, JPEG, GIF, BMP and WebP; None where
    the header does not say (or is unreadable: the decoder then reports the file)."""
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "gif":
            return struct.unpack("<HH", data[6:10])
        if fmt == "bmp":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
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


def is_truncated(data: bytes, fmt: str) -> bool:
    """True when a JPEG has no end-of-image marker near its end, a PNG no IEND chunk, or a WebP
    fewer bytes than its RIFF header promises."""
    if fmt == "jpeg":
        return b"\xff\xd9" not in data[-65536:]
    if fmt == "png":
        return b"IEND" not in data[-4096:]
    if fmt == "webp":
        return len(data) < 8 + struct.unpack("<I", data[4:8])[0]
    return False


def check_size(data: bytes, name: str, fmt: str, limits: Limits) -> None:
    """Refuse, before decoding, an image whose header claims more than ``limits.max_pixels``."""
    size = header_size(data, fmt)
    if size is not None and size[0] * size[1] > limits.max_pixels:
        raise ImageError(
            f"input {name}: {size[0]}×{size[1]} is {size[0] * size[1] / 1e6:.0f} MP, over the limit of "
            f"{limits.max_pixels / 1e6:g} MP; raise it with --max-pixels if the image is real"
        )


def truncated_error(name: str, fmt: str) -> ImageError:
    """The error for a cut-off file."""
    return ImageError(f"input {name}: the {fmt.upper()} file is cut off; --allow-truncated decodes what is there")
