"""2-D convolution with PyTorch's ``nn.Conv2d`` semantics, in vectorised NumPy.

The image is ``(H, W, C)`` (channels last, as image libraries hold pixels) and the weight is
PyTorch's ``[O, C/groups, kh, kw]``. The work runs over strips of output rows and, inside a
strip, tap by tap: each of the ``kh·kw`` taps adds a shifted view of the padded strip, times
that tap's weights, into the strip of the output. Memory beyond the output is a few strips,
never an ``H·W·C·kh·kw`` array of windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# Bytes of float32 output a strip aims for: small enough for the working set (input strip,
# output strip, one temporary) to stay in the CPU cache.
_STRIP_BYTES = 1 << 18


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """Return ``(y, x)`` from an int or a pair of ints, each at least 1."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise UsageError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < 1:
        raise UsageError(f"{name} must be at least 1, got {value!r}")
    return int(pair[0]), int(pair[1])


def divisors(n: int) -> list[int]:
    """Return the positive divisors of ``n`` in increasing order.

    >>> divisors(12)
    [1, 2, 3, 4, 6, 12]
    """
    return [d for d in range(1, n + 1) if n % d == 0]


def common_divisors(a: int, b: int) -> list[int]:
    """Return the numbers that divide both ``a`` and ``b``: the valid ``groups`` for a layer.

    >>> common_divisors(3, 3)
    [1, 3]
    """
    return [d for d in divisors(a) if b % d == 0]


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise a ``UsageError`` unless ``groups`` divides both channel counts."""
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise UsageError(f"groups must be a positive integer, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        valid = ", ".join(map(str, common_divisors(in_channels, out_channels)))
        raise UsageError(
            f"groups={groups} must divide both the {in_channels} input and {out_channels} output channels; "
            f"try one of {valid}"
        )


@dataclass(frozen=True)
class Geometry:
    """Where the output samples the input: padding on each side, stride, dilation, output size."""

    top: int
    bottom: int
    left: int
    right: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    out_height: int
    out_width: int


def geometry(
    height: int,
    width: int,
    kernel_size: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: str | int | tuple[int, int] = "same",
    dilation: int | tuple[int, int] = 1,
) -> Geometry:
    """Work out the padding and output size of a convolution, as ``nn.Conv2d`` does.

    ``"same"`` pads ``dilation·(k-1)`` in all, half before and the rest (one more for an even
    kernel) after, as PyTorch does; unlike PyTorch it also allows a stride, which then keeps
    every stride-th sample of the "same" result.

    >>> g = geometry(5, 6, (4, 3))
    >>> (g.top, g.bottom, g.left, g.right, g.out_height, g.out_width)
    (1, 2, 1, 1, 5, 6)
    """
    kh, kw = kernel_size
    sy, sx = _pair(stride, "stride")
    dy, dx = _pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "same":
            total_y, total_x = dy * (kh - 1), dx * (kw - 1)
            top, left = total_y // 2, total_x // 2
            bottom, right = total_y - top, total_x - left
        elif padding == "valid":
            top = bottom = left = right = 0
        else:
            raise UsageError(f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
    else:
        py, px = (padding, padding) if isinstance(padding, (int, np.integer)) else tuple(padding)
        if isinstance(py, bool) or isinstance(px, bool) or min(py, px) < 0:
            raise UsageError(f"padding must be 'same', 'valid' or non-negative ints, got {padding!r}")
        top = bottom = int(py)
        left = right = int(px)
    out_height = (height + top + bottom - dy * (kh - 1) - 1) // sy + 1
    out_width = (width + left + right - dx * (kw - 1) - 1) // sx + 1
    if out_height < 1 or out_width < 1:
        raise UsageError(
            f"a {height}×{width} image is too small for a {kh}×{kw} kernel with dilation {dy}×{dx} "
            f"and padding {padding!r}"
        )
    return Geometry(top, bottom, left, right, (sy, sx), (dy, dx), out_height, out_width)


def source_index(padded: np.ndarray, size: int, padding_mode: str) -> np.ndarray:
    """Map positions in the padded axis (already shifted so 0 is the first real sample) to
    positions in the real axis; for ``zeros`` the positions outside are returned as -1.

    >>> source_index(np.arange(-3, 6), 4, "reflect").tolist()
    [3, 2, 1, 0, 1, 2, 3, 2, 1]
    >>> source_index(np.arange(-2, 6), 4, "circular").tolist()
    [2, 3, 0, 1, 2, 3, 0, 1]
    """
    if padding_mode == "zeros":
        return np.where((padded >= 0) & (padded < size), padded, -1)
    if padding_mode == "replicate":
        return np.clip(padded, 0, size - 1)
    if padding_mode == "circular":
        return np.mod(padded, size)
    if size == 1:
        return np.zeros_like(padded)
    # reflect about the first and last sample without repeating them, period 2·(size-1)
    period = 2 * (size - 1)
    folded = np.mod(padded, period)
    return np.where(folded < size, folded, period - folded)


def _gather(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return the float32 block ``x[rows][:, cols]``, with zeros where an index is -1."""
    valid_rows, valid_cols = rows >= 0, cols >= 0
    if valid_rows.all() and valid_cols.all():
        block = x[rows[0] : rows[-1] + 1] if _is_run(rows) else x[rows]
        block = block[:, cols[0] : cols[-1] + 1] if _is_run(cols) else block[:, cols]
        return block.astype(np.float32)
    out = np.zeros((len(rows), len(cols), x.shape[2]), np.float32)
    inner = x[rows[valid_rows]][:, cols[valid_cols]]
    out[np.ix_(valid_rows, valid_cols)] = inner
    return out


