"""A large TIFF encoded by OpenCV in bands on all cores, joined into one file.

A TIFF keeps its pixels in strips of rows, each compressed on its own (OpenCV: LZW, with a
predictor that works within a row). OpenCV's encoder runs on one core; here bands of whole strips
are encoded at once on threads (OpenCV lets go of the GIL) and their strips are put end to end
under one directory: the first band's, with the whole image's height and every strip's offset
and size. A band's file that is not as expected (another flavour, strips not end to end, other
tags) and the caller encodes the image in one piece instead: the file is the same either way,
strip for strip.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .tifftags import Layout

PARALLEL_BYTES = 16 << 20  # smaller images are encoded in one piece
STRIP_BYTES = 1 << 13  # OpenCV's strips hold as many rows as fit in 8 KiB, at least one
LENGTH, OFFSETS, ROWS_PER_STRIP, COUNTS = 257, 273, 278, 279
SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
SHORT, LONG = 3, 4


def encode_in_bands(pixels: np.ndarray, encode: Callable[[np.ndarray], np.ndarray], threads: int | None = None):
    """The TIFF file of ``pixels`` (as ``bytes``) from ``encode`` (OpenCV's TIFF encoder) run on
    bands of whole strips at once, or None where one piece is the way: a small image, one core,
    a file that a classic TIFF's offsets cannot reach, bands not as expected."""
    height = len(pixels)
    rows = max(1, min(height, STRIP_BYTES // max(1, pixels[0].nbytes)))
    if pixels.nbytes < PARALLEL_BYTES or pixels.nbytes >= 2**31:
        return None
    bands = encode_bands(pixels, -(-height // rows), rows, encode, threads)
    if bands is None:
        return None
    cuts, parts = bands
    return join(parts, [b - a for a, b in itertools.pairwise(cuts)], rows)


def encode_bands(pixels: np.ndarray, units: int, rows: int, encode: Callable, threads: int | None = None):
    """``encode`` run at once on threads (default: one per core) over bands of whole units of
    ``rows`` rows, at most ``units`` bands, the last one ending with the image: the rows where
    bands start (and the image's height) and each band's encoding; None for one band."""
    bands = min(threads or os.cpu_count() or 1, units)
    if bands < 2 or not pixels.flags.c_contiguous:
        return None
    cuts = [round(units * i / bands) * rows for i in range(bands)] + [len(pixels)]
    try:
        with ThreadPoolExecutor(bands, thread_name_prefix="convfilter-bands") as pool:
            parts = list(pool.map(lambda band: encode(pixels[band[0] : band[1]]), itertools.pairwise(cuts)))
    except RuntimeError:  # no room for another thread (an address-space limit): one piece, then
        return None
    return cuts, parts


def _values(layout: Layout, data, entry: bytes) -> tuple[int, int, bytes]:
    """An entry's type, count and value bytes, wherever they are kept."""
    kind, count = layout.unpack("H", entry, 2), layout.unpack("L", entry, 4)
    size = SIZES.get(kind, 1) * count
    if size <= 4:
        return kind, count, entry[8 : 8 + size]
    at = layout.unpack("L", entry, 8)
    return kind, count, bytes(data[at : at + size])


def _numbers(layout: Layout, kind: int, count: int, raw: bytes) -> list[int]:
    return list(struct.unpack(layout.order + {SHORT: "H", LONG: "L"}[kind] * count, raw))


def join(parts: list, heights: list[int], rows: int) -> bytes | None:
    """One classic TIFF from OpenCV's files of consecutive bands (``heights`` rows each, strips of
    ``rows`` rows), or None if they are not as expected."""
    bands = []
    for data, height in zip(parts, heights, strict=True):
        data = memoryview(data).cast("B")
        try:
            layout = Layout(data)
        except ValueError:
            return None
        if layout.big or (bands and layout.order != bands[0][0].order):
            return None
        entries, following = layout.entries(data, layout.unpack("L", data, 4))
        values = {tag: _values(layout, data, entry) for tag, entry in entries.items()}
        if following or not {LENGTH, OFFSETS, ROWS_PER_STRIP, COUNTS} <= values.keys():
            return None
        if any(values[tag][0] not in (SHORT, LONG) for tag in (LENGTH, OFFSETS, ROWS_PER_STRIP, COUNTS)):
            return None
        offsets, counts = (_numbers(layout, *values[tag]) for tag in (OFFSETS, COUNTS))
        length, per_strip = (_numbers(layout, *values[tag])[0] for tag in (LENGTH, ROWS_PER_STRIP))
        if length != height or per_strip != min(rows, height) or len(offsets) != -(-height // rows):
            return None
        ends = zip(offsets, counts, offsets[1:], strict=False)
        if len(counts) != len(offsets) or any(a + n != b for a, n, b in ends):
            return None  # strips not end to end
        if offsets[0] + sum(counts) > len(data):
            return None
        bands.append((layout, data, values, offsets, counts))
    layout, _, first, _, _ = bands[0]
    shared = {tag: value for tag, value in first.items() if tag not in (LENGTH, OFFSETS, COUNTS)}
    shared[ROWS_PER_STRIP] = (LONG, 1, layout.pack("L", rows))
    if any({t: v for t, v in band[2].items() if t not in (LENGTH, OFFSETS, COUNTS, ROWS_PER_STRIP)}
           != {t: v for t, v in shared.items() if t != ROWS_PER_STRIP} for band in bands):  # fmt: skip
        return None
    pieces, at, offsets, counts = [b""], 8, [], []  # the header is written last
    for _, data, _, band_offsets, band_counts in bands:
        start, size = band_offsets[0], sum(band_counts)
        offsets += [at + offset - start for offset in band_offsets]
        counts += band_counts
        pieces.append(data[start : start + size])
        at += size
    if at + 16 * len(offsets) + 4096 >= 2**32:
        return None
    total = sum(heights)
    shared[LENGTH] = (LONG, 1, layout.pack("L", total))
    shared[OFFSETS] = (LONG, len(offsets), struct.pack(layout.order + f"{len(offsets)}L", *offsets))
    shared[COUNTS] = (LONG, len(counts), struct.pack(layout.order + f"{len(counts)}L", *counts))
    return _finish(layout, pieces, at, shared)


def _finish(layout: Layout, pieces: list, end: int, entries: dict[int, tuple[int, int, bytes]]) -> bytes:
    """After the strips (``pieces`` from offset 8 to ``end``), the values that do not fit in their
    entries, then the directory, each on a word boundary; the header goes first."""
    pad = end % 2
    start, outside, placed = end + pad, bytearray(), {}
    for tag, (_, _, raw) in sorted(entries.items()):
        if len(raw) > 4:
            placed[tag] = start + len(outside)
            outside += raw + b"\0" * (len(raw) % 2)
    directory = bytearray(layout.pack("H", len(entries)))
    for tag, (kind, count, raw) in sorted(entries.items()):
        value = layout.pack("L", placed[tag]) if tag in placed else raw.ljust(4, b"\0")
        directory += layout.pack("H", tag) + layout.pack("H", kind) + layout.pack("L", count) + value
    directory += layout.pack("L", 0)
    order = b"II" if layout.order == "<" else b"MM"
    pieces[0] = order + layout.pack("H", 42) + layout.pack("L", start + len(outside))
    return b"".join([*pieces, b"\0" * pad, outside, directory])
