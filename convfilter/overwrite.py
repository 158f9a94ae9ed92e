"""A result written over the image it is computed from, strip by strip, so that a command holds
one image's pixels rather than two.

A strip's output rows replace the same input rows only once every output row whose taps may read
them has been computed; rows that some strip still to come reads are held back until it has run.
Strips may finish in any order and on any thread.
"""

from __future__ import annotations

import threading

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

    def place(self, r0: int, pixels: np.ndarray) -> None:
        """Record output rows ``r0 …`` as computed and place their ``pixels`` (broadcast to the
        target's channels), and any held rows that no strip still to come reads."""
        with self.lock:
            self.done[r0 : r0 + len(pixels)] = True
            self.held[r0] = pixels
            for start in list(self.held):
                self._flush(start)

    def _flush(self, start: int) -> None:
        block = self.held.pop(start)
        ready = self._ready(start, len(block))
        runs = np.flatnonzero(np.diff(np.concatenate([[False], ready, [False]]).astype(np.int8)))
        for a, b in zip(runs[::2], runs[1::2], strict=True):
            self.target[start + a : start + b] = block[a:b]
        if not ready.all():  # keep the rows still read, each run under its first row
            waiting = np.flatnonzero(np.diff(np.concatenate([[True], ready, [True]]).astype(np.int8)))
            for a, b in zip(waiting[::2], waiting[1::2], strict=True):
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
        """Check that every row has been placed (all strips computed)."""
        if self.held:
            raise RuntimeError(f"rows {sorted(self.held)} of the result were never placed")
