"""Float results to pixels: the dtype an output format is written with, and rounding,
saturating and the range policies (clip, abs, offset, normalize), strip by strip."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .engine.native import PIXEL_DEPTHS

# The depths OpenCV's colour conversions take (channel swaps and copies are faster through them)
OPENCV_DEPTHS = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def pixel_dtype(input_dtype: np.dtype, fmt: str) -> np.dtype:
    """The dtype an output in format ``fmt`` is written with, for an input of ``input_dtype``."""
    if fmt == "npy" or (fmt == "tiff" and input_dtype not in (np.uint8, np.uint16)):
        return np.dtype(np.float32)  # raw, float and wider integer images stay float: never clipped
    if input_dtype == np.uint16 and fmt in ("png", "tiff"):
        return np.dtype(np.uint16)
    return np.dtype(np.uint8)


def to_pixels(
    result: np.ndarray,
    dtype: np.dtype,
    range_policy: str,
    scale: float = 1.0,
    out: np.ndarray | None = None,
    finite: bool = True,
    tally: list[int] | None = None,
) -> np.ndarray:
    """Turn a float result (or exact whole-number sums, int16) into pixels of ``dtype`` by
    ``range_policy``.

    ``clip`` rounds to nearest and saturates, as ``cv2.imwrite`` does with a float image; ``abs``
    takes the absolute value first; ``offset`` adds half the range so that 0 is mid-grey;
    ``normalize`` stretches the result's min..max to the full range. ``scale`` multiplies the
    result first (1/257 to write a 16-bit result as 8 bits). A float ``dtype`` is never clipped.
    With ``out``, the pixels are written there and ``result`` is used as scratch space. Unless
    ``finite`` (the result may hold NaN: the image did), NaN becomes 0 and infinities saturate.
    With ``tally``, the number of values that saturate is appended to it.

    >>> to_pixels(np.array([-3, 7, 300], np.int16), np.uint8, "clip").tolist()
    [0, 7, 255]
    >>> to_pixels(np.array([-3.5, 0.5, 1.5, 300.0], np.float32), np.uint8, "clip").tolist()
    [0, 0, 2, 255]
    >>> to_pixels(np.array([np.nan, np.inf, -np.inf], np.float32), np.uint8, "offset", finite=False).tolist()
    [128, 255, 0]
    """
    dtype = np.dtype(dtype)
    if result.dtype.kind in "iu":  # exact whole-number sums
        if range_policy == "clip" and scale == 1 and _saturate_by_opencv(result, dtype, out, tally):
            return out
        result = result.astype(np.float32)  # float32 holds every int16 exactly
    if dtype.kind == "f":
        values = result
    else:
        top = float(np.iinfo(dtype).max)
        values = result if out is not None else result.copy()
        if not finite:
            np.nan_to_num(values, copy=False, nan=0.0)
        if scale != 1:
            values *= np.float32(scale)
        if range_policy == "abs":
            np.abs(values, out=values)
        elif range_policy == "offset":
            values += np.float32((top + 1) / 2)
        elif range_policy == "normalize":
            low, high = float(values.min()), float(values.max())
            values -= np.float32(low)
            values *= np.float32(top / (high - low) if high > low else 0.0)
        if _round_by_opencv(values, dtype, out, tally):
            return out
        np.rint(values, out=values)
        if tally is not None and not (values.min() >= 0 and values.max() <= top):  # NaN: counted past
            tally.append(int(np.count_nonzero(values < 0) + np.count_nonzero(values > top)))
        np.clip(values, 0, top, out=values)
    # a NaN that sums beyond float32's range made (inf - inf) has no pixel value: the cast is quiet
    with np.errstate(invalid="ignore"):
        if out is None:
            return values.astype(dtype)
        np.copyto(out, values, casting="unsafe")
    return out


# OpenCV rounds to nearest even and saturates in one pass, as NumPy's rint, clip and cast do in
# three, for values whose rounding fits an int32: the others take NumPy's way
_OPENCV_ROUNDS = 2.0**31 - 2**8  # the largest float32 below 2^31


def _round_by_opencv(values: np.ndarray, dtype: np.dtype, out: np.ndarray | None, tally: list[int] | None) -> bool:
    """Round finite float32 ``values`` to nearest even, saturated to ``dtype``, into ``out``
    with OpenCV, counting into ``tally`` those that saturate; False (nothing done) where OpenCV
    cannot: other dtypes, values beyond int32 or NaN, more than OpenCV indexes, a few values."""
    # a few values NumPy rounds as fast (and OpenCV takes an array of up to 4 as a scalar)
    if out is None or dtype not in PIXEL_DEPTHS or values.dtype != np.float32 or values.size < 4096:
        return False
    if not values.flags.c_contiguous or values.shape != out.shape or values.size >= 2**31:
        return False
    flat = values.reshape(len(values) if values.ndim > 1 else 1, -1)
    # minMaxLoc passes over NaN: a sum (in float64, which no float32 values overflow) that is not
    # finite finds a NaN or an infinity, left to NumPy's cast as it always was
    if not math.isfinite(cv2.sumElems(flat)[0]):
        return False
    low, high, _, _ = cv2.minMaxLoc(flat)
    if not -_OPENCV_ROUNDS <= low <= high <= _OPENCV_ROUNDS:
        return False
    top = float(np.iinfo(dtype).max)
    saturates = low < -0.5 or high >= top + 0.5  # rounds below 0 or above top
    if tally is not None and saturates:
        below, above = cv2.compare(flat, -0.5, cv2.CMP_LT), cv2.compare(flat, top + 0.5, cv2.CMP_GE)
        tally.append(cv2.countNonZero(below) + cv2.countNonZero(above))
    target = out if out.flags.c_contiguous else np.empty(out.shape, dtype)
    cv2.add(flat, 0.0, dst=target.reshape(flat.shape), dtype=PIXEL_DEPTHS[dtype])
    if target is not out:
        np.copyto(out, target)
    return True


def _saturate_by_opencv(sums: np.ndarray, dtype: np.dtype, out: np.ndarray | None, tally: list[int] | None) -> bool:
    """Saturate whole-number ``sums`` (int16) to ``dtype`` into ``out`` with OpenCV, counting
    into ``tally`` those that saturate; False (nothing done) where OpenCV cannot."""
    if out is None or dtype not in PIXEL_DEPTHS or sums.dtype != np.int16 or sums.shape != out.shape:
        return False
    if not sums.flags.c_contiguous or sums.size >= 2**31 or sums.size < 4:
        return False
    flat = sums.reshape(len(sums) if sums.ndim > 1 else 1, -1)
    top = int(np.iinfo(dtype).max)
    low, high, _, _ = cv2.minMaxLoc(flat)
    if tally is not None and (low < 0 or high > top):
        tally.append(flat.size - cv2.countNonZero(cv2.inRange(flat, 0, top)))
    target = out if out.flags.c_contiguous else np.empty(out.shape, dtype)
    cv2.add(flat, 0, dst=target.reshape(flat.shape), dtype=PIXEL_DEPTHS[dtype])
    if target is not out:
        np.copyto(out, target)
    return True


def opencv_writes(array: np.ndarray) -> bool:
    """Whether OpenCV can write into the ``(H, W, C)`` ``array`` in place: whole rows of packed
    pixels (NumPy calls a view of the first channels of a one-pixel row contiguous; OpenCV does not).

    >>> opencv_writes(np.zeros((1, 1, 4), np.uint8)[:, :, :3]), opencv_writes(np.zeros((2, 2, 3)))
    (False, True)
    """
    item = array.itemsize
    return bool(array.flags.c_contiguous and array.strides[1:] == (array.shape[2] * item, item))


def spread(channel: np.ndarray, destination: np.ndarray) -> None:
    """Copy the one channel of ``channel`` ``(H, W, 1)`` to every channel of ``destination``
    ``(H, W, C)`` of the same dtype: OpenCV's gray-to-colour conversion for three channels it
    takes (a broadcast copy is thirty times slower), else a copy per channel.

    >>> d = np.zeros((1, 2, 3), np.uint8); spread(np.array([[[7], [9]]], np.uint8), d); d.tolist()
    [[[7, 7, 7], [9, 9, 9]]]
    """
    if destination.shape[2] == 3 and destination.dtype in OPENCV_DEPTHS and opencv_writes(destination):
        result = cv2.cvtColor(np.ascontiguousarray(channel), cv2.COLOR_GRAY2BGR, dst=destination)
        if result.__array_interface__["data"][0] == destination.__array_interface__["data"][0]:
            return
    for c in range(destination.shape[2]):
        destination[..., c] = channel[..., 0]
