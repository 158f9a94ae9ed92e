"""How to compute a convolution: factor the weight, then pick the cheapest exact way.

Most kernels users apply are one spatial kernel ``K`` spread over the channels with a mixing
matrix ``M`` (depthwise: ``M`` diagonal; the classic dense ``edge``: ``M`` all ones), that is
``weight[o, c] = M[o, c] · K``. Then the convolution is a per-pixel channel mix, ``K`` on the
fewest channels possible, and another mix: the ``edge`` kernel sums R, G, B once and filters one
channel. Anything else (a bank, a dense layer with random weights) runs tap by tap per channel
pair on planar strips. Every factorisation is checked against the weight it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spatial import FFT, Direct, IntegerDirect, RowMatmul, Scratch, Separable, accumulate, low_rank

# An FFT costs about the same whatever the kernel's size; below this many taps it never wins.
FFT_MIN_TAPS = 100


def spatial_method(
    kernel: np.ndarray, dilation: tuple[int, int], eight_bit: bool = False
) -> Direct | Separable | RowMatmul | FFT:
    """The cheapest exact way to apply ``kernel``: direct taps (in integers on ``eight_bit``
    input where the kernel allows), a rank-1/2 split, row matrix products, or an FFT; each
    method's cost is in passes over a strip, as measured."""
    candidates = [Direct(kernel)]
    if eight_bit and (integer := IntegerDirect.for_kernel(kernel)) is not None:
        candidates.append(integer)
    if min(kernel.shape) > 1:
        candidates.append(RowMatmul(kernel))
        terms = low_rank(kernel)
        if terms is not None:
            candidates.append(Separable(terms))
    if kernel.size >= FFT_MIN_TAPS:
        candidates.append(FFT(kernel, dilation))
    return min(candidates, key=lambda method: method.cost)


def mix(source: np.ndarray, matrix: np.ndarray, target: np.ndarray, tmp: np.ndarray) -> None:
    """Per pixel ``target[..., o] = Σ_c matrix[o, c] · source[..., c]``."""
    for o in range(matrix.shape[0]):
        terms = [(np.float32(w), source[..., c]) for c, w in enumerate(matrix[o]) if w != 0]
        accumulate(target[..., o], terms, tmp)


@dataclass
class Factored:
    """``weight[o, c] = M[o, c] · K``: mix with ``pre``, apply ``spatial`` to ``channels``
    channels, mix with ``post`` (``None``: nothing to mix)."""

    pre: np.ndarray | None  # (C', C)
    post: np.ndarray | None  # (O, C')
    channels: int
    spatial: Direct | Separable | RowMatmul | FFT

    @property
    def strip_dtype(self) -> np.dtype:
        """What the strip is loaded as: int16 for the integer path, else float32."""
        return self.spatial.strip_dtype

    @property
    def replicated(self) -> bool:
        """True when every output channel is the same single filtered channel (the ``edge`` case)."""
        return self.channels == 1 and self.post is not None and bool(np.all(self.post == 1))

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch, collapse: bool = False) -> None:
        """Compute ``out`` (n, W, O) from the interleaved ``strip`` (R, Wp, C); with ``collapse``
        (only when ``replicated``), ``out`` is (n, W, 1) and gets the one channel all outputs share."""
        if self.pre is not None:
            mixed = scratch.get("pre", (*strip.shape[:2], self.channels))
            mix(strip, self.pre, mixed, scratch.get("pre_tmp", strip.shape[:2]))
            strip = mixed
        if collapse:
            self.spatial(strip, out, row_step, dilation, scratch)
            return
        target = out if self.post is None else scratch.get("spatial", (*out.shape[:2], self.channels))
        self.spatial(strip, target, row_step, dilation, scratch)
        if self.post is not None:
            mix(target, self.post, out, scratch.get("post_tmp", out.shape[:2]))


