"""OpenCV's filters as spatial methods: the same numbers as the NumPy methods, at native speed.

Each method here filters a padded strip exactly as the NumPy methods in ``spatial.py`` do (a
valid cross-correlation: the strip carries its halo), by calling OpenCV on the whole strip
(anchor at the kernel's centre) and cropping the rows and columns whose windows lie inside it.
The border OpenCV invents is constant zero and only ever reaches the cropped-off edge, so no
invented value reaches a kept output. OpenCV releases the GIL, so strips on threads scale.

- ``NativeBox``: equal weights, any size: ``cv2.boxFilter`` sums each window in O(1) per pixel
  (in integers for 8- and 16-bit strips), then one multiply by the weight while cropping;
- ``NativeSeparable``: a kernel of rank 1 or 2 as one ``cv2.sepFilter2D`` per rank;
- ``NativeDirect``: any kernel through ``cv2.filter2D`` on float32 strips (it switches to its
  own transform for large kernels, as exact here as the tap-by-tap sum in float32).

A dilated kernel is expanded with zeros where that stays cheap; a vertical stride computes every
row and keeps every stride-th (the cost is multiplied by the stride). For the box and separable
filters, strips of 8- and 16-bit images are loaded as they are: OpenCV reads a quarter or half
of the bytes. Costs are in the units of ``spatial.py``, measured on the same 12 MP photo.

Where the padding is one of OpenCV's borders and the output is the input's size (a depthwise
``"same"`` box or separable filter, or a large kernel through OpenCV's transform, stride 1),
``filter_rows`` skips the strip altogether: OpenCV
reads the image rows in place and writes the output block, and only the few rows at each cut
between strips are computed again from a band around it (``image_route`` says where).

``CONVFILTER_ENGINE=numpy`` in the environment (or ``engine="numpy"`` to ``Convolution``) keeps
every convolution on the pure NumPy methods, the reference the tests compare these with.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ArgumentError
from .spatial import Scratch

ENGINES = ("auto", "numpy")
# The most channels OpenCV's filters take in one array from Python (beyond, it sees an n-d array
# and refuses): strips with more are filtered in groups of this many.
MAX_CHANNELS = 128
# Strip dtypes OpenCV filters directly into float32; anything else is loaded as float32.
STRIP_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))
# A dilated kernel is expanded with zeros up to this many times its own taps.
MAX_EXPANSION = 4
CONSTANT, CENTRE = cv2.BORDER_CONSTANT, (-1, -1)
# The integer pixels OpenCV's filters write directly (rounded to nearest even, saturated)
PIXEL_DEPTHS = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U}
# OpenCV's borders that are padding modes (its filters take no circular border)
BORDERS = {"zeros": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}
# The largest sum of products (largest input times largest kernel sum) OpenCV is given.
MAX_REACH = 1e30
# filter2D's own transform takes over from direct taps at this many taps (float32 input)
DFT_TAPS = 130


def engine(choice: str | None = None) -> str:
    """The engine to plan with: ``choice`` if given, else ``CONVFILTER_ENGINE`` from the
    environment, else ``"auto"`` (OpenCV's filters where they compute the same numbers).

    >>> engine("numpy")
    'numpy'
    """
    value = os.environ.get("CONVFILTER_ENGINE", "auto") if choice is None else choice
    if value not in ENGINES:
        source = "engine" if choice is not None else "CONVFILTER_ENGINE"
        raise ArgumentError(f"{source} must be one of {', '.join(ENGINES)}, got {value!r}")
    return value


def strip_dtype(image_dtype: np.dtype) -> np.dtype:
    """The dtype an unmixed strip of an image of ``image_dtype`` is loaded as for OpenCV: the
    image's own for 8- and 16-bit integers, float32 otherwise."""
    image_dtype = np.dtype(image_dtype)
    return image_dtype if image_dtype in STRIP_DTYPES else np.dtype(np.float32)


def expand(kernel: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """``kernel`` with ``dilation - 1`` zeros between its taps: the same filter, undilated.

    >>> expand(np.array([[1.0, 2.0]]), (1, 3)).tolist()
    [[1.0, 0.0, 0.0, 2.0]]
    """
    (kh, kw), (dy, dx) = kernel.shape, dilation
    expanded = np.zeros((dy * (kh - 1) + 1, dx * (kw - 1) + 1), kernel.dtype)
    expanded[::dy, ::dx] = kernel
    return expanded


def cheap_expansion(shape: tuple[int, int], dilation: tuple[int, int]) -> bool:
    """True when the zero-expanded kernel has at most ``MAX_EXPANSION`` times the taps."""
    (kh, kw), (dy, dx) = shape, dilation
    return (dy * (kh - 1) + 1) * (dx * (kw - 1) + 1) <= MAX_EXPANSION * kh * kw


class Native:
    """What the OpenCV methods share: the strip dtype, and filtering a whole strip then keeping
    its valid rows and columns (``finish`` copies them, or scales them on the way)."""

    transform = False  # True where OpenCV computes through a transform (rounding spread over a tile)

    def __init__(self, strip: np.dtype, row_step: int, shape: tuple[int, int]) -> None:
        self.strip_dtype = strip
        self.row_step = row_step
        # OpenCV's default anchor, the kernel's centre, takes its fastest loops (twice as fast as
        # the first tap for some): the valid outputs then start this far into the strip
        self.size, self.offset = shape, (shape[0] // 2, shape[1] // 2)

    def filter(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch, border=CONSTANT, anchor=CENTRE) -> None:
        """Filter ``src`` into the float32 ``dst`` of the same size, anchored at the centre."""
        raise NotImplementedError

    def finish(self, valid: np.ndarray, out: np.ndarray) -> None:
        """Write the kept outputs ``valid`` to ``out``."""
        np.copyto(out, valid)

    def scale(self, out: np.ndarray) -> None:
        """Finish ``out`` in place (filtered straight from the image)."""

    def filter_rows(self, x: np.ndarray, r0: int, n: int, out: np.ndarray, route, scratch: Scratch) -> None:
        """Output rows ``r0 … r0+n-1`` straight from the image rows, OpenCV's border standing for
        the padding (``route``: border and anchor, from ``image_route``): no strip is loaded, and
        OpenCV writes into ``out``. Its rows within the kernel's reach of the band's cut edges
        read OpenCV's border there instead of the neighbouring rows; they are computed again
        from a band around each cut (``n`` must be at least the kernel's reach)."""
        border, anchor = route
        height = x.shape[0]
        top = self.size[0] // 2 if anchor[1] < 0 else anchor[1]
        bottom = self.size[0] - 1 - top
        self._band(x[r0 : r0 + n], out, border, anchor, scratch)
        for first, count in ((r0, top if r0 > 0 else 0), (r0 + n - bottom, bottom if r0 + n < height else 0)):
            if count:
                start, stop = max(0, first - top), min(height, first + count + bottom)
                part = scratch.get("native_seam", (stop - start, *out.shape[1:]), out.dtype)
                self._band(x[start:stop], part, border, anchor, scratch)
                out[first - r0 : first - r0 + count] = part[first - start : first - start + count]
        self.scale(out)

    def _band(self, src, dst, border, anchor, scratch: Scratch) -> None:
        if src.shape[2] == 1:
            self.filter(src[..., 0], dst[..., 0], scratch, border, anchor)
        else:
            self.filter(src, dst, scratch, border, anchor)

    def __call__(self, strip, out, row_step, dilation, scratch: Scratch) -> None:
        """Filter ``strip`` (R, Wp, C) into ``out`` (n, W, C), keeping every ``row_step``-th row."""
        n, width, channels = out.shape
        if self.transform:
            # rows that no output reads (a stride and a dilation with a common factor skip some)
            # are zeroed: otherwise their values, however large, would round into the others
            read = np.zeros(strip.shape[0], bool)
            for i in range(self.kernel.shape[0]):
                read[i * dilation[0] : i * dilation[0] + (n - 1) * row_step + 1 : row_step] = True
            strip[~read] = 0
        full = scratch.get("native", strip.shape)
        if channels == 1:
            self.filter(strip[..., 0], full[..., 0], scratch)
        elif channels <= MAX_CHANNELS:
            self.filter(strip, full, scratch)
        else:  # in groups of channels, each copied to a contiguous array of its own
            for c0 in range(0, channels, MAX_CHANNELS):
                c1 = min(channels, c0 + MAX_CHANNELS)
                part = scratch.get("native_in", (*strip.shape[:2], c1 - c0), strip.dtype)
                done = scratch.get("native_out", part.shape)
                np.copyto(part, strip[..., c0:c1])
                self.filter(part, done, scratch)
                full[..., c0:c1] = done
        top, left = self.offset
        self.finish(full[top : top + (n - 1) * row_step + 1 : row_step, left : left + width], out)


def _cv_array(array: np.ndarray) -> np.ndarray:
    """A contiguous view OpenCV takes as it is (channels last, at most ``MAX_CHANNELS``)."""
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _store(result: np.ndarray, dst: np.ndarray) -> None:
    """Copy OpenCV's ``result`` into ``dst`` unless OpenCV wrote it there already."""
    if result.__array_interface__["data"][0] != dst.__array_interface__["data"][0]:
        np.copyto(dst, result.reshape(dst.shape))


class NativeBox(Native):
    """All weights equal to ``weight``: window sums by ``cv2.boxFilter``, times the weight as the
    valid part is cropped (or OpenCV's own mean, for the weight ``1/(kh·kw)``, which saves that
    pass); O(1) per pixel whatever the size."""

    def __init__(self, shape: tuple[int, int], weight: float, strip: np.dtype, row_step: int = 1) -> None:
        kh, kw = shape
        # integer sums are exact while they fit in 32 bits; beyond, the strip is loaded as float32
        # (summed in float64 by OpenCV)
        if strip.kind in "iu" and float(np.iinfo(strip).max - min(0, np.iinfo(strip).min)) * kh * kw >= 2**31:
            strip = np.dtype(np.float32)
        super().__init__(strip, row_step, shape)
        self.shape, self.weight = shape, np.float32(weight)
        self.mean = bool(self.weight == np.float32(1 / (kh * kw)))
        # passes, as measured on 12 MP: the same for every size
        self.cost = row_step * (4.0 if strip.itemsize < 4 else 6.0)

    def filter(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch, border=CONSTANT, anchor=CENTRE) -> None:
        """Window sums (or means) of ``src`` into ``dst``."""
        kh, kw = self.shape
        result = cv2.boxFilter(_cv_array(src), cv2.CV_32F, (kw, kh), dst=dst, normalize=self.mean,
                               borderType=border, anchor=anchor)  # fmt: skip
        _store(result, dst)

    def finish(self, valid: np.ndarray, out: np.ndarray) -> None:
        """Scale the window sums by the weight, into ``out``."""
        if self.mean:
            np.copyto(out, valid)
        else:
            np.multiply(valid, self.weight, out=out)

    def scale(self, out: np.ndarray) -> None:
        """Scale the window sums in ``out`` by the weight."""
        if not self.mean and self.weight != 1:
            np.multiply(out, self.weight, out=out)


class NativeSeparable(Native):
    """A kernel of rank 1 or 2 as ``Σ u vᵀ``: one ``cv2.sepFilter2D`` per rank, summed."""

    def __init__(self, terms, dilation: tuple[int, int], strip: np.dtype, row_step: int = 1) -> None:
        self.terms = [
            (expand(np.asarray(u, np.float32)[:, None], (dilation[0], 1)),
             expand(np.asarray(v, np.float32)[None, :], (1, dilation[1])))
            for u, v in terms
        ]  # fmt: skip
        super().__init__(strip, row_step, (self.terms[0][0].shape[0], self.terms[0][1].shape[1]))
        self.cost = self.passes(len(terms), (self.terms[0][0].shape[0], self.terms[0][1].shape[1]), row_step)

    @staticmethod
    def passes(rank: int, shape: tuple[int, int], row_step: int = 1) -> float:
        """Passes over the strip for ``rank`` separable filters of ``shape``, as measured on 12 MP:
        a fixed part and one per tap, six times as much per tap past 32 taps a side (where OpenCV
        leaves its vectorised loops)."""
        per_tap = 0.5 if max(shape) <= 32 else 3.0
        return row_step * rank * (4.0 + per_tap * (shape[0] + shape[1]))

    def filter(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch, border=CONSTANT, anchor=CENTRE) -> None:
        """Each rank's pair of 1-D passes, summed into ``dst`` (float32; or pixels of one of
        ``PIXEL_DEPTHS`` for rank 1, rounded by OpenCV as it writes them)."""
        src = _cv_array(src)
        depth = PIXEL_DEPTHS.get(dst.dtype, cv2.CV_32F)
        if depth != cv2.CV_32F and len(self.terms) != 1:
            raise ValueError("only one separable pair is filtered straight to pixels")
        for k, (u, v) in enumerate(self.terms):
            target = dst if k == 0 else scratch.get("native_rank", dst.shape)
            result = cv2.sepFilter2D(src, depth, v.ravel(), u.ravel(), dst=target,
                                     borderType=border, anchor=anchor)  # fmt: skip
            _store(result, target)
            if k:
                np.add(dst, target, out=dst)


class NativeDirect(Native):
    """Any kernel through ``cv2.filter2D``: direct taps for small kernels, OpenCV's own
    transform for large ones."""

    def __init__(self, kernel: np.ndarray, dilation: tuple[int, int], row_step: int = 1) -> None:
        # float32 strips: OpenCV's 8- and 16-bit paths to float32 are several times slower
        self.kernel = kernel
        self.expanded = np.ascontiguousarray(expand(np.asarray(kernel, np.float32), dilation))
        super().__init__(np.dtype(np.float32), row_step, self.expanded.shape)
        taps = self.expanded.size
        self.transform = taps >= DFT_TAPS
        # passes, as measured on 12 MP: per tap below the transform, about flat above it
        self.cost = row_step * (3.0 + 0.28 * taps if taps < DFT_TAPS else 50.0 + 0.025 * taps)

    def filter(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch, border=CONSTANT, anchor=CENTRE) -> None:
        """The correlation of ``src`` with the kernel, into ``dst``."""
        result = cv2.filter2D(_cv_array(src), cv2.CV_32F, self.expanded, dst=dst,
                              borderType=border, anchor=anchor)  # fmt: skip
        _store(result, dst)


def native_methods(kernel: np.ndarray, terms, dilation: tuple[int, int], strip: np.dtype, row_step: int) -> list:
    """The OpenCV methods that can apply ``kernel`` (``terms``: its rank-1 or 2 split, or None)
    on strips of ``strip`` dtype, each with its cost."""
    methods = []
    flat = kernel.ravel()
    if dilation == (1, 1) and flat[0] != 0 and np.all(flat == flat[0]):
        methods.append(NativeBox(kernel.shape, float(flat[0]), strip, row_step))
    if not cheap_expansion(kernel.shape, dilation):
        return methods
    methods.append(NativeDirect(kernel, dilation, row_step))
    if terms is not None and min(kernel.shape) > 1:
        methods.append(NativeSeparable(terms, dilation, strip, row_step))
    return methods


def image_route(conv, spatial) -> tuple[int, tuple[int, int]] | None:
    """OpenCV's border and anchor with which ``spatial`` filters the image of ``conv`` directly,
    or None: for the box and separable filters, and a large kernel through OpenCV's transform,
    on an image OpenCV reads as it is, at a stride of 1, a padding mode OpenCV has, and an
    output the size of the input (``"same"``)."""
    direct = isinstance(spatial, NativeDirect) and spatial.transform  # a large kernel: OpenCV's transform
    if not (isinstance(spatial, (NativeBox, NativeSeparable)) or direct) or conv.padding_mode not in BORDERS:
        return None
    if conv.clean:  # NaN or infinities in the image: only cleaned strips are filtered
        return None
    x, geo, (kh, kw) = conv.x, conv.geometry, spatial.size
    height, width, channels = x.shape
    if geo.stride != (1, 1) or (geo.out_height, geo.out_width) != (height, width) or channels > MAX_CHANNELS:
        return None
    # a reflection wider than the image folds more than once: left to the loaded strips
    # the transform reads 8- and 16-bit rows as they are (its own conversion costs less than a copy)
    readable = x.dtype in STRIP_DTYPES if direct else x.dtype == spatial.strip_dtype
    if not readable or not (geo.top < kh and geo.left < kw) or min(height, width) <= max(kh, kw):
        return None
    anchor = CENTRE if (geo.top, geo.left) == spatial.offset else (geo.left, geo.top)
    return BORDERS[conv.padding_mode], anchor
