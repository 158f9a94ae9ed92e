"""Spatial filtering of a loaded strip with one 2-D kernel shared by all its channels.

A strip is a float32 array ``(R, Wp, C)`` of padded input rows with channels interleaved, as
pixels are stored. Because every channel sees the same kernel, a tap is one scalar times a
shifted view of the strip flattened to ``(R, Wp·C)``: a long contiguous inner loop, the only
kind NumPy runs at full speed. Three ways to apply the kernel, chosen per kernel:

- ``Direct``: tap by tap, ``acc += w · view`` (±1 weights add or subtract without a multiply);
- ``IntegerDirect``: the same in 16-bit integers, for 8-bit images and whole-number kernels;
- ``Separable``: a kernel of rank 1 or 2 as a vertical then a horizontal 1-D pass per rank;
- ``RowMatmul``: small matrix products down the rows, then shifted sums along them;
- ``FFT``: overlap-save over the strip with NumPy's FFT, for large kernels of full rank.

Each has a ``cost``, in passes over the strip, measured on a 12 MP photo; the cheapest wins.
OpenCV's box, separable and 2-D filters (``native.py``) compete in the same units; these NumPy
methods are the reference they are tested against (``CONVFILTER_ENGINE=numpy`` uses only them).
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np


class Scratch:
    """Per-thread float32 buffers reused from strip to strip, so the loop allocates nothing."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """Return a buffer of ``shape``, reusing the one called ``name`` when it is large enough."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)


def accumulate(acc: np.ndarray, terms, tmp: np.ndarray) -> None:
    """``acc = Σ w · view`` over ``terms`` of ``(w, view)``, all arrays of ``acc``'s shape."""
    first = True
    for w, view in terms:
        if first:
            np.multiply(view, w, out=acc) if w != 1 else np.copyto(acc, view)
            first = False
        elif w == 1:
            np.add(acc, view, out=acc)
        elif w == -1:
            np.subtract(acc, view, out=acc)
        else:
            np.multiply(view, w, out=tmp)
            np.add(acc, tmp, out=acc)
    if first:
        acc.fill(0)


def _taps(weights: np.ndarray, dtype) -> list[tuple[tuple[int, int], np.generic]]:
    """The non-zero taps of a kernel as ((i, j), weight). A tap of weight ±1 costs one pass and
    any other two, except the first (written, not added): so the list starts with one that
    needs a multiply."""
    taps = [((i, j), dtype(w)) for (i, j), w in np.ndenumerate(weights) if w != 0]
    taps.sort(key=lambda tap: abs(float(tap[1])) == 1)
    return taps


def _passes(weights: np.ndarray) -> int:
    """Passes over the strip that the taps of ``weights`` cost: a multiply and an add, or one
    add for ±1 (zero taps are skipped)."""
    nonzero = weights[weights != 0]
    return 2 * nonzero.size - int(np.count_nonzero(np.abs(nonzero) == 1))


class Direct:
    """Tap by tap: ``kh·kw`` passes (all-zero taps skipped). The list of taps is made when first
    used, so that weighing this method against others costs no Python loop over a large kernel."""

    strip_dtype = np.float32

    def __init__(self, kernel: np.ndarray) -> None:
        self.kernel = kernel
        self.cost = _passes(kernel)

    @functools.cached_property
    def taps(self) -> list[tuple[tuple[int, int], np.generic]]:
        """The non-zero taps, as ((i, j), weight)."""
        return _taps(self.kernel, np.float32)

    def _terms(self, strip, out_shape, row_step, dilation):
        """(weight, view) for each tap: the strip flattened to (R, Wp·C), shifted by the tap."""
        n, width, channels = out_shape
        dy, dx = dilation
        flat = strip.reshape(strip.shape[0], -1)
        span = width * channels
        for (i, j), w in self.taps:
            rows = slice(i * dy, i * dy + (n - 1) * row_step + 1, row_step)
            yield w, flat[rows, j * dx * channels : j * dx * channels + span]

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch) -> None:
        """Filter ``strip`` (R, Wp, C) into ``out`` (n, W, C), keeping every ``row_step``-th row."""
        n, width, channels = out.shape
        span = (n, width * channels)
        accumulate(out.reshape(span), self._terms(strip, out.shape, row_step, dilation), scratch.get("tmp", span))


