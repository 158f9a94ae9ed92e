"""How to compute a convolution: factor the weight, then pick the cheapest exact way.

Most kernels users apply are one spatial kernel ``K`` spread over the channels with a mixing
matrix ``M`` (depthwise: ``M`` diagonal; the classic dense ``edge``: ``M`` all ones), that is
``weight[o, c] = M[o, c] · K``. Then the convolution is a per-pixel channel mix, ``K`` on the
fewest channels possible, and another mix: the ``edge`` kernel sums R, G, B once and filters one
channel. Anything else (a bank, a dense layer with random weights) runs tap by tap (``taps.py``),
per channel pair or as one channel-mixing product per tap, whichever costs less. Every
factorisation is checked against the weight it replaces; planning costs a few passes over the
weight, never more than the convolution it plans. ``K`` may run through OpenCV's filters
(``native.py``) where the cost model says they win; a depthwise ``K`` with a padding OpenCV has
is then filtered straight from the image rows, with no strip loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .geometry import Geometry
from .mixing import mix
from .native import (
    PIXEL_DEPTHS,
    Native,
    NativeDirect,
    NativeSeparable,
    cheap_expansion,
    expand,
    image_route,
    native_methods,
)
from .spatial import (
    EXACT,
    FFT,
    FFT_STRIP_ROWS,
    Direct,
    IntegerDirect,
    RowMatmul,
    Scratch,
    Separable,
    low_rank,
)
from .taps import STRIP_LIMIT, Gather, General, Plan, TapMatmul

# An FFT costs about the same whatever the kernel's size; below this many taps it never wins.
FFT_MIN_TAPS = 100
# A weight whose kernels differ per channel pair is planned pair by pair up to this many pairs.
MAX_PAIRS = 64
# An OpenCV strip holds this many output rows per row of halo, as its float32 result, halo
# included, fits in NATIVE_STRIP_BYTES (a few per thread beside the output).
NATIVE_HALO_SHARE = 8
NATIVE_STRIP_BYTES = 20 << 20
# Strips filtered straight from the image hold this many output rows per row of halo, within
# NATIVE_BLOCK_BYTES of float32 output.
NATIVE_IMAGE_HALOS = 32
NATIVE_BLOCK_BYTES = 32 << 20
# A large kernel through OpenCV's transform, straight from the image, fills blocks of up to this
# many bytes of float32 output, one at a time.
NATIVE_TRANSFORM_BYTES = 96 << 20


def make_plan(
    weight: np.ndarray,
    groups: int,
    image_shape: tuple[int, int, int],
    geo: Geometry,
    eight_bit: bool,
    finite: bool,
    native: np.dtype | None = None,
) -> Plan:
    """The cheapest exact plan for ``weight`` [O, C/g, kh, kw] on an image of ``image_shape``.

    ``eight_bit``: the image is uint8 (integer taps are exact); ``finite``: it holds no NaN or
    infinity (otherwise only plans that skip zero weights are used, so a non-finite pixel
    reaches exactly the outputs whose non-zero taps read it); ``native``: the dtype an unmixed
    strip is loaded as for OpenCV's filters, or None to use the NumPy methods only.
    """
    kh, kw = weight.shape[2:]
    # a padded strip of even one output row beyond the limit (a dilated kernel's halo), or one
    # that loads more than the taps would read: gather the samples instead
    smallest_strip = 4 * (geo.stride[0] + geo.reach[0]) * geo.padded_width * image_shape[2]
    if smallest_strip > STRIP_LIMIT or _strip_load_per_row(geo) > 2 * kh * kw * geo.out_width:
        split = mixing_split(weight, groups, image_shape[2]) if finite else None
        if split is not None and (terms := low_rank(split[1], max_rank=1)) is not None:
            (u, v), = terms  # fmt: skip
            return Gather(weight, groups, finite, (u, v, split[0]))
        return Gather(weight, groups, finite)
    candidates = [General(weight, groups)]
    if finite:
        candidates.append(TapMatmul(weight, groups))
    factored = factor(weight, groups, image_shape[2], geo, eight_bit, finite, native)
    if factored is not None and geo.stride[1] == 1:
        return factored
    wide = [factored] if factored is not None else []
    # pair by pair: large kernels (an FFT each), or any size through OpenCV's filters
    if (
        finite
        and (kh * kw >= FFT_MIN_TAPS or native is not None)
        and np.count_nonzero(np.any(weight, axis=(2, 3))) <= MAX_PAIRS
    ):
        wide.append(PerPair(weight, groups, geo, native))
    # these compute every column and keep every stride-th; the others compute only those kept
    return min([*candidates, *wide], key=lambda plan: plan.cost * (geo.stride[1] if plan in wide else 1))


def _strip_load_per_row(geo: Geometry) -> float:
    """Samples of one channel a padded strip loads per output row (for strips of up to 32 rows)."""
    n = min(geo.out_height, 32)
    return ((n - 1) * geo.stride[0] + geo.reach[0] + 1) * geo.padded_width / n


def spatial_method(
    kernel: np.ndarray, geo: Geometry, eight_bit: bool = False, finite: bool = True, native: np.dtype | None = None
) -> Direct | Separable | RowMatmul | FFT | Native:
    """The cheapest exact way to apply ``kernel``: direct taps (in integers on ``eight_bit``
    input where the kernel allows), a rank-1/2 split, row matrix products, an FFT, or (with
    ``native``, the dtype of the strip) OpenCV's box, separable or 2-D filter; each method's
    cost is in passes over a strip, as measured. Without ``finite`` input only direct taps,
    which skip zero weights, keep a non-finite pixel to the outputs that read it."""
    candidates = [Direct(kernel)]
    if eight_bit and (integer := IntegerDirect.for_kernel(kernel)) is not None:
        candidates.append(integer)
    if not finite:
        return candidates[0]
    if kernel.size >= FFT_MIN_TAPS:
        candidates.append(FFT(kernel, geo.dilation, geo.stride[0], geo.out_width))
    terms = None
    if min(kernel.shape) > 1:
        candidates.append(RowMatmul(kernel))
        terms = low_rank(kernel, max_rank=1)
    if native is not None:
        candidates += native_methods(kernel, terms, geo.dilation, native, geo.stride[0])
    if min(kernel.shape) > 1 and terms is None:
        # a rank-2 split needs an SVD (seconds for 255×255): only where it could be the cheapest
        rank2 = Separable.passes(2, kernel.shape)
        if native is not None and cheap_expansion(kernel.shape, geo.dilation):
            rank2 = min(rank2, NativeSeparable.passes(2, expand(kernel, geo.dilation).shape, geo.stride[0]))
        if rank2 < min(method.cost for method in candidates) and (terms := low_rank(kernel)) is not None:
            candidates.append(Separable(terms))
            if native is not None and cheap_expansion(kernel.shape, geo.dilation):
                candidates.append(NativeSeparable(terms, geo.dilation, native, geo.stride[0]))
    elif terms is not None:
        candidates.append(Separable(terms))
    return min(candidates, key=lambda method: method.cost)


@dataclass
class Factored(Plan):
    """``weight[o, c] = M[o, c] · K``: mix with ``pre``, apply ``spatial`` to ``channels``
    channels, mix with ``post`` (``None``: nothing to mix)."""

    pre: np.ndarray | None  # (C', C)
    post: np.ndarray | None  # (O, C')
    channels: int
    spatial: Direct | Separable | RowMatmul | FFT | Native
    finite: bool = True

    @property
    def strip_dtype(self) -> np.dtype:
        """What the strip is loaded as: int16 for the integer path unmixed, else float32."""
        return self.spatial.strip_dtype if self.pre is None else np.float32

    def strip_rows(self, conv, rows: int) -> int:
        """An FFT wants strips at least as tall as the kernel's halo; row products hold ``kw``
        rows per output row, so they take fewer."""
        geo = conv.geometry
        if isinstance(self.spatial, FFT):
            # as tall as the halo, but within the strip limit
            fits = (STRIP_LIMIT // (4 * geo.padded_width * conv.x.shape[2]) - geo.reach[0]) // geo.stride[0]
            return max(1, min(max(8, max(FFT_STRIP_ROWS, geo.reach[0]) // geo.stride[0]), fits))
        if isinstance(self.spatial, RowMatmul):
            return max(4, min(rows, 4 * rows // self.spatial.kernel.shape[1]))
        if self.serial(conv):
            # OpenCV runs on every core itself; its transform costs less per row on tall bands
            budget = NATIVE_TRANSFORM_BYTES if isinstance(self.spatial, NativeDirect) else NATIVE_BLOCK_BYTES
            return max(rows, geo.reach[0], budget // (4 * geo.out_width * conv.out_channels))
        if (
            isinstance(self.spatial, Native)
            and self.pre is None
            and self.post is None
            and image_route(conv, self.spatial)
        ):
            # straight from the image, each strip computes about three halos again at its cuts:
            # tall strips keep that small, within a budget for the float32 block it hands over
            fits = NATIVE_BLOCK_BYTES // (4 * geo.out_width * conv.out_channels)
            want = max(rows, min(NATIVE_IMAGE_HALOS * geo.reach[0], fits))
            # then an even share for the threads, so that none waits for the last
            count = -(-geo.out_height // want)
            count += -count % (os.cpu_count() or 1)
            return max(rows, geo.reach[0], -(-geo.out_height // count))
        if isinstance(self.spatial, Native):
            # OpenCV filters the halo rows too: tall enough that they stay a small share, within
            # a budget for the float32 result of the whole strip, halo included
            fits = (NATIVE_STRIP_BYTES // (4 * geo.padded_width * conv.x.shape[2]) - geo.reach[0]) // geo.stride[0]
            return max(1, min(max(rows, NATIVE_HALO_SHARE * geo.reach[0] // geo.stride[0]), max(rows, fits)))
        return rows

    def serial(self, conv, sink: bool = False) -> bool:
        """True for a separable kernel, or a large one through OpenCV's transform, straight from
        the image: blocks one after another, each on all cores within OpenCV. Handed to a
        ``sink``, a separable filter's blocks go to the threads too, so that turning one into
        pixels runs beside filtering the next (the transform's blocks are too large for two)."""
        transform = isinstance(self.spatial, NativeDirect) and self.spatial.transform
        return bool(
            (transform or (isinstance(self.spatial, NativeSeparable) and not sink))
            and self.pre is None
            and self.post is None
            and image_route(conv, self.spatial)
        )

    def block_dtype(self, conv, pixels: np.dtype) -> np.dtype:
        """For pixels of 8- or 16-bit ``pixels`` from one spatial kernel on its own: the pixels
        themselves for one separable pair straight from an image of that dtype whose sums cannot
        leave its range (a blur: no weight below zero, a sum of at most one; OpenCV rounds to
        nearest even as it writes them); int16 for whole-number taps on an 8-bit image (the exact
        sums, which saturating makes pixels); float32 sums otherwise."""
        spatial, floats = self.spatial, np.dtype(np.float32)
        if self.pre is not None or self.post is not None or pixels not in PIXEL_DEPTHS:
            return floats
        if isinstance(spatial, IntegerDirect):
            whole = spatial.scale == 1 and conv.geometry.stride[1] == 1
            return np.dtype(np.int16) if whole else floats
        if not isinstance(spatial, NativeSeparable) or len(spatial.terms) != 1 or conv.x.dtype != pixels:
            return floats
        ((u, v),) = spatial.terms
        kernel = np.outer(u.astype(np.float64), v.astype(np.float64))
        top = float(np.iinfo(pixels).max)
        # a margin far beyond float32's rounding of the sums
        within = top * kernel[kernel < 0].sum() > -0.25 and top * kernel[kernel > 0].sum() < top + 0.25
        return pixels if within and image_route(conv, spatial) is not None else floats

    def compute(self, conv, r0: int, n: int, out: np.ndarray, scratch: Scratch, collapse: bool = False) -> None:
        """Compute output rows ``r0 … r0+n-1`` of ``conv`` into ``out``: straight from the image
        where OpenCV's filter can read it (``native.image_route``), else from a loaded strip.
        Blocks of pixels (``block_dtype``) are always straight from the image."""
        if out.dtype in PIXEL_DEPTHS:
            self.spatial.filter_rows(conv.x, r0, n, out, image_route(conv, self.spatial), scratch)
            return
        if self.pre is None and self.post is None and not collapse and n >= conv.geometry.reach[0]:
            route = image_route(conv, self.spatial)
            if route is not None:
                self.spatial.filter_rows(conv.x, r0, n, out, route, scratch)
                return
        super().compute(conv, r0, n, out, scratch, collapse)

    @property
    def native(self) -> bool:
        """True when the spatial pass is OpenCV's: the mixes may be too."""
        return isinstance(self.spatial, Native)

    @property
    def replicated(self) -> bool:
        """True when every output channel is the same single filtered channel (the ``edge`` case)."""
        return self.channels == 1 and self.post is not None and bool(np.all(self.post == 1))

    @property
    def cost(self) -> float:
        """Passes of one channel over the output, at a horizontal stride of 1."""
        return self.spatial.cost * self.channels

    def __call__(self, strip, out, stride, dilation, scratch: Scratch, collapse: bool = False) -> None:
        """Compute ``out`` (n, W, O) from the interleaved ``strip`` (R, Wp, C); with ``collapse``
        (only when ``replicated``), ``out`` is (n, W, 1) and gets the one channel all outputs share.
        A horizontal stride computes every column, then keeps every stride-th."""
        (row_step, col_step), n, width = stride, out.shape[0], out.shape[1]
        if self.pre is not None:
            mixed = scratch.get("pre", (*strip.shape[:2], self.channels))
            mix(strip, self.pre, mixed, scratch.get("pre_tmp", strip.shape[:2]), self.finite, self.native)
            strip = mixed
        if col_step > 1:
            # columns no output reads must not round into the others through a transform
            if isinstance(self.spatial, FFT) or getattr(self.spatial, "transform", False):
                read = np.zeros(strip.shape[1], bool)
                for j in range(self.spatial.kernel.shape[1]):
                    read[j * dilation[1] : j * dilation[1] + (width - 1) * col_step + 1 : col_step] = True
                strip[:, ~read] = 0
            full = scratch.get("full", (n, (width - 1) * col_step + 1, self.channels))
            self.spatial(strip, full, row_step, dilation, scratch)
            target = full[:, ::col_step]
            if collapse or self.post is None:
                np.copyto(out, target)
            else:
                mix(target, self.post, out, scratch.get("post_tmp", out.shape[:2]), self.finite, self.native)
            return
        if collapse:
            self.spatial(strip, out, row_step, dilation, scratch)
            return
        target = out if self.post is None else scratch.get("spatial", (*out.shape[:2], self.channels))
        self.spatial(strip, target, row_step, dilation, scratch)
        if self.post is not None:
            mix(target, self.post, out, scratch.get("post_tmp", out.shape[:2]), self.finite, self.native)


class PerPair(Plan):
    """Each (output, input) pair's own kernel by its own cheapest spatial method, on planar
    copies of the strip: for a few large kernels that differ per channel (a depthwise bank of
    255×255 kernels), which tap-by-tap plans would apply in ``kh·kw`` passes each."""

    def __init__(self, weight: np.ndarray, groups: int, geo: Geometry, native: np.dtype | None = None) -> None:
        out_channels, group_in = weight.shape[:2]
        group_out = out_channels // groups
        planes = None if native is None else np.dtype(np.float32)  # planar copies are float32
        self.pairs = [
            (o, (o // group_out) * group_in + c, spatial_method(weight[o, c], geo, native=planes))
            for o in range(out_channels)
            for c in range(group_in)
            if np.any(weight[o, c])
        ]
        self.cost = sum(method.cost for *_, method in self.pairs) + groups * group_in

    def __call__(self, strip, out, stride, dilation, scratch: Scratch, collapse: bool = False) -> None:
        """Compute ``out`` (n, W', O) from the interleaved ``strip`` (R, Wp, C)."""
        (row_step, col_step), (n, width, _) = stride, out.shape
        planes = scratch.get("pair_planes", (strip.shape[2], *strip.shape[:2]))
        np.copyto(planes, strip.transpose(2, 0, 1))
        part = scratch.get("pair_part", (n, (width - 1) * col_step + 1, 1))
        out.fill(0)
        for o, c, method in self.pairs:
            method(planes[c][..., None], part, row_step, dilation, scratch)
            out[..., o] += part[:, ::col_step, 0]


def mixing_split(weight: np.ndarray, groups: int, in_channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(M, K)`` with ``weight[o, c] = M[o, c] · K``: the (O, C) mixing matrix over all input
    channels (zero outside each output's group) and the spatial kernel, or None."""
    out_channels, group_in, kh, kw = weight.shape
    terms = low_rank(weight.reshape(out_channels * group_in, kh * kw), max_rank=1)
    if terms is None:
        return None
    # K is the weight's largest (out, in) slice itself, so copies of it get coefficients of exactly 1
    (coefficients, kernel), = terms  # fmt: skip
    coefficients = _snap(coefficients)
    matrix = np.zeros((out_channels, in_channels))
    group_out = out_channels // groups
    for o in range(out_channels):
        g = o // group_out
        matrix[o, g * group_in : (g + 1) * group_in] = coefficients[o * group_in : (o + 1) * group_in]
    return matrix, kernel.reshape(kh, kw)


def factor(
    weight: np.ndarray,
    groups: int,
    in_channels: int,
    geo: Geometry,
    eight_bit: bool = False,
    finite: bool = True,
    native: np.dtype | None = None,
) -> Factored | None:
    """Factor ``weight`` [O, C/g, kh, kw] as ``M ⊗ K`` (exactly, to float32 rounding), or None.
    ``eight_bit``: the image is uint8, so ``K`` may run in integers where nothing is mixed first;
    ``native``: the dtype an unmixed strip is loaded as for OpenCV (None: NumPy only)."""
    split = mixing_split(weight, groups, in_channels)
    if split is None:
        return None
    matrix, kernel = split
    out_channels = weight.shape[0]
    mixed = None if native is None else np.dtype(np.float32)  # a mixed strip is float32
    spatial = spatial_method(kernel, geo, False, finite, mixed)
    direct = spatial_method(kernel, geo, eight_bit, finite, native)  # for the strip as loaded, unmixed
    if out_channels == in_channels and np.array_equal(matrix, np.diag(np.diag(matrix))):
        if np.all(np.diag(matrix) == 1):
            return Factored(None, None, in_channels, direct, finite)  # depthwise, one kernel for all
        return Factored(None, matrix, in_channels, direct, finite)  # depthwise, scaled per channel
    columns = low_rank(matrix, max_rank=1)
    if columns is not None:
        # rank 1: M = a bᵀ — mix the inputs into one channel, filter it once, spread it out
        (a, b), = columns  # fmt: skip
        post = None if out_channels == 1 and abs(a[0] - 1) < 1e-12 else a[:, None]
        return Factored(b[None, :], post, 1, spatial, finite)
    if in_channels <= out_channels:
        return Factored(None, matrix, in_channels, direct, finite)
    return Factored(matrix, None, out_channels, spatial, finite)


def _snap(values: np.ndarray) -> np.ndarray:
    """Round coefficients within float32 rounding of a non-zero whole number (0.9999999 for 1)
    to it, so that plain sums and copies are recognised as such; never a small one to 0."""
    nearest = np.round(values)
    return np.where((nearest != 0) & (np.abs(values - nearest) <= EXACT * np.abs(values)), nearest, values)
