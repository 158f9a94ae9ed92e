"""Random convolution configurations drawn from the whole argument space, and PyTorch's answer.

``draw(rng)`` makes one configuration: image sizes 1–64 per side (any remainder against the
stride), kernels 1–9 per side and a band of 10–31, stride and dilation per axis in every form
PyTorch takes, every padding form and mode, groups from the divisors, bias, flip, five dtypes
with edge values, weights shaped so that every plan of the engine is reached, 1 or 2 threads
and strips forced small so that seams are crossed. ``reference(cfg)`` is PyTorch's float64
result (``F.pad`` then ``F.conv2d``; ``np.pad`` where the padding is wider than PyTorch pads),
or the ``RuntimeError`` PyTorch raises. ``check(cfg)`` runs the engine and returns what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from convfilter import UsageError
from convfilter.engine import Convolution

DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
MODES = ("zeros", "reflect", "replicate", "circular")
NUMPY_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
WEIGHT_FORMS = (
    "random",
    "depthwise",
    "mixed",
    "whole",
    "separable",
    "rank2",
    "sparse",
    "large",
    "zero",
    "near",
    "scaled",
    "box",
)


@dataclass
class Config:
    """One call of the engine: its arguments and how it is run."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | float | None
    stride: object
    padding: object
    dilation: object
    groups: int
    mode: str
    flip: bool
    threads: int
    strip_rows: int | None
    form: str
    runner: str = "run"
    engine: str | None = None  # None: as CONVFILTER_ENGINE says

    def describe(self) -> str:
        """Everything but the numbers, to reproduce a failure by hand."""
        return (
            f"x {self.x.dtype} {self.x.shape}, weight {self.weight.shape} ({self.form}), bias "
            f"{None if self.bias is None else np.shape(self.bias)}, stride={self.stride!r}, "
            f"padding={self.padding!r}, dilation={self.dilation!r}, groups={self.groups}, "
            f"padding_mode={self.mode!r}, flip={self.flip}, threads={self.threads}, strip_rows={self.strip_rows}, "
            f"runner={self.runner}, engine={self.engine}"
        )

    def convolution(self) -> Convolution:
        """The engine's plan for this configuration."""
        return Convolution(
            self.x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.mode,
            self.flip,
            engine=self.engine,
        )


def _side(rng: np.random.Generator) -> int:
    # small sides often (they meet the kernel's reach and the stride's remainder), up to 64
    return int(rng.choice([rng.integers(1, 9), rng.integers(1, 65)]))


def _int_or_pair(rng: np.random.Generator, low: int, high: int) -> object:
    # the lowest value half the time (a stride of 1 lets the factored plans run)
    y, x = (int(v) if rng.random() < 0.5 else low for v in rng.integers(low, high + 1, 2))
    return [y, (y,), (y, x), [y, x]][rng.integers(4)]


def _image(rng: np.random.Generator, shape: tuple[int, int, int], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 4)
        if rng.random() < 0.2:
            x[rng.random(shape) < 0.3] = 0
        return x.astype(dtype)
    info = np.iinfo(dtype)
    kind = rng.integers(4)
    if kind == 0:  # the extremes only
        return rng.choice(np.array([info.min, info.max], dtype), shape)
    if kind == 1:  # one constant value
        return np.full(shape, rng.integers(info.min, int(info.max) + 1), dtype)
    return rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)


def _kernel(rng: np.random.Generator, kh: int, kw: int, form: str) -> np.ndarray:
    if form == "whole":
        return rng.integers(-2, 3, (kh, kw)).astype(np.float64) * [1, 1 / 9, 0.25][rng.integers(3)]
    if form == "box":  # every weight equal: a box filter of any size
        return np.full((kh, kw), rng.standard_normal() * 10.0 ** rng.uniform(-3, 3))
    if form == "separable":
        return np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
    if form == "rank2":
        return np.outer(rng.standard_normal(kh), rng.standard_normal(kw)) + np.outer(
            rng.standard_normal(kh), rng.standard_normal(kw)
        )
    return rng.standard_normal((kh, kw))


