"""Where a convolution samples its input: padding, stride, dilation, output size, and the
mapping of padded positions to real ones for each padding mode; and the rules for groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..channels import check_groups, common_divisors, divisors
from ..errors import ArgumentError
from ..options import PADDING_MODES
from ..options import int_pair as parse_int_pair

__all__ = [
    "PADDING_MODES",
    "Geometry",
    "check_groups",
    "common_divisors",
    "divisors",
    "geometry",
    "int_pair",
    "pair",
    "source_index",
]


# Larger strides, dilations and paddings cannot index an array; nothing real needs them.
MAX_STEP = 2**31 - 1


def int_pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """Return ``(y, x)`` from an int or a one- or two-element sequence of ints, as ``nn.Conv2d``
    takes them (``(2,)`` means ``(2, 2)``), each from ``minimum`` to ``MAX_STEP``.

    >>> int_pair((3,), "stride", 1), int_pair([1, 2], "padding", 0)
    ((3, 3), (1, 2))
    """
    pair = parse_int_pair(value)
    if pair is None:
        raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum or max(pair) > MAX_STEP:
        raise ArgumentError(f"{name} must be from {minimum} to {MAX_STEP}, got {value!r}")
    return pair


def pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """Return ``(y, x)`` from an int or a pair of ints, each at least 1."""
    return int_pair(value, name, 1)


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
    reach: tuple[int, int]  # dilation·(k-1): how far below and right of its first tap a kernel reads

    @property
    def padded_width(self) -> int:
        """Columns of the padded image that the output reads (fewer than all of them when the
        stride does not tile the padded width)."""
        return (self.out_width - 1) * self.stride[1] + self.reach[1] + 1


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
    sy, sx = pair(stride, "stride")
    dy, dx = pair(dilation, "dilation")
    if isinstance(padding, str) or padding is None:
        if padding == "same":
            total_y, total_x = dy * (kh - 1), dx * (kw - 1)
            top, left = total_y // 2, total_x // 2
            bottom, right = total_y - top, total_x - left
        elif padding == "valid":
            top = bottom = left = right = 0
        else:
            raise ArgumentError(f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
    else:
        top, left = int_pair(padding, "padding", 0)
        bottom, right = top, left
    out_height = (height + top + bottom - dy * (kh - 1) - 1) // sy + 1
    out_width = (width + left + right - dx * (kw - 1) - 1) // sx + 1
    if out_height < 1 or out_width < 1:
        raise ArgumentError(
            f"a {height}×{width} image is too small for a {kh}×{kw} kernel with dilation {dy}×{dx} "
            f"and padding {padding!r}"
        )
    reach = (dy * (kh - 1), dx * (kw - 1))
    return Geometry(top, bottom, left, right, (sy, sx), (dy, dx), out_height, out_width, reach)


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
