"""``convolve``: PyTorch's ``nn.Conv2d`` on channels-last images, in vectorised NumPy.

The output is computed in strips of rows, on all cores: each worker thread loads the padded
input rows a strip needs (converting them to float32 there, not for the whole image), computes
them with the plan chosen for the weight, and hands the strip on. Memory beyond the output is a
few strips per thread, never an ``H·W·C·kh·kw`` array of windows.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import ArgumentError
from . import native
from .geometry import PADDING_MODES, check_groups, geometry, source_index
from .nonfinite import NonFinite, finite_range
from .plan import make_plan
from .pool import POOL_PREFIX, strip_pool
from .spatial import Scratch
from .taps import STRIP_BYTES, Gather, Plan


class _NoChannels(Plan):
    """An image with no channels: as in PyTorch, the result is empty."""

    def compute(self, conv, r0, n, out, scratch, collapse=False) -> None:
        """Nothing to compute."""


class Convolution:
    """A convolution checked and planned once: geometry, output shape and how to compute it.

    ``run()`` returns the whole result; ``run_into(sink)`` hands each strip to ``sink`` as it is
    computed, so that a caller can turn strips into pixels without ever holding the whole float
    result; ``strips()`` yields them one by one. The arguments are those of :func:`convolve`.
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
        *,
        engine: str | None = None,
    ) -> None:
        self.engine = native.engine(engine)
        self.x, weight, self.bias, self.groups = _validate(x, weight, bias, groups, padding_mode)
        if flip:
            # mathematical convolution: the cross-correlation with the kernel rotated by 180°
            weight = weight[:, :, ::-1, ::-1]
        self.padding_mode = padding_mode
        height, width, channels = self.x.shape
        self.out_channels, _, kh, kw = weight.shape
        self.kernel_size = (kh, kw)
        self.geometry = geo = geometry(height, width, (kh, kw), stride, padding, dilation)
        # NaN, infinities and float64 values beyond float32's range (infinite once loaded) call for
        # plans that skip zero weights; min and max are NaN if any value is
        top = float(np.finfo(np.float32).max)
        if self.x.dtype.kind in "iu":  # the dtype's own range: no pass over the image
            low, high = (float(v) for v in (np.iinfo(self.x.dtype).min, np.iinfo(self.x.dtype).max))
        elif self.x.dtype.kind == "b":
            low, high = 0.0, 1.0
        else:
            low, high = (float(self.x.min()), float(self.x.max())) if self.x.size else (0.0, 0.0)
        self.finite = self.x.dtype.kind != "f" or -top <= low <= high <= top
        # with NaN or infinities in, strips are loaded with them as zeros (see nonfinite.py)
        self.clean = not self.finite and self.engine == "auto"
        if self.clean:
            low, high = finite_range(self.x)
        if channels == 0:
            self.out_channels, self.plan = 0, _NoChannels()
        else:
            # OpenCV's transforms spread an overflow to a whole strip: only sums far within float32
            reach = max(abs(low), abs(high)) * float(np.abs(weight).sum(axis=(1, 2, 3), dtype=np.float64).max())
            strip = native.strip_dtype(self.x.dtype)
            use = self.engine == "auto" and (self.finite or self.clean) and reach < native.MAX_REACH
            eight_bit = self.x.dtype == np.uint8
            plan = make_plan(weight, self.groups, self.x.shape, geo, eight_bit, self.finite or self.clean,
                             strip if use else None)  # fmt: skip
            if self.clean and isinstance(plan, Gather):  # reads the image itself, not cleaned strips
                self.clean = False
                plan = make_plan(weight, self.groups, self.x.shape, geo, eight_bit, False)
            self.plan = NonFinite(plan, weight, self.groups) if self.clean else plan
        self.shape = (geo.out_height, geo.out_width, self.out_channels)

    def sample_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """The input row of each output row and the input column of each output column that the
        kernel's centre tap reads (``(k-1)//2`` taps in), clipped to the image: where an output
        pixel sits on the input, for what is carried along unfiltered (alpha)."""
        geo, (kh, kw) = self.geometry, self.kernel_size
        (sy, sx), (dy, dx) = geo.stride, geo.dilation
        height, width = self.x.shape[:2]
        rows = np.arange(geo.out_height) * sy - geo.top + dy * ((kh - 1) // 2)
        cols = np.arange(geo.out_width) * sx - geo.left + dx * ((kw - 1) // 2)
        return np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)

    @property
    def padded_width(self) -> int:
        """Columns of a loaded strip: those of the padded image that the output reads."""
        return self.geometry.padded_width

    @functools.cached_property
    def _columns(self) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
        """How a strip's columns are filled: padded columns ``a … b-1`` are image columns
        ``a-left … b-left`` (one slice); ``copied`` padded columns outside them read image
        columns ``sources`` (reflect, replicate, circular); ``zeroed`` ones are zeros."""
        geo, width = self.geometry, self.x.shape[1]
        padded = self.padded_width
        a, b = min(geo.left, padded), min(geo.left + width, padded)
        outside = np.concatenate([np.arange(a), np.arange(max(a, b), padded)])
        sources = source_index(outside - geo.left, width, self.padding_mode)
        return a, b, outside[sources >= 0], sources[sources >= 0], outside[sources < 0]

    def load(self, r0: int, n: int, scratch: Scratch, dtype=np.float32, clean: bool | None = None) -> np.ndarray:
        """The padded input rows and columns that output rows ``r0 … r0+n-1`` read, as ``dtype``,
        ``(R, Wp, C)``; with ``clean`` (default: the convolution's own ``clean``), NaN and
        infinities are loaded as zeros."""
        geo, x = self.geometry, self.x
        first, count = r0 * geo.stride[0] - geo.top, (n - 1) * geo.stride[0] + geo.reach[0] + 1
        strip = scratch.get("strip", (count, self.padded_width, x.shape[2]), dtype)
        a, b, copied, sources, zeroed = self._columns
        image_columns = slice(a - geo.left, b - geo.left)
        if first >= 0 and first + count <= x.shape[0]:
            rows = x[first : first + count]  # inside the image: one copy
            np.copyto(strip[:, a:b], rows[:, image_columns], casting="unsafe")
            if len(copied):
                strip[:, copied] = rows[:, sources]
        else:
            rows = source_index(np.arange(first, first + count), x.shape[0], self.padding_mode)
            valid = rows >= 0
            strip[valid, a:b] = x[rows[valid], image_columns]
            strip[~valid] = 0
            if len(copied):
                strip[np.ix_(valid, copied)] = x[np.ix_(rows[valid], sources)]
        if len(zeroed):
            strip[:, zeroed] = 0
        if (self.clean if clean is None else clean) and strip.dtype.kind == "f":
            np.copyto(strip, 0, where=~np.isfinite(strip))
        return strip

    @property
    def strip_rows(self) -> int:
        """Output rows per strip."""
        row_bytes = 4 * self.padded_width * max(1, self.x.shape[2], self.out_channels) * self.geometry.stride[0]
        return self.plan.strip_rows(self, max(1, STRIP_BYTES // row_bytes))

    @property
    def replicated(self) -> bool:
        """True when all output channels are equal (a dense kernel whose weights are the same for
        every channel pair, such as ``edge``): ``run_into(sink, collapse=True)`` then hands over
        blocks of that one channel."""
        same_bias = self.bias is None or bool(np.all(self.bias == self.bias[0]))
        return self.plan.replicated and same_bias

    def block_dtype(self, pixels) -> np.dtype:
        """The dtype of the blocks ``run_into(sink, dtype=…)`` can hand over for making pixels of
        ``pixels`` (8- or 16-bit) by rounding to nearest even and saturating: those pixels
        themselves (a blur straight from the image rows: OpenCV writes them, nothing can clip),
        int16 (exact whole-number sums), or float32 sums. Without a bias only."""
        if (self.bias is not None and np.any(self.bias)) or self.clean:
            return np.dtype(np.float32)
        return self.plan.block_dtype(self, np.dtype(pixels))

    def compute(self, r0: int, n: int, out: np.ndarray, scratch: Scratch, collapse: bool = False) -> None:
        """Compute output rows ``r0 … r0+n-1`` into ``out`` (n, W', O), or (n, W', 1) with
        ``collapse``."""
        # NaN and infinities in, or sums beyond float32's range, are results as in PyTorch, not faults
        with np.errstate(invalid="ignore", over="ignore"):
            self.plan.compute(self, r0, n, out, scratch, collapse)
            if self.bias is not None:
                for o, b in enumerate(self.bias[: out.shape[2]]):
                    if b:
                        out[..., o] += b

    def _starts(self, strip_rows: int | None) -> list[tuple[int, int]]:
        if strip_rows is not None and (
            isinstance(strip_rows, bool) or not isinstance(strip_rows, int) or strip_rows < 1
        ):
            raise ArgumentError(f"strip_rows must be a positive int, got {strip_rows!r}")
        rows = strip_rows or self.strip_rows
        height = self.geometry.out_height
        starts = [(r0, min(rows, height - r0)) for r0 in range(0, height, rows)]
        if len(starts) > 1 and starts[-1][1] < self.geometry.reach[0]:
            # a last strip shorter than the kernel's reach joins the one before it (a strip straight
            # from the image computes the rows at its cuts again from that many rows around them)
            (r0, n), (_, last) = starts[-2:]
            starts[-2:] = [(r0, n + last)]
        return starts

    def strips(self, strip_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, block)`` pairs, one strip after the other, in this thread.

        Each block is a float32 ``(rows, W', O)`` array reused for the next strip: copy or
        convert it before asking for the next one.
        """
        scratch = Scratch()
        for r0, n in self._starts(strip_rows):
            block = scratch.get("out", (n, *self.shape[1:]))
            self.compute(r0, n, block, scratch)
            yield r0, block

    def run_into(
        self,
        sink: Callable[[int, np.ndarray], None],
        threads: int | None = None,
        collapse: bool = False,
        strip_rows: int | None = None,
        dtype=np.float32,
    ) -> None:
        """Compute every strip on ``threads`` threads (default: all cores) and call
        ``sink(first_row, block)`` for each, from the thread that computed it; the block is
        reused afterwards. Strips cover disjoint rows, so a sink writing its rows needs no lock.
        With ``collapse`` (only when ``replicated``) the blocks hold the one shared channel;
        ``dtype`` other than float32 (only what ``block_dtype`` gives) makes them pixels or exact
        int16 sums; ``strip_rows`` overrides the strip height the plan chose."""
        dtype = np.dtype(dtype)
        if collapse and not self.replicated:
            raise ValueError("collapse=True needs a convolution whose output channels are all equal")
        pixels = self.x.dtype if dtype == np.int16 else dtype
        if dtype != np.float32 and (collapse or self.block_dtype(pixels) != dtype):
            raise ValueError(f"this convolution cannot hand over blocks of {dtype}")
        channels = 1 if collapse else self.out_channels
        if dtype in native.PIXEL_DEPTHS and strip_rows is not None:  # pixels come straight from the image rows:
            strip_rows = max(strip_rows, self.geometry.reach[0])  # strips at least the kernel's reach

        def work(r0: int, n: int, scratch: Scratch) -> None:
            block = scratch.get("out", (n, self.shape[1], channels), dtype)
            self.compute(r0, n, block, scratch, collapse)
            sink(r0, block)

        self._parallel(work, threads, strip_rows, sink=True)

    def run(self, threads: int | None = None, strip_rows: int | None = None) -> np.ndarray:
        """Return the whole float32 result ``(H', W', O)``; ``strip_rows`` overrides the strip
        height the plan chose. A plan that runs on every core within OpenCV straight from the
        image (``serial``) fills the result in one call: it is held whole anyway."""
        try:
            out = np.empty(self.shape, np.float32)
        except (MemoryError, ValueError):
            size = "×".join(map(str, self.shape))
            raise ArgumentError(f"the result, {size} float32, is larger than this machine can hold") from None
        if strip_rows is None and self.plan.serial(self):
            strip_rows = max(1, self.shape[0])
        self._parallel(lambda r0, n, scratch: self.compute(r0, n, out[r0 : r0 + n], scratch), threads, strip_rows)
        return out

    def _parallel(
        self,
        work: Callable[[int, int, Scratch], None],
        threads: int | None,
        strip_rows: int | None,
        sink: bool = False,
    ) -> None:
        starts = self._starts(strip_rows)
        threads = 1 if self.plan.serial(self, sink) else min(threads or os.cpu_count() or 1, len(starts))
        if threading.current_thread().name.startswith(POOL_PREFIX):
            threads = 1  # called from a strip's own work (a sink): the pool's threads are all busy
        pool = strip_pool(threads) if threads > 1 else None
        if pool is None:
            scratch = Scratch()
            for r0, n in starts:
                work(r0, n, scratch)
            return
        # a few tasks per thread, each a run of consecutive strips: dispatching a task costs more
        # than a small strip, and the work still balances if one thread is slowed down
        chunks = np.array_split(np.arange(len(starts)), threads * 4)
        local = threading.local()

        def task(chunk: np.ndarray) -> None:
            if not hasattr(local, "scratch"):
                local.scratch = Scratch()
            for index in chunk:
                work(*starts[index], local.scratch)

        for _ in pool.map(task, chunks):
            pass


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
    *,
    engine: str | None = None,
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
    engine : ``"auto"`` (OpenCV's filters where they compute the same numbers) or ``"numpy"``
        (NumPy methods only); None reads ``CONVFILTER_ENGINE`` from the environment.

    Returns
    -------
    float32 array ``(H', W', O)``.

    >>> x = np.arange(9, dtype=np.uint8).reshape(3, 3, 1)
    >>> convolve(x, np.ones((1, 1, 3, 3)))[..., 0]
    array([[ 8., 15., 12.],
           [21., 36., 27.],
           [20., 33., 24.]], dtype=float32)
    """
    return Convolution(x, weight, bias, stride, padding, dilation, groups, padding_mode, flip, engine=engine).run()


def _validate(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int, padding_mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Check the arguments of :func:`convolve` once, and bring them to the shapes it works on."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ArgumentError(f"the image must be an (H, W, C) or (H, W) array, got {x.ndim} dimensions")
    if x.dtype.kind not in "biuf":
        raise ArgumentError(f"the image must hold integers or floats, got dtype {x.dtype}")
    if min(x.shape[:2]) < 1:
        raise ArgumentError(f"the image is empty: shape {x.shape}")
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ArgumentError(f"the weight must be 4-D [O, C/groups, kh, kw], got shape {weight.shape}")
    # no input channels is allowed (the result is empty, as in PyTorch); no outputs or taps is not
    if weight.dtype.kind not in "biuf" or min(weight.shape[0], *weight.shape[2:]) < 1:
        raise ArgumentError(f"the weight must be a non-empty array of numbers, got {weight.dtype} {weight.shape}")
    with np.errstate(over="ignore"):
        weight = weight.astype(np.float32)
    if not np.isfinite(weight).all():
        raise ArgumentError("the weight must hold finite numbers within float32's range (±3.4e38)")
    if padding_mode not in PADDING_MODES:
        raise ArgumentError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    channels, out_channels = x.shape[2], weight.shape[0]
    check_groups(channels, out_channels, groups, ArgumentError)
    if weight.shape[1] * groups != channels:
        raise ArgumentError(
            f"the weight takes {weight.shape[1]} input channels per group, so {weight.shape[1] * groups} "
            f"with groups={groups}, but the image has {channels}"
        )
    if bias is not None:
        bias = np.asarray(bias)
        if bias.dtype.kind not in "biuf":
            raise ArgumentError(f"bias must hold numbers, got {bias.dtype}")
        with np.errstate(over="ignore"):
            bias = bias.astype(np.float32).reshape(-1)
        if not np.isfinite(bias).all():
            raise ArgumentError("bias must hold finite numbers within float32's range (±3.4e38)")
        if len(bias) == 1:
            bias = np.repeat(bias, out_channels)
        if len(bias) != out_channels:
            raise ArgumentError(f"bias must hold 1 or {out_channels} numbers (one per output channel), got {len(bias)}")
    return x, weight, bias, int(groups)