def _weight(rng: np.random.Generator, out_channels: int, group_in: int, kh: int, kw: int, form: str) -> np.ndarray:
    shape = (out_channels, group_in, kh, kw)
    if form in ("depthwise", "whole", "separable", "rank2", "box"):
        # one spatial kernel for every channel pair: the factored plans
        return np.broadcast_to(_kernel(rng, kh, kw, form), shape).copy()
    if form == "mixed":  # a mixing matrix times one kernel
        return rng.standard_normal((out_channels, group_in))[:, :, None, None] * _kernel(rng, kh, kw, "random")
    if form == "sparse":
        return rng.standard_normal(shape) * (rng.random(shape) < 0.2)
    if form == "large":
        return rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 6)
    if form == "zero":
        return np.zeros(shape)
    if form == "near":  # one kernel everywhere but for one weight a millionth off: it must not factor
        weight = np.broadcast_to(_kernel(rng, kh, kw, str(rng.choice(["random", "whole"]))), shape).copy()
        weight[tuple(rng.integers(0, n) for n in shape)] *= 1 + 1e-6 * rng.choice([-1, 1])
        return weight
    if form == "scaled":  # one kernel, each output channel scaled by 1e-8 … 1: none may be lost
        return np.broadcast_to(_kernel(rng, kh, kw, "random"), shape) * 10.0 ** rng.uniform(-8, 0, (shape[0], 1, 1, 1))
    return rng.standard_normal(shape)


