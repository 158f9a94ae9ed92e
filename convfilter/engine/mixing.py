"""Channel mixing per pixel: ``target[..., o] = Σ_c matrix[o, c] · source[..., c]``, the step
before and after a factored plan's spatial kernel."""

from __future__ import annotations

import cv2
import numpy as np

from .spatial import accumulate

# Mixing matrices with more entries than this are applied as one matrix product per strip.
MATMUL_MIX_ENTRIES = 16
# (inputs, outputs) of the mixes cv2.transform runs in vectorised loops, 6 to 12 times NumPy's
# sums as measured; for the others it is slower than they are
TRANSFORM_MIXES = {(2, 2), (3, 3), (4, 4), (3, 1)}


def mix(
    source: np.ndarray,
    matrix: np.ndarray,
    target: np.ndarray,
    tmp: np.ndarray,
    finite: bool = True,
    native: bool = False,
) -> None:
    """Per pixel ``target[..., o] = Σ_c matrix[o, c] · source[..., c]``: a matrix product for a
    large matrix with no zero (with ``native``, OpenCV's ``cv2.transform`` for the small ones it
    runs fast), else sums of the non-zero terms (so that an infinity, in the input or from an
    overflow, never meets a zero weight and turns into NaN)."""
    if finite and np.all(matrix != 0):
        if matrix.size > MATMUL_MIX_ENTRIES:
            np.matmul(source, matrix.T.astype(np.float32), out=target)
            return
        fast = native and matrix.shape[::-1] in TRANSFORM_MIXES
        if fast and source.flags.c_contiguous and target.flags.c_contiguous:
            # one pass over interleaved pixels instead of a strided pass per term
            result = cv2.transform(source, matrix.astype(np.float32), dst=target)
            if result.__array_interface__["data"][0] != target.__array_interface__["data"][0]:
                np.copyto(target, result.reshape(target.shape))
            return
    for o in range(matrix.shape[0]):
        terms = [(np.float32(w), source[..., c]) for c, w in enumerate(matrix[o]) if w != 0]
        accumulate(target[..., o], terms, tmp)
