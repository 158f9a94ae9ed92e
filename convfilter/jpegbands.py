"""A large JPEG encoded by OpenCV in bands on all cores, joined into one file.

A baseline JPEG's coded data may be cut by restart markers: after each, the blocks are coded as
if the image began there (the DC prediction starts again), and the markers count RST0 … RST7
round and round. Bands of whole MCU rows, eight at a time, are encoded at once on threads
(OpenCV lets go of the GIL), each with a restart marker after every MCU row; the first band's
header, given the whole image's height, heads their coded data put end to end, with the marker
that ends an eighth row (RST7) between two bands: a band's own markers then count on where the
one before left off. Decoded, the file gives exactly the pixels of one encode of the whole image:
the same blocks, the same tables. A band's file that is not as expected (another kind of JPEG,
other tables, other restarts) and the caller encodes the image in one piece instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import cv2
import numpy as np

from .options import LARGEST_SIDE
from .tiffbands import PARALLEL_BYTES, encode_bands

SOI, EOI, SOF0, SOS, DRI = 0xD8, 0xD9, 0xC0, 0xDA, 0xDD
RST7 = b"\xff\xd7"
CYCLE = 8  # restart markers count RST0 … RST7
MCU_ROWS = 16  # pixel rows of the tallest MCU OpenCV writes (4:2:0); a gray MCU has 8
LARGEST = LARGEST_SIDE["jpeg"]


def encode_in_bands(
    pixels: np.ndarray, encode: Callable[[np.ndarray, list[int]], np.ndarray], threads: int | None = None
) -> bytes | None:
    """The JPEG file of ``pixels`` from ``encode(part, params)`` (OpenCV's JPEG encoder, given
    OpenCV's restart-interval option for a restart marker every MCU row) run on bands at once, or None where
    one piece is the way: a small image, one core, bands not as expected."""
    height, width = pixels.shape[:2]
    unit = CYCLE * MCU_ROWS  # whole cycles of MCU rows, whatever the sampling
    if pixels.nbytes < PARALLEL_BYTES or pixels.dtype != np.uint8 or pixels.shape[2] not in (1, 3):
        return None
    if max(height, width) > LARGEST:  # more than a JPEG holds: the one encode says so
        return None
    # MCUs per row: 8 pixels wide for gray, 16 for colour (4:2:0 and 4:2:2)
    per_row = -(-width // (8 if pixels.shape[2] == 1 else 16))
    units = height // unit
    parts = encode_bands(
        pixels, units, unit, lambda part: encode(part, [cv2.IMWRITE_JPEG_RST_INTERVAL, per_row]), threads
    )
    if parts is None:
        return None
    cuts, encoded = parts
    return join(encoded, [b - a for a, b in itertools.pairwise(cuts)], per_row)


def _segments(data: memoryview) -> dict | None:
    """Where the frame's height is, where the scan's coded data starts, the image's width and
    its MCUs' width; None for anything but a baseline JPEG with restarts that ends with its end
    marker."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != SOI or bytes(data[-2:]) != b"\xff\xd9":
        return None
    at, found = 2, {}
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == SOS:
            return {**found, "coded_at": at + 2 + length} if {"width", "restarts"} <= found.keys() else None
        if 0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # another kind of frame
            return None
        if marker == SOF0 and at + 10 <= len(data):
            components = data[at + 9]
            sampling = (
                [data[at + 11 + 3 * i] for i in range(components)] if at + 10 + 3 * components <= len(data) else []
            )
            if components not in (1, 3) or len(sampling) != components:
                return None
            found.update(height_at=at + 5, width=int.from_bytes(data[at + 7 : at + 9], "big"),
                         mcu=8 if components == 1 else 8 * max(hv >> 4 for hv in sampling),
                         mcu_rows=8 if components == 1 else 8 * max(hv & 15 for hv in sampling))  # fmt: skip
        if marker == DRI and length == 4:
            found["restarts"] = int.from_bytes(data[at + 4 : at + 6], "big")
        at += 2 + length
    return None


def join(parts: list, heights: list[int], per_row: int) -> bytes | None:
    """One JPEG from OpenCV's files of consecutive bands (``heights`` rows each, a restart after
    every ``per_row`` MCUs), or None if they are not as expected: a restart after every MCU row,
    and every band but the last whole cycles of MCU rows."""
    bands = []
    for data, height in zip(parts, heights, strict=True):
        data = memoryview(data).cast("B")
        found = _segments(data)
        if found is None or found["restarts"] != per_row or per_row != -(-found["width"] // found["mcu"]):
            return None
        header, at = bytearray(data[: found["coded_at"]]), found["height_at"]
        if int.from_bytes(header[at : at + 2], "big") != height:
            return None
        header[at : at + 2] = b"\0\0"  # the one difference between the bands' headers
        bands.append((bytes(header), at, found["mcu_rows"], data[found["coded_at"] : -2]))
    header, at, mcu_rows, _ = bands[0]
    if sum(heights) > LARGEST:
        return None
    if any(band[0] != header for band in bands) or any(h % (CYCLE * mcu_rows) for h in heights[:-1]):
        return None  # other tables, or a band that ends mid-cycle: its successor's markers would not count on
    head = bytearray(header)
    head[at : at + 2] = sum(heights).to_bytes(2, "big")
    pieces = [bytes(head)]
    for index, (_, _, _, coded) in enumerate(bands):
        pieces += [RST7, coded] if index else [coded]
    return b"".join([*pieces, bytes([0xFF, EOI])])
