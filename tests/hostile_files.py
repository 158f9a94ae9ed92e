"""Small files whose headers claim huge images (decompression bombs), one per format a decoder
reads, built byte by byte here so that each is what it says: ``BOMBS`` maps a file name to
(bytes, the width×height its header claims)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np


def encoded(ext: str, pixels: np.ndarray) -> bytes:
    """``pixels`` as OpenCV encodes them in the format of ``ext``."""
    ok, data = cv2.imencode(ext, pixels)
    assert ok
    return data.tobytes()


def tiled_tiff(width: int, height: int, tile: int = 256) -> bytes:
    """A 16-bit gray tiled TIFF whose every tile is the same few deflated bytes."""
    tiles = -(-width // tile) * -(-height // tile)
    data = zlib.compress(bytes(2 * tile * tile), 9)
    offsets_at = 8
    counts_at = offsets_at + 4 * tiles
    data_at = counts_at + 4 * tiles
    ifd_at = data_at + len(data)
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 16),  # bits per sample
        (259, 3, 1, 8),  # deflate
        (262, 3, 1, 1),  # black is zero
        (277, 3, 1, 1),  # one sample
        (322, 3, 1, tile),
        (323, 3, 1, tile),
        (324, 4, tiles, offsets_at),
        (325, 4, tiles, counts_at),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", *entry) for entry in entries) + struct.pack("<I", 0)
    return (
        b"II*\x00"
        + struct.pack("<I", ifd_at)
        + struct.pack(f"<{tiles}I", *[data_at] * tiles)
        + struct.pack(f"<{tiles}I", *[len(data)] * tiles)
        + data
        + ifd
    )


def tiff_pages(pages: int) -> bytes:
    """A TIFF of ``pages`` 1×1 gray pages."""
    entries = 8
    ifd_size = 2 + 12 * entries + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 9) + b"\x80")
    for page in range(pages):
        at = 9 + page * ifd_size
        following = at + ifd_size if page < pages - 1 else 0
        out += struct.pack("<H", entries)
        for entry in ((256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)):
            out += struct.pack("<HHII", *entry)
        for entry in ((273, 4, 1, 8), (278, 3, 1, 1), (279, 4, 1, 1)):
            out += struct.pack("<HHII", *entry)
        out += struct.pack("<I", following)
    return bytes(out)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """A PNG chunk: length, type, payload and CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_of_zeros(width: int, height: int, bits: int = 16, colour: int = 6, chunks: bytes = b"") -> bytes:
    """A real PNG of ``width``×``height`` black pixels (16-bit RGBA unless ``bits`` and ``colour``
    say otherwise: 0 is gray), a few MB for 128 MP, with ``chunks`` before its data."""
    stream = zlib.compressobj(1)
    row = bytes(1 + width * bits // 8 * {0: 1, 2: 3, 4: 2, 6: 4}[colour])  # a filter byte, then the samples
    data = b"".join(stream.compress(row) for _ in range(height)) + stream.flush()
    header = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + chunks + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
    )


def _patched(data: bytes, find: bytes, replace: bytes) -> bytes:
    assert data.count(find) >= 1, find
    return data.replace(find, replace, 1)


def jpeg_with_stray_byte(width: int, height: int) -> bytes:
    """A real JPEG whose frame header claims ``width``×``height``, with one stray byte before it
    (which libjpeg skips with a warning)."""
    data = encoded(".jpg", np.zeros((8, 8, 3), np.uint8))
    sof = data.index(b"\xff\xc0")
    frame = bytearray(data[sof:])
    frame[5:9] = struct.pack(">HH", height, width)
    return data[:sof] + b"\x00" + bytes(frame)


def jp2(width: int, height: int) -> bytes:
    """A real JPEG 2000 file whose image header and codestream claim ``width``×``height``."""
    data = bytearray(encoded(".jp2", np.zeros((64, 64), np.uint8)))
    ihdr = data.index(b"ihdr") + 4
    data[ihdr : ihdr + 8] = struct.pack(">II", height, width)
    siz = data.index(b"\xff\x4f\xff\x51") + 8
    data[siz : siz + 8] = struct.pack(">II", width, height)
    return bytes(data)