def _is_run(index: np.ndarray) -> bool:
    """True when ``index`` counts up by one, so a slice (a view) can replace fancy indexing."""
    return bool(index[-1] - index[0] == len(index) - 1 and np.all(np.diff(index) == 1))


class Convolution:
    """A convolution checked and planned once: its geometry, output shape and per-tap weights.

    ``run()`` returns the whole result; ``strips()`` yields it strip by strip, so that a caller
    can turn each strip into pixels as it is computed without holding the whole float result.
    The arguments are those of :func:`convolve`.
    """

    def __init__(
        self,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = "same",
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        flip: bool = False,
    ) -> None:
        self.x, weight, self.bias, self.groups = _validate(x, weight, bias, groups, padding_mode)
        if flip:
            # mathematical convolution: the cross-correlation with the kernel rotated by 180°
            weight = weight[:, :, ::-1, ::-1]
        self.padding_mode = padding_mode
        height, width, _ = self.x.shape
        self.out_channels, self.group_in, kh, kw = weight.shape
        self.kernel_size = (kh, kw)
        self.geometry = geometry(height, width, (kh, kw), stride, padding, dilation)
        self.shape = (self.geometry.out_height, self.geometry.out_width, self.out_channels)
        group_out = self.out_channels // self.groups
        # each tap's weights as (groups, C/groups, O/groups), the layout the strip loop broadcasts
        self.taps = {}
        for i in range(kh):
            for j in range(kw):
                tap = weight[:, :, i, j].reshape(self.groups, group_out, self.group_in).transpose(0, 2, 1)
                if np.any(tap):  # an all-zero tap adds nothing: skipping it is exact
                    self.taps[i, j] = np.ascontiguousarray(tap)

    def strips(self, strip_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, block)`` pairs that together make the result.

        Each block is a float32 array ``(rows, W', O)`` that is reused for the next strip: copy
        or convert it before asking for the next one.
        """
        geo, x = self.geometry, self.x
        height, width, channels = x.shape
        (kh, kw), (sy, sx), (dy, dx) = self.kernel_size, geo.stride, geo.dilation
        out_width, groups = geo.out_width, self.groups
        group_out = self.out_channels // groups
        cols = np.arange((out_width - 1) * sx + dx * (kw - 1) + 1) - geo.left
        cols = source_index(cols, width, self.padding_mode)
        if strip_rows is None:
            strip_rows = max(1, _STRIP_BYTES // (4 * out_width * max(self.out_channels, channels)))
        buffer = np.empty((min(strip_rows, geo.out_height), out_width, self.out_channels), np.float32)
        temp = np.empty_like(buffer)
        for r0 in range(0, geo.out_height, strip_rows):
            n = min(strip_rows, geo.out_height - r0)
            rows = np.arange(r0 * sy, (r0 + n - 1) * sy + dy * (kh - 1) + 1) - geo.top
            rows = source_index(rows, height, self.padding_mode)
            strip = _gather(x, rows, cols).reshape(len(rows), len(cols), groups, self.group_in)
            acc = buffer[:n].reshape(n, out_width, groups, group_out)
            tmp = temp[:n].reshape(n, out_width, groups, group_out)
            acc.fill(0)
            for (i, j), tap in self.taps.items():
                view = strip[i * dy : i * dy + (n - 1) * sy + 1 : sy, j * dx : j * dx + (out_width - 1) * sx + 1 : sx]
                if self.group_in <= 8:
                    for c in range(self.group_in):
                        np.multiply(view[..., c : c + 1], tap[:, c, :], out=tmp)
                        acc += tmp
                else:
                    acc += np.einsum("nwgc,gco->nwgo", view, tap, optimize=True)
            block = buffer[:n]
            if self.bias is not None:
                block += self.bias
            yield r0, block

    def run(self) -> np.ndarray:
        """Return the whole float32 result ``(H', W', O)``."""
        out = np.empty(self.shape, np.float32)
        for r0, block in self.strips():
            out[r0 : r0 + len(block)] = block
        return out


def convolve(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: str | int | tuple[int, int] = "same",
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
) -> np.ndarray:
    """Convolve an image with a PyTorch-layout weight, as ``torch.nn.Conv2d`` does.

    Parameters
    ----------
    x : array ``(H, W, C)`` (or ``(H, W)`` for one channel) of any integer or float dtype.
    weight : array ``[O, C/groups, kh, kw]``.
    bias : ``None`` or ``O`` numbers added to the output channels.
    stride, dilation : int or ``(y, x)`` pair, at least 1.
    padding : ``"same"``, ``"valid"``, an int or a ``(y, x)`` pair of ints.
    groups : splits the input and output channels into this many independent groups.
    padding_mode : ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    flip : rotate the kernel by 180° first (mathematical convolution, not cross-correlation).

    Returns
    -------
    float32 array ``(H', W', O)``.

    >>> x = np.arange(9, dtype=np.uint8).reshape(3, 3, 1)
    >>> convolve(x, np.ones((1, 1, 3, 3)))[..., 0]
    array([[ 8., 15., 12.],
           [21., 36., 27.],
           [20., 33., 24.]], dtype=float32)
    """
    return Convolution(x, weight, bias, stride, padding, dilation, groups, padding_mode, flip).run()


def _validate(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int, padding_mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Check the arguments of :func:`convolve` once, and bring them to the shapes it works on."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise UsageError(f"the image must be an (H, W, C) or (H, W) array, got {x.ndim} dimensions")
    if x.dtype.kind not in "biuf":
        raise UsageError(f"the image must hold integers or floats, got dtype {x.dtype}")
    if min(x.shape) < 1:
        raise UsageError(f"the image is empty: shape {x.shape}")
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise UsageError(f"the weight must be 4-D [O, C/groups, kh, kw], got shape {weight.shape}")
    if weight.dtype.kind not in "biuf" or min(weight.shape) < 1:
        raise UsageError(f"the weight must be a non-empty array of numbers, got {weight.dtype} {weight.shape}")
    weight = weight.astype(np.float32)
    if padding_mode not in PADDING_MODES:
        raise UsageError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    channels, out_channels = x.shape[2], weight.shape[0]
    check_groups(channels, out_channels, groups)
    if weight.shape[1] * groups != channels:
        raise UsageError(
            f"the weight takes {weight.shape[1]} input channels per group, so {weight.shape[1] * groups} "
            f"with groups={groups}, but the image has {channels}"
        )
    if bias is not None:
        bias = np.asarray(bias, np.float32).reshape(-1)
        if len(bias) == 1:
            bias = np.repeat(bias, out_channels)
        if len(bias) != out_channels:
            raise UsageError(f"bias must hold 1 or {out_channels} numbers (one per output channel), got {len(bias)}")
    return x, weight, bias, int(groups)