class IntegerDirect(Direct):
    """Direct taps in 16-bit integers, for an 8-bit image and a kernel that is a whole-number
    kernel times one scale (sharpen, Laplacians, emboss, the box's 1/9): exact, and each pass moves
    half the bytes. The sum is bounded by 255 · Σ|w|, so it never overflows; the scale is applied
    when the strip is turned into float32."""

    strip_dtype = np.int16

    def __init__(self, kernel: np.ndarray, scale: float, whole: np.ndarray) -> None:
        self.kernel = kernel
        self.scale = np.float32(scale)
        self.whole = whole
        # measured: an int16 pass costs 0.65 of a float32 one, the final conversion included
        self.cost = 0.65 * _passes(whole)

    @functools.cached_property
    def taps(self) -> list[tuple[tuple[int, int], np.generic]]:
        """The non-zero taps of the whole-number kernel, as ((i, j), weight)."""
        return _taps(self.whole, np.int16)

    @classmethod
    def for_kernel(cls, kernel: np.ndarray) -> IntegerDirect | None:
        """The integer form of ``kernel`` if it has one small enough for 8-bit input, else None."""
        nonzero = np.abs(kernel[kernel != 0])
        if not len(nonzero):
            return None
        scale = float(nonzero.min())
        whole = np.round(kernel / scale)
        if np.any(np.abs(whole * scale - kernel) > EXACT * np.abs(kernel)):
            return None
        if 255 * float(np.abs(whole).sum()) > np.iinfo(np.int16).max:
            return None
        return cls(kernel, scale, whole)

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch) -> None:
        """Filter the int16 ``strip`` (R, Wp, C) into the float32 ``out`` (n, W, C), or into an
        int16 ``out`` as the exact sums (a kernel of scale 1 only)."""
        n, width, channels = out.shape
        span = (n, width * channels)
        if out.dtype == np.int16:
            if self.scale != 1:
                raise ValueError("only a whole-number kernel's sums are whole numbers")
            accumulate(out.reshape(span), self._terms(strip, out.shape, row_step, dilation),
                       scratch.get("tmp16", span, np.int16))  # fmt: skip
            return
        acc = scratch.get("acc16", span, np.int16)
        accumulate(acc, self._terms(strip, out.shape, row_step, dilation), scratch.get("tmp16", span, np.int16))
        if self.scale == 1:
            np.copyto(out.reshape(span), acc)
        else:
            np.multiply(acc, self.scale, out=out.reshape(span))


class Separable:
    """A kernel of rank 1 or 2 as ``Σ u vᵀ``: per rank, a vertical pass of ``kh`` taps over the
    padded width, then a horizontal pass of ``kw`` taps."""

    strip_dtype = np.float32

    def __init__(self, terms: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.terms = [(u.astype(np.float32), v.astype(np.float32)) for u, v in terms]
        self.cost = self.passes(len(terms), (len(terms[0][0]), len(terms[0][1])))

    @staticmethod
    def passes(rank: int, shape: tuple[int, int]) -> float:
        """Passes over the strip for ``rank`` pairs of 1-D passes, as measured on 12 MP."""
        return 1.3 * rank * (shape[0] + shape[1])

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch) -> None:
        """Filter ``strip`` (R, Wp, C) into ``out`` (n, W, C), keeping every ``row_step``-th row."""
        n, width, channels = out.shape
        dy, dx = dilation
        flat = strip.reshape(strip.shape[0], -1)
        span = width * channels
        acc = out.reshape(n, span)
        vertical = scratch.get("vertical", (n, flat.shape[1]))
        tmp_v = scratch.get("tmp_v", vertical.shape)
        part = scratch.get("part", (n, span)) if len(self.terms) > 1 else acc
        tmp = scratch.get("tmp", (n, span))
        for k, (u, v) in enumerate(self.terms):
            rows = ((w, flat[i * dy : i * dy + (n - 1) * row_step + 1 : row_step]) for i, w in enumerate(u))
            accumulate(vertical, rows, tmp_v)
            cols = ((w, vertical[:, j * dx * channels : j * dx * channels + span]) for j, w in enumerate(v))
            accumulate(acc if k == 0 else part, cols, tmp)
            if k:
                np.add(acc, part, out=acc)


