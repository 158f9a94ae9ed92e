"""Images holding NaN or infinities, at the speed of finite ones.

Summed tap by tap with zero weights skipped (the reference), an output is NaN where a non-zero
tap reads a NaN, or where an infinity of each sign arrives (``+inf`` times a negative weight
arrives as ``-inf``); else ``±inf`` where infinities of one sign arrive; else the finite sum.
``NonFinite`` gets the same result from any plan for finite images: the plan runs on strips whose
non-finite values are loaded as zeros (the finite sum), and the outputs that infinities reach are
found by convolving two indicator images — where a value pushes towards ``+inf`` (``+inf`` or
NaN) and towards ``-inf`` (``-inf`` or NaN) — with the indicators of the positive and of the
negative weights, in 8-bit integers, exactly. Strips that hold no non-finite value cost one check.
"""

from __future__ import annotations

import numpy as np

from .spatial import Scratch
from .taps import Plan

# rows of an image checked for its finite range at a time
RANGE_ROWS_BYTES = 8 << 20


def finite_range(x: np.ndarray) -> tuple[float, float]:
    """The smallest and largest values of ``x`` within float32's range ((0, 0) if none), a band
    of rows at a time (``x`` may be a broadcast view: never copied whole)."""
    top = float(np.finfo(np.float32).max)
    low, high = np.inf, -np.inf
    rows = max(1, RANGE_ROWS_BYTES // max(1, x[:1].nbytes))
    for r0 in range(0, x.shape[0], rows):
        band = x[r0 : r0 + rows]
        # NaN compares False; a float of 32 bits or fewer holds nothing beyond float32's range
        kept = band[np.isfinite(band) if band.dtype.itemsize <= 4 else np.abs(band) <= top]
        if kept.size:
            low, high = min(low, float(kept.min())), max(high, float(kept.max()))
    return (low, high) if low <= high else (0.0, 0.0)


class NonFinite(Plan):
    """``plan`` (made for finite images) on strips loaded with non-finite values as zeros, then
    NaN and ``±inf`` set where the tap-by-tap sum would have them (see the module's notes)."""

    def __init__(self, plan: Plan, weight: np.ndarray, groups: int) -> None:
        self.plan, self.groups = plan, groups
        self.strip_dtype, self.replicated = plan.strip_dtype, plan.replicated
        self.signs = (weight > 0).astype(np.float32), (weight < 0).astype(np.float32)

    def strip_rows(self, conv, rows: int) -> int:
        """The finite plan's strip height."""
        return self.plan.strip_rows(conv, rows)

    def compute(self, conv, r0: int, n: int, out: np.ndarray, scratch: Scratch, collapse: bool = False) -> None:
        """The finite plan's outputs, then those that non-finite values reach."""
        self.plan.compute(conv, r0, n, out, scratch, collapse)
        strip = conv.load(r0, n, scratch, np.float32, clean=False)
        if np.isfinite(strip).all():
            return
        nan = np.isnan(strip)
        rising = ((strip == np.inf) | nan).view(np.uint8)  # towards +inf with a positive weight
        falling = ((strip == -np.inf) | nan).view(np.uint8)
        positive, negative = self.signs
        up = self._reached(conv, rising, positive, out.shape) | self._reached(conv, falling, negative, out.shape)
        down = self._reached(conv, rising, negative, out.shape) | self._reached(conv, falling, positive, out.shape)
        out[up & ~down] = np.inf
        out[down & ~up] = -np.inf
        out[up & down] = np.nan

    def _reached(self, conv, indicator: np.ndarray, weight: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """Outputs of the strip (``shape``: the block's) that a marked input reaches through a
        marked weight: a valid convolution of the padded strip, counted in integers."""
        from .core import Convolution

        n, width, channels = shape
        if not indicator.any() or not weight.any():
            return np.zeros(shape, bool)
        geo = conv.geometry
        hits = Convolution(indicator, weight, stride=geo.stride, padding=0, dilation=geo.dilation, groups=self.groups)
        return hits.run(threads=1)[:n, :width, :channels] > 0.5
