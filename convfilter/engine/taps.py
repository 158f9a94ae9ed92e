"""The plan interface, and the plans that work tap by tap (for weights that do not factor into
one spatial kernel, or whose reach dwarfs the image).

- ``General``: for each output channel, every input channel of its group, tap by tap, on planar
  copies of the strip: the cheapest when each output reads few channels (a bank of different
  depthwise kernels, a 3→3 layer).
- ``TapMatmul``: for each tap, the shifted view of all channels times the tap's ``C/g × O/g``
  matrix, one BLAS product per tap: the cheapest when outputs mix many channels (a trained layer).
- ``Gather``: the same products on views gathered from the image by index, for a kernel whose
  reach is so much larger than the image (a dilation of 10,000) that loading padded strips would
  cost more than the taps themselves; taps that read only zero padding are skipped.
"""

from __future__ import annotations

import functools

import numpy as np

from .geometry import source_index
from .spatial import Scratch, accumulate

# Bytes of float32 input a strip aims for: measured best on 12 MP with 2 threads, large enough
# that the Python work per strip and the hand-offs between threads stay small.
STRIP_BYTES = 1 << 21
# The most a strip may take (a large kernel's halo): beyond it, a plan gathers its samples.
STRIP_LIMIT = 64 << 20


class Plan:
    """What every plan tells the strip loop: the dtype a strip is loaded as, whether all output
    channels are one channel copied (``replicated``), how many output rows a strip wants given
    the rows a byte budget allows, and how to compute a block of output rows."""

    strip_dtype = np.float32
    replicated = False

    def strip_rows(self, conv, rows: int) -> int:
        """Output rows per strip, from the ``rows`` that the strip budget allows."""
        return rows

    def serial(self, conv, sink: bool = False) -> bool:
        """True where strips should run one after another (the method uses every core itself);
        ``sink``: each block is handed to a sink as it is computed."""
        return False

    def block_dtype(self, conv, pixels: np.dtype) -> np.dtype:
        """The dtype of the blocks ``compute`` fills for pixels of ``pixels`` to be made from:
        float32 sums, unless the plan can do better (see ``Factored``)."""
        return np.dtype(np.float32)

    def compute(self, conv, r0: int, n: int, out: np.ndarray, scratch: Scratch, collapse: bool = False) -> None:
        """Compute output rows ``r0 … r0+n-1`` of ``conv`` into ``out`` (n, W', O) from its padded strip."""
        strip = conv.load(r0, n, scratch, self.strip_dtype)
        self(strip, out, conv.geometry.stride, conv.geometry.dilation, scratch, collapse)

    def __call__(self, strip, out, stride, dilation, scratch: Scratch, collapse: bool = False) -> None:
        raise NotImplementedError


