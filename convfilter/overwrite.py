"""A result written over the image it is computed from, strip by strip, so that a command holds
one image's pixels rather than two.

A strip's output rows replace the same input rows only once every output row whose taps may read
them has been computed; rows that some strip still to come reads are held back until it has run.
Strips may finish in any order and on any thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import numpy as np


class Overwrite:
    """Places pixels of output rows into ``target`` (the input image's own array) once no output
    row within ``reach`` rows of them is still to be computed."""

    def __init__(self, target: np.ndarray, reach: int) -> None:
        self.target = target
        self.reach = reach
        self.done = np.zeros(len(target), bool)
        self.held: dict[int, np.ndarray] = {}  # first row → pixels of rows not placed yet
        self.lock = threading.Lock()

    def write(self, r0: int, values: np.ndarray, convert: Callable[[np.ndarray, np.ndarray], None]) -> None:
        """Record output rows ``r0 …`` as computed and have ``convert(values, destination)`` make
        their pixels: straight into the target where no strip still to come reads those rows,
        into rows held back otherwise; then place any held rows that have become free."""
        with self.lock:
            self.done[r0 : r0 + len(values)] = True
            ready = self._ready(r0, len(values))
        for a, b, free in _runs(ready):
            if free:
                convert(values[a:b], self.target[r0 + a : r0 + b])
            else:
                held = np.empty((b - a, *self.target.shape[1:]), self.target.dtype)
                convert(values[a:b], held)
                with self.lock:
                    self.held[r0 + a] = held
        with self.lock:
            for start in list(self.held):
                self._flush(start)

    def _flush(self, start: int) -> None:
        block = self.held.pop(start)
        for a, b, free in _runs(self._ready(start, len(block))):
            if free:
                self.target[start + a : start + b] = block[a:b]
            else:  # still read: kept, each run under its first row
                self.held[start + a] = block[a:b]

    def _ready(self, start: int, count: int) -> np.ndarray:
        """Whether each of rows ``start … start+count-1`` has every row within ``reach`` computed."""
        reach, total = self.reach, len(self.done)
        low, high = max(0, start - reach), min(total, start + count + reach)
        missing = np.concatenate([[0], np.cumsum(~self.done[low:high])])
        rows = np.arange(start, start + count)
        first, last = np.maximum(rows - reach, 0) - low, np.minimum(rows + reach + 1, total) - low
        return missing[last] == missing[first]

    def finish(self) -> None:
        """Place what is left and check that every row has been (all strips computed)."""
        with self.lock:
            for start in list(self.held):
                self._flush(start)
        if self.held:
            raise RuntimeError(f"rows {sorted(self.held)} of the result were never placed")


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """The runs of equal values in a boolean ``mask``: (start, end, value).

    >>> _runs(np.array([True, True, False, True]))
    [(0, 2, True), (2, 3, False), (3, 4, True)]
    """
    edges = [0, *(np.flatnonzero(mask[1:] != mask[:-1]) + 1).tolist(), len(mask)]
    return [(a, b, bool(mask[a])) for a, b in itertools.pairwise(edges) if b > a]
