"""Checks on image bytes before they are decoded: an image cut off part-way, an image whose
header claims more pixels than the limit (a decompression bomb), refused from the header alone,
and how many bytes an input may have before it is refused without being read further."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ImageError
from .headers import HEAD_BYTES, JPEG_HEAD_BYTES, HeaderRefused, detect_format, header_size, tiff_ifd_offset

# 128 MP: a 100 MP camera's photo fits, and its filtering fits in 4 GB of memory even with four
# 16-bit channels (about 24 bytes per pixel at the peak); a 60000×60000 bomb does not
DEFAULT_MAX_PIXELS = 128_000_000
# the most an image's file may hold per pixel its header states (four float32 channels, raw),
# plus room for metadata (ICC profiles, EXIF, thumbnails)
BYTES_PER_PIXEL = 16
METADATA_BYTES = 64 << 20


@dataclass(frozen=True)
class Limits:
    """What an input may be: at most ``max_pixels`` pixels, and whole unless ``allow_truncated``."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_truncated: bool = False


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
    """Refuse, before decoding, an image whose header claims more than ``limits.max_pixels``,
    or whose header states no size that can be checked."""
    try:
        size = header_size(data, fmt)
    except HeaderRefused as refused:
        raise ImageError(f"input {name}: {refused}") from None
    if size is None:
        raise ImageError(f"input {name}: not an image that can be decoded (its {fmt.upper()} header states no size)")
    if size[0] * size[1] > limits.max_pixels:
        raise ImageError(
            f"input {name}: {size[0]}×{size[1]} is {_megapixels(size[0] * size[1])} MP, over the limit of "
            f"{limits.max_pixels / 1e6:g} MP; raise it with --max-pixels if the image is real"
        )


def _megapixels(pixels: int) -> str:
    """``pixels`` in megapixels, whole from 10 up, to two figures below.

    >>> _megapixels(3_600_000_000), _megapixels(240_000), _megapixels(12_000_000)
    ('3600', '0.24', '12')
    """
    return f"{pixels / 1e6:.0f}" if pixels >= 10**7 else f"{pixels / 1e6:.2g}"


def byte_limit(head: bytes, limits: Limits) -> int:
    """How many bytes an input that begins with ``head`` may hold before reading stops: no more
    once it is known not to be an image or to be over the pixel limit (the decoder's checks then
    refuse it from what was read), else what its header's size (or the pixel limit) could fill."""
    fmt = detect_format(head)
    if fmt is None:
        return 0 if len(head) >= 16 else METADATA_BYTES
    try:
        size = header_size(head, fmt)
    except HeaderRefused:
        return 0
    most = limits.max_pixels * BYTES_PER_PIXEL + METADATA_BYTES
    if size is None:
        if fmt == "tiff" and len(head) >= 16:  # its size is in a directory that may follow the pixels
            directory = tiff_ifd_offset(head)
            return 0 if directory > most or len(head) > directory + HEAD_BYTES else most
        return 0 if len(head) > (JPEG_HEAD_BYTES if fmt == "jpeg" else HEAD_BYTES) else most
    if size[0] * size[1] > limits.max_pixels:
        return 0
    return size[0] * size[1] * BYTES_PER_PIXEL + METADATA_BYTES


def truncated_error(name: str, fmt: str) -> ImageError:
    """The error for a cut-off file."""
    return ImageError(f"input {name}: the {fmt.upper()} file is cut off; --allow-truncated decodes what is there")