class RowMatmul:
    """Each output row from one small matrix product: the ``kw × kh`` transposed kernel times
    the ``kh`` input rows it reads gives, for every column offset j, that column of the kernel
    applied down the rows; the output row is then the sum of those ``kw`` rows, each shifted by
    j. The products run in BLAS with the multiply-adds in registers, so a dense 5×5 kernel costs
    about a dozen passes over the strip instead of fifty."""

    strip_dtype = np.float32

    def __init__(self, kernel: np.ndarray) -> None:
        self.kernel = kernel
        self.transposed = np.ascontiguousarray(kernel.T, np.float32)
        kh, kw = kernel.shape
        self.cost = 0.2 * kh * kw + kw + 3  # passes, as measured on 12 MP

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch) -> None:
        """Filter ``strip`` (R, Wp, C) into ``out`` (n, W, C), keeping every ``row_step``-th row."""
        n, width, channels = out.shape
        dy, dx = dilation
        kw, kh = self.transposed.shape
        flat = strip.reshape(strip.shape[0], -1)
        row, item = flat.strides
        # windows[r] is the (kh, Wp·C) block of rows that output row r reads: a view, no copy
        windows = np.lib.stride_tricks.as_strided(
            flat, shape=(n, kh, flat.shape[1]), strides=(row * row_step, row * dy, item), writeable=False
        )
        columns = scratch.get("columns", (n, kw, flat.shape[1]))
        np.matmul(self.transposed, windows, out=columns)
        span = width * channels
        terms = ((1, columns[:, j, j * dx * channels : j * dx * channels + span]) for j in range(kw))
        accumulate(out.reshape(n, span), terms, scratch.get("tmp", (n, span)))


def fast_size(n: int) -> int:
    """The smallest ``2^a·3^b`` ≥ n: a length NumPy's FFT transforms quickly.

    >>> fast_size(4030), fast_size(97), fast_size(286)
    (4096, 108, 288)
    """
    best = 1 << max(0, (n - 1).bit_length())
    power3 = 1
    while power3 < best:
        size = power3
        while size < n:
            size *= 2
        best = min(best, size)
        power3 *= 3
    return best


FFT_TILE_WIDTH = 1024  # output columns per transform
# An FFT strip is taller: its cost per row falls as the kernel's halo becomes a smaller share.
FFT_STRIP_ROWS = 256