def avif(width: int, height: int) -> bytes:
    """A real AVIF file whose spatial-extent property claims ``width``×``height`` (its coded
    frame is 8×8: the two need not agree)."""
    data = bytearray(encoded(".avif", np.zeros((8, 8, 3), np.uint8)))
    ispe = data.index(b"ispe") + 8
    data[ispe : ispe + 8] = struct.pack(">II", width, height)
    return bytes(data)


def j2k_tiles(width: int, height: int, tile: int, components: int) -> bytes:
    """A bare JPEG 2000 codestream of ``width``×``height`` in ``tile``×``tile`` tiles of
    ``components`` components: a few hundred bytes whose tile grid a decoder sets up first."""
    siz = (
        struct.pack(">HIIIIIIIIH", 0, width, height, 0, 0, tile, tile, 0, 0, components) + b"\x07\x01\x01" * components
    )
    cod = bytes([0, 0]) + struct.pack(">H", 1) + bytes([0, 0, 4, 4, 0, 1])
    qcd = bytes([0x40, 8 << 3])
    sot = struct.pack(">HIBB", 0, 14, 0, 1)
    return (
        b"\xff\x4f\xff\x51" + struct.pack(">H", len(siz) + 2) + siz
        + b"\xff\x52" + struct.pack(">H", len(cod) + 2) + cod
        + b"\xff\x5c" + struct.pack(">H", len(qcd) + 2) + qcd
        + b"\xff\x90" + struct.pack(">H", 10) + sot + b"\xff\x93\x00\x00\xff\xd9"
    )  # fmt: skip


def tiff_size_twice(first: tuple[int, int], second: tuple[int, int]) -> bytes:
    """A gray deflate TIFF that gives ImageWidth and ImageLength twice: ``first``, then ``second``
    (decoders keep the first); its one strip holds ``first``'s pixels."""
    width, height = first
    strip = zlib.compress(bytes(width * height), 9)
    entries = [(256, 4, 1, width), (257, 4, 1, height), (256, 4, 1, second[0]), (257, 4, 1, second[1])]
    entries += [(258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1)]
    entries += [(278, 4, 1, height), (279, 4, 1, len(strip))]
    ifd_size = 2 + 12 * len(entries) + 4
    entries[7] = (273, 4, 1, 8 + ifd_size)
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + strip


def gif_frame_beyond_screen(width: int, height: int) -> bytes:
    """A GIF whose screen is 1×1 and whose first frame is ``width``×``height``."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x44\x01\x00\x3b"
    )


def npy(shape: tuple[int, ...]) -> bytes:
    """A .npy header for a uint8 array of ``shape``, and no data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