def draw(rng: np.random.Generator) -> Config:
    """One random configuration (it may be one that PyTorch refuses)."""
    groups = int(rng.choice([1, 1, 2, 3, 4, rng.integers(1, 17)]))
    group_in = int(rng.integers(1, 16 // groups + 1))
    group_out = int(rng.integers(1, 16 // groups + 1))
    if rng.random() < 0.25:  # depthwise: in = out = groups
        group_in = group_out = 1
    channels, out_channels = groups * group_in, groups * group_out
    form = WEIGHT_FORMS[rng.integers(len(WEIGHT_FORMS))]
    if rng.random() < 0.12:  # the band of large kernels, which reaches the FFT
        kh, kw = (int(v) for v in rng.integers(10, 32, 2))
        form = str(rng.choice(["depthwise", "separable", "mixed", "random", "box"]))
    else:
        kh, kw = (int(v) for v in rng.integers(1, 10, 2))
    weight = _weight(rng, out_channels, group_in, kh, kw, form)
    bias_kind = rng.integers(3)
    bias = None if bias_kind == 0 else rng.standard_normal(out_channels) * 10 if bias_kind == 1 else float(rng.normal())
    padding = ["same", "valid", int(rng.integers(0, 6)), _int_or_pair(rng, 0, 6)][rng.integers(4)]
    stride, dilation = _int_or_pair(rng, 1, 4), _int_or_pair(rng, 1, 3)
    height, width = _side(rng), _side(rng)
    if padding != "same" and rng.random() < 0.75:  # mostly an image the kernel fits in
        pads = (0, 0) if padding == "valid" else _pair(padding)
        reach = [d * (k - 1) + 1 - 2 * p for d, k, p in zip(_pair(dilation), (kh, kw), pads, strict=True)]
        height, width = max(height, reach[0] + int(rng.integers(0, 8))), max(width, reach[1] + int(rng.integers(0, 8)))
    # whole-number kernels on 8-bit images take the integer path
    dtype = np.dtype(np.uint8 if form == "whole" and rng.random() < 0.5 else DTYPES[rng.integers(len(DTYPES))])
    return Config(
        x=_image(rng, (height, width, channels), dtype),
        weight=weight,
        bias=bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=MODES[rng.integers(4)],
        flip=bool(rng.integers(2)),
        threads=int(rng.integers(1, 3)),
        strip_rows=None if rng.random() < 0.5 else int(rng.integers(1, 6)),
        form=form,
        runner=str(rng.choice(["run", "run", "run_into", "strips"])),
    )


def run(cfg: Config, convolution: Convolution | None = None) -> np.ndarray:
    """The engine's result for ``cfg``, through ``run``, ``run_into`` or ``strips``."""
    conv = convolution or cfg.convolution()
    if cfg.runner == "run":
        return conv.run(cfg.threads, cfg.strip_rows)
    out = np.full(conv.shape, np.nan, np.float32)
    if cfg.runner == "run_into":
        conv.run_into(lambda r0, block: out.__setitem__(slice(r0, r0 + len(block)), block), cfg.threads,
                      strip_rows=cfg.strip_rows)  # fmt: skip
    else:
        for r0, block in conv.strips(cfg.strip_rows):
            out[r0 : r0 + len(block)] = block
    return out


def _pair(value: object) -> tuple[int, int]:
    items = (value,) if isinstance(value, int) else tuple(value)
    return (items * 2)[:2]


def reference(cfg: Config) -> np.ndarray:
    """PyTorch's float64 result ``(H', W', O)``; raises RuntimeError where PyTorch refuses."""
    kh, kw = cfg.weight.shape[2:]
    (sy, sx), (dy, dx) = _pair(cfg.stride), _pair(cfg.dilation)
    if cfg.padding == "same":  # PyTorch's "same": the odd one out at the bottom and right
        ty, tx = dy * (kh - 1), dx * (kw - 1)
        top, bottom, left, right = ty // 2, ty - ty // 2, tx // 2, tx - tx // 2
    elif cfg.padding == "valid":
        top = bottom = left = right = 0
    else:
        (top, left) = _pair(cfg.padding)
        bottom, right = top, left
    image = torch.from_numpy(cfg.x.astype(np.float64)).permute(2, 0, 1)[None]
    height, width = cfg.x.shape[:2]
    if (top, bottom, left, right) != (0, 0, 0, 0):
        wider = max(top, bottom) >= height or max(left, right) >= width
        if cfg.mode == "zeros" or not wider:
            mode = {"zeros": "constant"}.get(cfg.mode, cfg.mode)
            image = F.pad(image, (left, right, top, bottom), mode=mode)
        else:  # reflect or circular wider than the image: PyTorch refuses, np.pad repeats
            pads = ((0, 0), (0, 0), (top, bottom), (left, right))
            image = torch.from_numpy(np.pad(image.numpy(), pads, mode=NUMPY_PAD[cfg.mode]))
    # the weights as the engine and PyTorch's float32 layers hold them: float32, then exact sums
    weight = torch.from_numpy(np.asarray(cfg.weight, np.float32).astype(np.float64))
    if cfg.flip:
        weight = torch.flip(weight, dims=(2, 3))
    bias = cfg.bias
    if bias is not None:
        bias = torch.from_numpy(np.broadcast_to(np.float32(bias).astype(np.float64), (cfg.weight.shape[0],)).copy())
    out = F.conv2d(image, weight, bias, stride=(sy, sx), dilation=(dy, dx), groups=cfg.groups)
    return out[0].permute(1, 2, 0).numpy()


def tolerance(cfg: Config, expected: np.ndarray) -> np.ndarray:
    """Per output channel (each is its own sum, as in PyTorch): 1e-4 of that channel's largest
    magnitude, and never below 1e-6 of the largest value its sum of products could reach
    (float32 rounding, where the terms cancel to nearly nothing)."""
    reach = np.abs(cfg.weight).sum(axis=(1, 2, 3)) * float(np.abs(cfg.x).max(initial=0))
    reach = reach + (np.abs(np.broadcast_to(cfg.bias, reach.shape)) if cfg.bias is not None else 0.0)
    largest = np.abs(expected).max(axis=(0, 1), initial=0)
    return 1e-4 * np.maximum(largest, 1e-2 * reach)


def check(cfg: Config, convolution: Convolution | None = None) -> str | None:
    """Run the engine on ``cfg`` and return what disagrees with PyTorch, or None."""
    try:
        expected = reference(cfg)
    except RuntimeError as refusal:  # PyTorch refuses: so must the engine, in its own words
        try:
            got = run(cfg, convolution)
        except UsageError:
            return None
        except Exception as error:
            return f"PyTorch refuses, and the engine raised {type(error).__name__}: {error}"
        return f"PyTorch refuses ({str(refusal).splitlines()[0]}) but the engine gave {got.shape}"
    try:
        got = run(cfg, convolution)
    except Exception as error:  # any exception here is a failure
        return f"{type(error).__name__}: {error}"
    if got.shape != expected.shape or got.dtype != np.float32:
        return f"shape {got.shape} {got.dtype}, PyTorch's {expected.shape}"
    error = np.abs(got - expected).max(axis=(0, 1), initial=0)
    allowed = tolerance(cfg, expected)
    if not np.all(error <= allowed):  # NaN is a failure too
        o = int(np.argmax(~(error <= allowed)))
        return f"output channel {o} off by {error[o]:.3g} (tolerance {allowed[o]:.3g})"
    return None


def plan_name(convolution: Convolution) -> str:
    """The method that computes the spatial part: Direct, IntegerDirect, Separable, RowMatmul,
    FFT, NativeBox, NativeSeparable, NativeDirect (through a factored plan), General, TapMatmul,
    Gather, SeparableGather or PerPair (inside ``NonFinite`` for an image with NaN or infinities)."""
    plan = convolution.plan
    plan = getattr(plan, "plan", plan)  # NonFinite: the finite plan it runs
    if getattr(plan, "separable", None) is not None:
        return "SeparableGather"
    return type(getattr(plan, "spatial", plan)).__name__