def factor(
    weight: np.ndarray, groups: int, in_channels: int, dilation: tuple[int, int], eight_bit: bool = False
) -> Factored | None:
    """Factor ``weight`` [O, C/g, kh, kw] as ``M ⊗ K`` (exactly, to float32 rounding), or None.
    ``eight_bit``: the image is uint8, so ``K`` may run in integers where nothing is mixed first."""
    out_channels, group_in, kh, kw = weight.shape
    terms = low_rank(weight.reshape(out_channels * group_in, kh * kw), max_rank=1)
    if terms is None:
        return None
    # K is the weight's largest (out, in) slice itself, so copies of it get coefficients of exactly 1
    (coefficients, kernel), = terms  # fmt: skip
    kernel, coefficients = kernel.reshape(kh, kw), _snap(coefficients)
    matrix = np.zeros((out_channels, in_channels))
    group_out = out_channels // groups
    for o in range(out_channels):
        g = o // group_out
        matrix[o, g * group_in : (g + 1) * group_in] = coefficients[o * group_in : (o + 1) * group_in]
    spatial = spatial_method(kernel, dilation)
    direct = spatial_method(kernel, dilation, eight_bit)  # for the strip as loaded, unmixed
    if out_channels == in_channels and np.array_equal(matrix, np.diag(np.diag(matrix))):
        if np.all(np.diag(matrix) == 1):
            return Factored(None, None, in_channels, direct)  # depthwise, one kernel for all
        return Factored(None, matrix, in_channels, direct)  # depthwise, scaled per channel
    columns = low_rank(matrix, max_rank=1)
    if columns is not None:
        # rank 1: M = a bᵀ — mix the inputs into one channel, filter it once, spread it out
        (a, b), = columns  # fmt: skip
        post = None if out_channels == 1 and abs(a[0] - 1) < 1e-12 else a[:, None]
        return Factored(b[None, :], post, 1, spatial)
    if in_channels <= out_channels:
        return Factored(None, matrix, in_channels, direct)
    return Factored(matrix, None, out_channels, spatial)


def _snap(values: np.ndarray) -> np.ndarray:
    """Round coefficients within float32 rounding of a whole number (the SVD gives 0.9999999
    for 1) to it, so that plain sums and copies are recognised as such."""
    nearest = np.round(values)
    return np.where(np.abs(values - nearest) <= 1e-6 * max(1.0, float(np.abs(values).max())), nearest, values)


class General:
    """Any weight: for each output channel, every input channel of its group, tap by tap, on a
    planar copy of the strip (one 2-D plane per channel, so each pass is a long 2-D view)."""

    def __init__(self, weight: np.ndarray, groups: int) -> None:
        out_channels, group_in, _, _ = weight.shape
        group_out = out_channels // groups
        self.taps = []
        for o in range(out_channels):
            g = o // group_out
            self.taps.append(
                [
                    (g * group_in + c, (i, j), np.float32(w))
                    for c in range(group_in)
                    for (i, j), w in np.ndenumerate(weight[o, c])
                    if w != 0
                ]
            )

    def __call__(self, strip, out, steps, dilation, scratch: Scratch) -> None:
        """Compute ``out`` (n, W, O) from the interleaved ``strip`` (R, Wp, C)."""
        n, width, _ = out.shape
        (sy, sx), (dy, dx) = steps, dilation
        planes = scratch.get("planes", (strip.shape[2], *strip.shape[:2]))
        np.copyto(planes, strip.transpose(2, 0, 1))
        acc = scratch.get("acc", (n, width))
        tmp = scratch.get("tmp", (n, width))
        for o, taps in enumerate(self.taps):
            terms = (
                (w, planes[c, i * dy : i * dy + (n - 1) * sy + 1 : sy, j * dx : j * dx + (width - 1) * sx + 1 : sx])
                for c, (i, j), w in taps
            )
            accumulate(acc, terms, tmp)
            out[..., o] = acc