BOMBS = {
    "bomb.jp2": (jp2(30000, 30000), "219,961 tiles × 1 components"),  # 64×64 tiles, as it was encoded
    "bomb-stray-byte.jpg": (jpeg_with_stray_byte(60000, 60000), "60000×60000"),
    "bomb.hdr": (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(64), "20000×20000"),
    "bomb-tiled.tif": (tiled_tiff(23000, 23000), "23000×23000"),
    "bomb.pgm": (b"P5\n# a comment\n30000 30000\n255\n" + bytes(64), "30000×30000"),
    "bomb.pfm": (b"PF\n20000 20000\n-1.0\n" + bytes(64), "20000×20000"),
    "bomb.pam": (b"P7\nWIDTH 30000\nHEIGHT 30000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + bytes(64), "30000"),
    "bomb.ras": (b"\x59\xa6\x6a\x95" + struct.pack(">7I", 30000, 30000, 24, 0, 1, 0, 0) + bytes(64), "30000×30000"),
    "bomb.avif": (avif(30000, 30000), "AVIF and HEIF files are not read"),
    "small-ispe.avif": (avif(16, 16), "AVIF and HEIF files are not read"),
    "tiles.j2k": (j2k_tiles(255, 257, 1, 100), "65,535 tiles × 100 components"),
    "one-tile.j2k": (j2k_tiles(30000, 30000, 30000, 3), "30000×30000 is 900 MP"),
    "tiles-rgb.j2k": (j2k_tiles(255, 257, 1, 3), "65,535 tiles × 3 components"),
    "size-twice.tif": (tiff_size_twice((12000, 12000), (16, 16)), "12000×12000 is 144 MP"),
    "hash-after-width.pgm": (b"P5 20000#11000\n255\n" + bytes(64), "20000×11000 is 220 MP"),
    "dot-in-width.pfm": (b"Pf\n20000.5 20000\n-1\n" + bytes(64), "20000×20000 is 400 MP"),
    "hash-in-width.pfm": (b"Pf\n20000# 20000\n-1\n" + bytes(64), "20000×20000 is 400 MP"),
    "bomb-frame.gif": (gif_frame_beyond_screen(65535, 65535), "65535×65535"),
    "bomb.webp": (
        b"RIFF\x24\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00" + bytes(4) + b"\xff\x3f\x00\xff\x3f\x00",
        "16384×16384",
    ),
    "bomb-os2.bmp": (b"BM" + bytes(12) + struct.pack("<IHHHH", 12, 65535, 65535, 1, 24), "65535×65535"),
    "bomb.npy": (npy((60000, 60000, 3)), "60000×60000"),
    "bomb-bigtiff.tif": (
        b"II+\x00\x08\x00\x00\x00"
        + struct.pack("<Q", 16)
        + struct.pack("<Q", 2)
        + struct.pack("<HHQQ", 256, 16, 1, 1 << 20)
        + struct.pack("<HHQQ", 257, 16, 1, 1 << 20)
        + bytes(8),
        "1048576×1048576",
    ),
}


def exif_tiff(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A little-endian TIFF structure holding one directory of ``(tag, type, count, value)``
    entries (values of more than 4 bytes placed after it): an EXIF payload, malformed at will."""
    base = 8 + 2 + 12 * len(entries) + 4
    directory, extra = b"", b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            directory += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            directory += struct.pack("<HHII", tag, kind, count, base + len(extra))
            extra += value
    return b"II*\x00" + struct.pack("<IH", 8, len(entries)) + directory + bytes(4) + extra


def tiff_with_exif(pixels: np.ndarray, entries: list, subs: dict[int, list]) -> bytes:
    """An uncompressed little-endian RGB TIFF of ``pixels`` whose first directory holds its
    layout tags, ``entries`` and a pointer to each directory of ``subs`` (``{pointer tag:
    entries}``), entries as for ``exif_tiff``: a camera's TIFF, sub-directories and all."""
    out = bytearray(b"II*\x00" + bytes(4))

    def directory(items) -> int:
        placed = []
        for tag, kind, count, value in items:
            if len(value) > 4:
                out.extend(bytes(len(out) % 2))
                placed.append((tag, kind, count, struct.pack("<I", len(out))))
                out.extend(value)
            else:
                placed.append((tag, kind, count, value.ljust(4, b"\0")))
        out.extend(bytes(len(out) % 2))
        at = len(out)
        out.extend(struct.pack("<H", len(placed)))
        for tag, kind, count, value in sorted(placed):
            out.extend(struct.pack("<HHI", tag, kind, count) + value)
        out.extend(bytes(4))
        return at

    height, width, _ = pixels.shape
    strip = len(out)
    out.extend(np.ascontiguousarray(pixels, np.uint8).tobytes())
    short, long = (lambda *v: struct.pack(f"<{len(v)}H", *v)), (lambda v: struct.pack("<I", v))
    layout = [(256, 3, 1, short(width)), (257, 3, 1, short(height)), (258, 3, 3, short(8, 8, 8)),
              (259, 3, 1, short(1)), (262, 3, 1, short(2)), (273, 4, 1, long(strip)), (277, 3, 1, short(3)),
              (278, 3, 1, short(height)), (279, 4, 1, long(pixels.size))]  # fmt: skip
    pointers = [(tag, 4, 1, long(directory(sub))) for tag, sub in subs.items()]
    out[4:8] = long(directory(layout + entries + pointers))
    return bytes(out)


def jpeg_with_exif(payload: bytes) -> bytes:
    """A real 8×8 JPEG carrying ``payload`` as its EXIF (APP1) segment."""
    data = encoded(".jpg", np.full((8, 8, 3), 128, np.uint8))
    segment = b"Exif\x00\x00" + payload
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]