class FFT:
    """Overlap-save over the strip: the circular convolution of a strip with the flipped,
    dilated kernel equals the valid correlation once the first ``kh-1`` rows and ``kw-1``
    columns (where it wraps) are dropped. The transforms run in float64 (as fast as float32
    here), so their rounding, about 1e-16 of the kernel's absolute sum times the largest input,
    stays far below the float32 rounding of the tap-by-tap sum: no kernel needs a fallback."""

    strip_dtype = np.float32

    def __init__(self, kernel: np.ndarray, dilation: tuple[int, int], row_step: int = 1, out_width: int = 4000) -> None:
        self.kernel, self.dilation = kernel, dilation
        (kh, kw), (dy, dx) = kernel.shape, dilation
        self.reach = (dy * (kh - 1), dx * (kw - 1))
        # passes, as measured on 12 MP (80 for a 31×31 kernel): about the same whatever the
        # kernel's size, but every transform also covers the halo, and all rows a stride skips
        rows, tile = max(FFT_STRIP_ROWS, self.reach[0]), min(FFT_TILE_WIDTH, out_width)
        self.cost = 70 * row_step * (rows + self.reach[0]) / rows * (tile + self.reach[1]) / tile
        self._spectra: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def _spectrum(self, rows: int, cols: int) -> np.ndarray:
        key = (rows, cols)
        with self._lock:
            if key not in self._spectra:
                (dy, dx), (ry, rx) = self.dilation, self.reach
                flipped = np.zeros((ry + 1, rx + 1))
                flipped[::dy, ::dx] = self.kernel
                self._spectra[key] = np.fft.rfft2(flipped[::-1, ::-1], s=key)
            return self._spectra[key]

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch) -> None:
        """Filter ``strip`` (R, Wp, C) into ``out`` (n, W, C), keeping every ``row_step``-th row."""
        n, width, channels = out.shape
        kh, kw = self.reach[0] + 1, self.reach[1] + 1
        # rows that no output reads (a stride and a dilation with a common factor skip some) are
        # zeroed: otherwise their values, however large, would round into every output
        read = np.zeros(strip.shape[0], bool)
        for i in range(self.kernel.shape[0]):
            read[i * dilation[0] : i * dilation[0] + (n - 1) * row_step + 1 : row_step] = True
        # tiles of columns as well as strips of rows keep each transform small: faster, and a few
        # MiB per thread instead of tens
        for q0 in range(0, width, FFT_TILE_WIDTH):
            tile = min(FFT_TILE_WIDTH, width - q0)
            size = (fast_size(strip.shape[0]), fast_size(tile + kw - 1))
            kernel_spectrum = self._spectrum(*size)
            plane = scratch.get("plane", (strip.shape[0], tile + kw - 1), np.float64)
            for c in range(channels):
                np.copyto(plane, strip[:, q0 : q0 + tile + kw - 1, c])
                if not read.all():
                    plane[~read] = 0
                spectrum = np.fft.rfft2(plane, s=size)
                spectrum *= kernel_spectrum
                full = np.fft.irfft2(spectrum, s=size)
                rows = full[kh - 1 : kh - 1 + (n - 1) * row_step + 1 : row_step, kw - 1 : kw - 1 + tile]
                out[:, q0 : q0 + tile, c] = rows


# How close a factored weight must come to each weight it replaces: a few float32 roundings of
# that weight itself, so that no weight, however small beside the others, is changed or lost.
EXACT = 4e-7


def low_rank(matrix: np.ndarray, max_rank: int = 2, rtol: float = 1e-12) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Split ``matrix`` into at most ``max_rank`` outer products ``u vᵀ`` that equal it, or
    return None.

    Rank 1 is tried first with the row of the largest entry itself as ``v``, so that exact
    copies of a row give exactly that row and coefficients of exactly 1; it must reproduce every
    entry to ``EXACT`` of that entry (a zero exactly). Rank 2 comes from a thin SVD, which costs
    about ``m·n·min(m, n)``, and must match each entry as closely, give or take ``rtol`` of the
    largest (the SVD's own rounding).

    >>> (u, v), = low_rank(np.array([[1.0, 2.0], [3.0, 6.0]]))
    >>> u.tolist(), v.tolist()
    ([0.3333333333333333, 1.0], [3.0, 6.0])
    """
    flat = np.abs(matrix).ravel()
    if not flat.size or flat.max() == 0:
        return None
    row, col = np.unravel_index(np.argmax(flat), matrix.shape)
    v = np.asarray(matrix[row], np.float64)
    u = np.asarray(matrix[:, col], np.float64) / v[col]
    # in blocks of rows, so that checking a large layer needs no copy of it
    step = max(1, (1 << 20) // matrix.shape[1])
    for start in range(0, len(matrix), step):
        block = np.asarray(matrix[start : start + step], np.float64)
        if np.any(np.abs(np.outer(u[start : start + step], v) - block) > EXACT * np.abs(block)):
            break
    else:
        return [(u, v.copy())]
    if max_rank < 2:
        return None
    matrix = np.asarray(matrix, np.float64)
    scale = float(flat.max())
    left, sigma, right = np.linalg.svd(matrix, full_matrices=False)
    for rank in range(2, min(max_rank, len(sigma)) + 1):
        terms = [(left[:, k] * sigma[k], right[k]) for k in range(rank)]
        # each entry to EXACT of itself, with a floor far below float32 for the SVD's own rounding
        if np.all(np.abs(sum(np.outer(a, b) for a, b in terms) - matrix) <= EXACT * np.abs(matrix) + rtol * scale):
            return terms
    return None
