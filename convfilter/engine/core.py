"""``convolve``: PyTorch's ``nn.Conv2d`` on channels-last images, in vectorised NumPy.

The output is computed in strips of rows, on all cores: each worker thread loads the padded
input rows a strip needs (converting them to float32 there, not for the whole image), computes
them with the plan chosen for the weight, and hands the strip on. Memory beyond the output is a
few strips per thread, never an ``H·W·C·kh·kw`` array of windows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import UsageError
from .geometry import PADDING_MODES, check_groups, geometry, source_index
from .plan import FFT, Factored, General, factor
from .spatial import Direct, RowMatmul, Scratch

# Bytes of float32 input a strip aims for: measured best on 12 MP with 2 threads, large enough
# that the Python work per strip and the hand-offs between threads stay small.
STRIP_BYTES = 1 << 21
# Threads a convolution uses when the caller does not say; None: all cores. A batch's worker
# processes set 1, as the processes already use every core.
DEFAULT_THREADS: int | None = None
# An FFT strip is taller: its cost per row falls as the kernel's halo becomes a smaller share.
FFT_STRIP_ROWS = 256


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
    ) -> None:
        self.x, weight, self.bias, self.groups = _validate(x, weight, bias, groups, padding_mode)
        if flip:
            # mathematical convolution: the cross-correlation with the kernel rotated by 180°
            weight = weight[:, :, ::-1, ::-1]
        self.padding_mode = padding_mode
        height, width, channels = self.x.shape
        self.out_channels, _, kh, kw = weight.shape
        self.kernel_size = (kh, kw)
        self.geometry = geo = geometry(height, width, (kh, kw), stride, padding, dilation)
        self.shape = (geo.out_height, geo.out_width, self.out_channels)
        self.padded_width = (geo.out_width - 1) * geo.stride[1] + geo.dilation[1] * (kw - 1) + 1
        eight_bit = self.x.dtype == np.uint8
        factored = factor(weight, self.groups, channels, geo.dilation, eight_bit) if geo.stride[1] == 1 else None
        self.plan = factored or General(weight, self.groups)
        # the padded columns outside the image, and the columns they copy (padding modes other than zeros)
        cols = np.arange(self.padded_width)
        self._outside = np.flatnonzero((cols < geo.left) | (cols >= geo.left + width))
        self._outside_source = geo.left + source_index(self._outside - geo.left, width, padding_mode)

    @property
    def _uses_fft(self) -> bool:
        return isinstance(getattr(self.plan, "spatial", None), FFT)

    @property
    def strip_rows(self) -> int:
        """Output rows per strip."""
        if self._uses_fft:
            rows = max(1, (FFT_STRIP_ROWS - self.geometry.dilation[0] * (self.kernel_size[0] - 1)))
            return max(8, rows // self.geometry.stride[0])
        row_bytes = 4 * self.padded_width * max(self.x.shape[2], self.out_channels) * self.geometry.stride[0]
        rows = max(4, STRIP_BYTES // row_bytes)
        if isinstance(getattr(self.plan, "spatial", None), RowMatmul):
            # its products hold kw rows per output row: keep them to about the strip's size
            rows = max(4, min(rows, 4 * STRIP_BYTES // (row_bytes * self.kernel_size[1])))
        return rows

    def _load(self, r0: int, n: int, scratch: Scratch) -> np.ndarray:
        """The padded float32 input rows that output rows ``r0 … r0+n-1`` read, ``(R, Wp, C)``."""
        geo, x = self.geometry, self.x
        (sy, _), (dy, _) = geo.stride, geo.dilation
        first, count = r0 * sy - geo.top, (n - 1) * sy + dy * (self.kernel_size[0] - 1) + 1
        dtype = self.plan.strip_dtype if isinstance(self.plan, Factored) and self.plan.pre is None else np.float32
        strip = scratch.get("strip", (count, self.padded_width, x.shape[2]), dtype)
        width, left = x.shape[1], geo.left
        inner = strip[:, left : left + width]
        if first >= 0 and first + count <= x.shape[0]:
            np.copyto(inner, x[first : first + count], casting="unsafe")  # inside the image: one copy
        else:
            rows = source_index(np.arange(first, first + count), x.shape[0], self.padding_mode)
            valid = rows >= 0
            inner[valid] = x[rows[valid]]
            inner[~valid] = 0
        if len(self._outside):
            if self.padding_mode == "zeros":
                strip[:, self._outside] = 0
            else:
                strip[:, self._outside] = strip[:, self._outside_source]
        return strip

    @property
    def replicated(self) -> bool:
        """True when all output channels are equal (a dense kernel whose weights are the same for
        every channel pair, such as ``edge``): ``run_into(sink, collapse=True)`` then hands over
        blocks of that one channel."""
        same_bias = self.bias is None or bool(np.all(self.bias == self.bias[0]))
        return isinstance(self.plan, Factored) and self.plan.replicated and same_bias

    def compute(self, r0: int, n: int, out: np.ndarray, scratch: Scratch, collapse: bool = False) -> None:
        """Compute output rows ``r0 … r0+n-1`` into ``out`` (n, W', O), or (n, W', 1) with
        ``collapse``."""
        geo = self.geometry
        strip = self._load(r0, n, scratch)
        if isinstance(self.plan, General):
            self.plan(strip, out, geo.stride, geo.dilation, scratch)
        else:
            self.plan(strip, out, geo.stride[0], geo.dilation, scratch, collapse)
        if self.bias is not None:
            for o, b in enumerate(self.bias[: out.shape[2]]):
                if b:
                    out[..., o] += b

    def _starts(self, strip_rows: int | None) -> list[tuple[int, int]]:
        rows = strip_rows or self.strip_rows
        height = self.geometry.out_height
        return [(r0, min(rows, height - r0)) for r0 in range(0, height, rows)]

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
        self, sink: Callable[[int, np.ndarray], None], threads: int | None = None, collapse: bool = False
    ) -> None:
        """Compute every strip on ``threads`` threads (default: all cores) and call
        ``sink(first_row, block)`` for each, from the thread that computed it; the block is
        reused afterwards. Strips cover disjoint rows, so a sink writing its rows needs no lock.
        With ``collapse`` (only when ``replicated``) the blocks hold the one shared channel."""
        if collapse and not self.replicated:
            raise ValueError("collapse=True needs a convolution whose output channels are all equal")
        channels = 1 if collapse else self.out_channels

        def work(r0: int, n: int, scratch: Scratch) -> None:
            block = scratch.get("out", (n, self.shape[1], channels))
            self.compute(r0, n, block, scratch, collapse)
            sink(r0, block)

        self._parallel(work, threads)

    def run(self, threads: int | None = None) -> np.ndarray:
        """Return the whole float32 result ``(H', W', O)``."""
        out = np.empty(self.shape, np.float32)
        self._parallel(lambda r0, n, scratch: self.compute(r0, n, out[r0 : r0 + n], scratch), threads)
        return out

    def _parallel(self, work: Callable[[int, int, Scratch], None], threads: int | None) -> None:
        starts = self._starts(None)
        threads = min(threads or DEFAULT_THREADS or os.cpu_count() or 1, len(starts))
        if self._uses_fft:
            self._check_fft()
        if threads <= 1:
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

        for _ in _pool(threads).map(task, chunks):
            pass

    def _check_fft(self) -> None:
        """An FFT is exact only up to rounding that grows with the kernel and the data: compute
        one strip both ways and fall back to direct taps if they disagree beyond float32 rounding."""
        n = min(self.strip_rows, self.geometry.out_height, 16)
        fast = np.empty((n, *self.shape[1:]), np.float32)
        self.compute(0, n, fast, Scratch())
        spatial = self.plan.spatial
        self.plan.spatial = Direct(spatial.kernel)
        exact = np.empty_like(fast)
        self.compute(0, n, exact, Scratch())
        scale = float(np.abs(exact).max()) or 1.0
        if np.abs(fast - exact).max() <= 1e-5 * scale:
            self.plan.spatial = spatial


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """A thread pool kept for the life of the process (per process: a forked child makes its
    own), so that a convolution does not start and join threads every time."""
    key = (os.getpid(), threads)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="convfilter")
        return _pools[key]


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