class General(Plan):
    """Any weight: for each output channel, every input channel of its group, tap by tap, on a
    planar copy of the strip (one 2-D plane per channel, so each pass is a long 2-D view)."""

    def __init__(self, weight: np.ndarray, groups: int) -> None:
        self.weight, self.groups = weight, groups
        self.cost = 2 * int(np.count_nonzero(weight)) + weight.shape[1] * groups  # passes of one channel

    @functools.cached_property
    def taps(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per output channel: the input channel, row, column and weight of each non-zero tap
        (made when first used: weighing this plan against another needs only its cost)."""
        out_channels, group_in, _, _ = self.weight.shape
        group_out = out_channels // self.groups
        taps = []
        for o in range(out_channels):
            c, i, j = np.nonzero(self.weight[o])
            taps.append((c + (o // group_out) * group_in, i, j, self.weight[o][c, i, j].astype(np.float32)))
        return taps

    def __call__(self, strip, out, stride, dilation, scratch: Scratch, collapse: bool = False) -> None:
        """Compute ``out`` (n, W', O) from the interleaved ``strip`` (R, Wp, C)."""
        n, width, _ = out.shape
        (sy, sx), (dy, dx) = stride, dilation
        planes = scratch.get("planes", (strip.shape[2], *strip.shape[:2]))
        np.copyto(planes, strip.transpose(2, 0, 1))
        acc = scratch.get("acc", (n, width))
        tmp = scratch.get("tmp", (n, width))
        for o, (channels, rows, cols, weights) in enumerate(self.taps):
            terms = (
                (w, planes[c, i * dy : i * dy + (n - 1) * sy + 1 : sy, j * dx : j * dx + (width - 1) * sx + 1 : sx])
                for c, i, j, w in zip(channels, rows, cols, weights, strict=True)
            )
            accumulate(acc, terms, tmp)
            out[..., o] = acc


class TapMatmul(Plan):
    """Any weight as one channel-mixing product per tap: ``out += view(i, j) @ W[:, :, i, j]ᵀ``
    per group. With ``finite`` False (the image holds NaN or infinity) each product is made of
    the non-zero weights only, so that a non-finite pixel reaches exactly the outputs whose
    non-zero taps read it, as with every other plan."""

    def __init__(self, weight: np.ndarray, groups: int, finite: bool = True) -> None:
        out_channels, group_in, kh, kw = weight.shape
        self.groups, self.group_in, self.group_out = groups, group_in, out_channels // groups
        # matrices[i, j, g] is the (C/g, O/g) matrix of tap (i, j) in group g
        per_group = weight.reshape(groups, self.group_out, group_in, kh, kw)
        self.matrices = np.ascontiguousarray(per_group.transpose(3, 4, 0, 2, 1), np.float32)
        self.weight = weight
        self.live = [
            (int(i), int(j))
            for i, j in zip(*np.nonzero(np.any(self.matrices.reshape(kh, kw, -1), axis=2)), strict=True)
        ]
        self.finite = finite
        channels = groups * group_in
        # in General's units (one pass over one channel), as measured on 1–12 MP: per tap, a fixed
        # part, the copy in and the add out of every channel, and a product's own call per group
        self.cost = len(self.live) * (10 + 2 * (channels + out_channels) + 4 * groups)

    def __call__(self, strip, out, stride, dilation, scratch: Scratch, collapse: bool = False) -> None:
        """Compute ``out`` (n, W', O) from the interleaved ``strip`` (R, Wp, C)."""
        n, width, _ = out.shape
        (sy, sx), (dy, dx) = stride, dilation
        for k, (i, j) in enumerate(self.live):
            view = strip[i * dy : i * dy + (n - 1) * sy + 1 : sy, j * dx : j * dx + (width - 1) * sx + 1 : sx]
            self.product(view, i, j, out, scratch, first=k == 0)
        if not self.live:
            out.fill(0)

    def product(self, view: np.ndarray, i: int, j: int, out: np.ndarray, scratch: Scratch, first: bool) -> None:
        """``out`` (n, W', O) is set to (``first``) or incremented by tap (i, j) applied to
        ``view`` (n, W', C), the input samples that tap reads."""
        n, width, _ = view.shape
        g, cg, og = self.groups, self.group_in, self.group_out
        if not self.finite:
            tmp = scratch.get("pair_tmp", (n, width))
            for o in range(out.shape[2]):
                group = o // og
                terms = [(w, view[..., group * cg + c]) for c, w in enumerate(self.matrices[i, j, group, :, o % og])]
                terms = [(np.float32(w), v) for w, v in terms if w != 0]
                if first:
                    accumulate(out[..., o], terms, tmp)
                else:
                    for w, v in terms:
                        np.multiply(v, w, out=tmp)
                        np.add(out[..., o], tmp, out=out[..., o])
            return
        source = scratch.get("tap_in", (n, width, cg))
        product = scratch.get("tap_out", (n * width, og))
        for group in range(g):
            np.copyto(source, view[..., group * cg : (group + 1) * cg])
            np.matmul(source.reshape(n * width, cg), self.matrices[i, j, group], out=product)
            target = out[..., group * og : (group + 1) * og]
            if first:
                np.copyto(target, product.reshape(n, width, og))
            else:
                np.add(target, product.reshape(n, width, og), out=target)


class Gather(Plan):
    """Tap products on samples gathered from the image by index, never a padded strip: for a
    reach far beyond the image, where a strip would be mostly padding. Work is one gather and
    one product per tap that reads the image; with zero padding, taps that read only padding
    are skipped. A weight that is one separable kernel ``u vᵀ`` times a mixing matrix
    (``separable``: u, v and the (O, C) matrix) takes ``kh + kw`` gathers instead of ``kh·kw``."""

    def __init__(self, weight: np.ndarray, groups: int, finite: bool, separable=None) -> None:
        self.taps = TapMatmul(weight, groups, finite)
        self.separable = separable

    def strip_rows(self, conv, rows: int) -> int:
        """As many rows as the strip budget allows for the gathered rows and their products."""
        _, width, channels = conv.x.shape
        row_bytes = 4 * max(width * channels, conv.shape[1] * max(channels, conv.out_channels))
        return max(1, STRIP_BYTES // row_bytes)

    def compute(self, conv, r0: int, n: int, out: np.ndarray, scratch: Scratch, collapse: bool = False) -> None:
        """Compute output rows ``r0 … r0+n-1`` of ``conv`` into ``out`` (n, W', O) from its image."""
        x, geo, mode = conv.x, conv.geometry, conv.padding_mode
        height, width, channels = x.shape
        (sy, sx), (dy, dx) = geo.stride, geo.dilation
        out_rows = np.arange(r0, r0 + n) * sy - geo.top
        out_cols = np.arange(out.shape[1]) * sx - geo.left
        if self.separable is not None:
            self._separable(x, mode, out_rows, out_cols, (dy, dx), out, scratch)
            return
        first = True
        for i in sorted({i for i, _ in self.taps.live}):
            rows = source_index(out_rows + i * dy, height, mode)
            if np.all(rows < 0):
                continue
            block = _gather(x, rows, 0, scratch.get("rows", (n, width, channels)))
            for j in (j for ii, j in self.taps.live if ii == i):
                cols = source_index(out_cols + j * dx, width, mode)
                if np.all(cols < 0):
                    continue
                view = _gather(block, cols, 1, scratch.get("view", (n, len(cols), channels)))
                self.taps.product(view, i, j, out, scratch, first)
                first = False
        if first:
            out.fill(0)

    def _separable(self, x, mode, out_rows, out_cols, dilation, out, scratch: Scratch) -> None:
        """``u`` down the gathered rows, ``v`` along the gathered columns, then the mix."""
        u, v, matrix = self.separable
        _, width, channels = x.shape
        n, out_width = len(out_rows), len(out_cols)
        vertical = scratch.get("vertical", (n, width, channels))
        _sum_of_gathers(x, u, out_rows, dilation[0], mode, 0, vertical, scratch.get("rows", vertical.shape))
        horizontal = scratch.get("horizontal", (n, out_width, channels))
        _sum_of_gathers(vertical, v, out_cols, dilation[1], mode, 1, horizontal, scratch.get("view", horizontal.shape))
        for o, coefficients in enumerate(matrix):  # the non-zero terms only (no inf · 0)
            terms = [(np.float32(w), horizontal[..., c]) for c, w in enumerate(coefficients) if w != 0]
            accumulate(out[..., o], terms, scratch.get("mix_tmp", (n, out_width)))


def _gather(source: np.ndarray, index: np.ndarray, axis: int, out: np.ndarray) -> np.ndarray:
    """``source`` at the positions ``index`` along ``axis`` (0 or 1), into the float32 ``out``;
    zero where ``index`` is -1 (zero padding)."""
    np.copyto(out, np.take(source, np.maximum(index, 0), axis=axis), casting="unsafe")
    out[(slice(None),) * axis + (index < 0,)] = 0
    return out


def _sum_of_gathers(source, weights, positions, dilation, mode, axis, out, tmp) -> None:
    """``out = Σ_k weights[k] · source`` gathered along ``axis`` at ``positions + k·dilation``
    (mapped by the padding mode); taps of weight 0 or that read only padding are skipped."""
    out.fill(0)
    for k, w in enumerate(weights):
        index = source_index(positions + k * dilation, source.shape[axis], mode)
        if w == 0 or np.all(index < 0):
            continue
        _gather(source, index, axis, tmp)
        tmp *= np.float32(w)
        out += tmp
