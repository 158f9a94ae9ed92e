"""The Kernel value: parse and validate a kernel mapping or array, and resolve how it spreads
over an image's channels into a PyTorch-layout convolution layer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .channels import check_groups
from .errors import KernelError, UsageError
from .generators import GENERATORS, MAX_SIZE, cut, shown
from .kernelfile import check_generator, check_mapping, pair_field
from .options import ALPHAS, BORDERS, NO_PADDING, RANGES, int_pair

# the most weights a layer resolved for an image may hold (64 MiB of float32): an RGBA image
# needs at most 4·4·255·255, but ``show --channels`` can ask for any count
MAX_LAYER_WEIGHTS = 1 << 24
# the most explicit padding of a side: far beyond any layer's (a kernel is at most 255 taps wide)
MAX_PADDING = 4096


@dataclass(frozen=True)
class Kernel:
    """A kernel resolved from its file: final weights (after generator, scale, divisor and
    normalize) and the settings that say how to apply them."""

    name: str
    source: str  # what error messages call it: "kernel file blur.yaml", "kernel edge", …
    weights: np.ndarray  # float32, 2-D [kh, kw], 3-D bank [k, kh, kw] or 4-D [O, C/g, kh, kw]
    summary: str = ""
    mix: str | int = "depthwise"  # "depthwise", "dense", a number of groups, or "infer" (.npy)
    bias: tuple[float, ...] = ()
    padding_mode: str = "reflect"  # how the border is padded: one of PADDING_MODES
    # "same"; "valid" (set from the command line): no padding, a smaller output; or (ph, pw): explicit
    # padding as nn.Conv2d takes it, the larger side of each axis when ``pads`` is uneven
    padding: str | tuple[int, int] = "same"
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    flip: bool = False
    combine: str = "none"
    range: str = "clip"
    alpha: str = "keep"
    generator: str | None = None
    params: tuple[tuple[str, float], ...] = ()
    # explicit padding of each side, (top, bottom, left, right), when ``padding`` is a pair: a layer
    # read from a model file, whose two sides may differ (ONNX's pads)
    pads: tuple[int, int, int, int] = ()

    @property
    def border(self) -> str:
        """The border as the command line's --padding names it: a padding mode, or ``valid``;
        with explicit padding, the mode and its sizes (``zeros 1``, ``zeros 1×2``, or
        ``zeros 0,0,1,1`` for top, left, bottom, right as ONNX writes uneven ones)."""
        if self.padding == NO_PADDING:
            return NO_PADDING
        return f"{self.padding_mode} {pads_text(self.pads)}" if self.pads else self.padding_mode

    @property
    def kernel_size(self) -> tuple[int, int]:
        """``(kh, kw)``: the spatial size of the weights."""
        return self.weights.shape[-2], self.weights.shape[-1]

    def with_options(
        self,
        *,
        mix: str | int | None = None,
        padding: str | int | tuple[int, int] | None = None,
        stride: int | None = None,
        dilation: int | None = None,
        flip: bool | None = None,
        range: str | None = None,
        alpha: str | None = None,
    ) -> Kernel:
        """Return this kernel with the options that are not ``None`` overriding its own.

        ``padding`` is the command line's: a padding mode (the size stays the kernel's: "same",
        or the explicit padding of a layer read from a model file), ``valid`` for none, or a whole
        number or pair of them: PyTorch's explicit padding, in the kernel's padding mode."""
        explicit = {}
        if padding is not None and not isinstance(padding, str):
            explicit = explicit_padding(padding, "option --padding")
            padding = None
        changes = {
            "mix": mix,
            "padding": padding,
            "stride": None if stride is None else pair_field(stride, "--stride", "option"),
            "dilation": None if dilation is None else pair_field(dilation, "--dilation", "option"),
            "flip": flip,
            "range": range,
            "alpha": alpha,
        }
        if isinstance(mix, int) and (isinstance(mix, bool) or mix < 1):
            raise UsageError(f"option --groups: must be a positive integer, got {mix}")
        for field, choices in (("padding", BORDERS), ("range", RANGES), ("alpha", ALPHAS)):
            if changes[field] is not None and changes[field] not in choices:
                raise UsageError(f"option --{field}: {changes[field]!r} is not one of {', '.join(choices)}")
        if padding == NO_PADDING:
            changes["pads"] = ()
        elif padding is not None:
            # a mode alone keeps the size: "same", or a model layer's own explicit padding
            changes["padding"], changes["padding_mode"] = (self.padding if self.pads else "same"), padding
        changes.update(explicit)
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def layer(self, in_channels: int) -> Layer:
        """Resolve the kernel for an image of ``in_channels`` channels into a convolution layer."""
        w, mix = self.weights, self.mix
        kh, kw = self.kernel_size
        c = in_channels
        repeat_gray = False
        if w.ndim == 2:
            groups = {"depthwise": c, "dense": 1}.get(mix, mix)
            self._check_groups(c, c, groups)
            self._check_layer_size(c * (c // groups) * kh * kw, in_channels)
            weight = np.broadcast_to(w, (c, c // groups, kh, kw))
        elif w.ndim == 3:
            if mix == "dense" or (isinstance(mix, int) and mix != c):
                raise KernelError(
                    f"{self.source}: a bank of {len(w)} kernels is applied channel-wise (groups={c} for "
                    f"{c} channels); --dense and other groups do not apply to it"
                )
            groups = c
            self._check_layer_size(w.size * c, in_channels)
            # output channel c·k + j is kernel j of the bank on input channel c, PyTorch's order for
            # a depthwise convolution with channel multiplier k
            weight = np.tile(w[:, None], (c, 1, 1, 1))
        else:
            out_channels, group_in = w.shape[:2]
            if mix == "infer":
                if c % group_in:
                    raise KernelError(
                        f"{self.source}: the weight takes {group_in} channels per group, which does not divide "
                        f"the image's {c} channels"
                    )
                groups = c // group_in
            elif mix == "depthwise":
                groups = c
            else:
                groups = 1 if mix == "dense" else mix
            if group_in * groups != c:
                if c == 1 and group_in * groups == 3:
                    # a grayscale image meets an RGB kernel: each of R, G, B is that gray
                    repeat_gray, c = True, 3
                else:
                    raise KernelError(
                        f"{self.source}: the weight [{out_channels}, {group_in}, {kh}, {kw}] with groups={groups} "
                        f"takes {group_in * groups} input channels, the image has {c}"
                    )
            self._check_groups(c, out_channels, groups)
            weight = w
        weight = np.ascontiguousarray(self._even_out_pads(weight), np.float32)
        bias = None
        if self.bias:
            if len(self.bias) not in (1, len(weight)):
                raise KernelError(
                    f"{self.source}: 'bias' has {len(self.bias)} numbers; give 1 or one per output channel "
                    f"({len(weight)})"
                )
            bias = np.broadcast_to(np.asarray(self.bias, np.float32), (len(weight),)).copy()
        return Layer(self, weight, bias, groups, c, repeat_gray)

    def _even_out_pads(self, weight: np.ndarray) -> np.ndarray:
        """The weight with rows or columns of zero taps added on the side padded less, so that the
        symmetric ``padding`` (the larger side) reads exactly what uneven ``pads`` would: a zero
        tap adds nothing, and moves the first real tap by one dilation step."""
        if not self.pads or self.padding == NO_PADDING:
            return weight
        top, bottom, left, right = self.pads
        extra = []
        for low, high, step, axis in ((top, bottom, self.dilation[0], "rows"), (left, right, self.dilation[1], "cols")):
            if abs(high - low) % step:
                raise KernelError(
                    f"{self.source}: padding {self.border} (top, left, bottom, right) differs by {abs(high - low)} "
                    f"between the two sides of the {axis}, which dilation {step} cannot express; "
                    "convfilter pads both sides of an axis alike"
                )
            extra.append(((high - low) // step if high > low else 0, (low - high) // step if low > high else 0))
        if extra == [(0, 0), (0, 0)]:
            return weight
        return np.pad(weight, ((0, 0), (0, 0), *extra))

    def _check_layer_size(self, weights: int, in_channels: int) -> None:
        if weights > MAX_LAYER_WEIGHTS:
            raise KernelError(
                f"{self.source}: for {in_channels} channels the layer would hold {weights} weights, more than "
                f"{MAX_LAYER_WEIGHTS}; use fewer channels or more groups"
            )

    def _check_groups(self, in_channels: int, out_channels: int, groups: int) -> None:
        try:
            check_groups(in_channels, out_channels, groups)
        except UsageError as error:
            raise KernelError(f"{self.source}: {error}") from None


@dataclass(frozen=True)
class Layer:
    """A kernel resolved for an image: the PyTorch-layout weight and how it is applied."""

    kernel: Kernel
    weight: np.ndarray  # float32 [O, C/groups, kh, kw]
    bias: np.ndarray | None
    groups: int
    in_channels: int
    repeat_gray: bool = False  # a 1-channel image is repeated to the 3 channels the weight takes

    @property
    def out_channels(self) -> int:
        """Channels the convolution produces (before a bank's ``combine``)."""
        return self.weight.shape[0]

    @property
    def result_channels(self) -> int:
        """Channels of the filtered image: a bank's ``combine`` folds its k responses into one."""
        if self.kernel.weights.ndim == 3 and self.kernel.combine != "none":
            return self.in_channels
        return self.out_channels

    @property
    def mix(self) -> str:
        """``depthwise``, ``dense`` or ``grouped``, in the vocabulary of the report."""
        if self.in_channels == 1:  # one channel: both at once; say what the kernel asks for
            return "dense" if self.kernel.mix == "dense" else "depthwise"
        if self.groups == self.in_channels and self.weight.shape[1] == 1:
            return "depthwise"
        return "dense" if self.groups == 1 else "grouped"


def parse_kernel(
    data: object, stem: str, source: str, *, builtin: bool = False, params: dict[str, object] | None = None
) -> Kernel:
    """Validate a kernel mapping read from a YAML file and resolve it into a :class:`Kernel`.

    ``stem`` is the file's stem (the default name), ``source`` names the file in messages,
    ``params`` are ``-p`` overrides for the generator.
    """
    where = source
    settings = check_mapping(data, stem, where, builtin=builtin)
    generator, resolved_params = None, {}
    if "weights" in data:
        if params:
            raise KernelError(
                f"{where}: kernel {settings['name']} has fixed weights and takes no parameters, "
                f"got -p {next(iter(params))}"
            )
        weights = np.asarray(data["weights"], np.float64)
    else:
        generator, resolved_params, weights = _run_generator(data["generator"], params or {}, where)
    _float32(settings["bias"], where, "'bias'")  # checked only: the bias is kept as written
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
        weights = weights * settings.pop("scale") / settings.pop("divisor")
        if settings.pop("normalize"):
            weights = _normalize(weights, where)
    return Kernel(
        source=where,
        weights=_float32(weights, where),
        generator=generator,
        params=tuple(resolved_params.items()),
        **settings,
    )


def pads_text(pads: tuple[int, int, int, int]) -> str:
    """Explicit padding ``(top, bottom, left, right)`` as the report writes it: one number, a
    pair ``ph×pw``, or the four sides in ONNX's order, top, left, bottom, right.

    >>> pads_text((1, 1, 1, 1)), pads_text((1, 1, 2, 2)), pads_text((0, 1, 0, 1))
    ('1', '1×2', '0,0,1,1')
    """
    top, bottom, left, right = pads
    if (top, left) != (bottom, right):
        return f"{top},{left},{bottom},{right}"
    return f"{top}" if top == left else f"{top}×{left}"


def explicit_padding(value: object, where: str) -> dict:
    """The kernel fields for explicit padding: ``value`` is a whole number, a pair ``(ph, pw)``
    as ``nn.Conv2d`` takes it, or the four sides ``(top, bottom, left, right)``; each from 0 to
    ``MAX_PADDING``.

    >>> explicit_padding((0, 1, 2, 2), "pads")
    {'padding': (1, 2), 'pads': (0, 1, 2, 2)}
    """
    sides = int_pair(value) if not isinstance(value, (tuple, list)) or len(value) != 4 else tuple(value)
    if sides is not None and len(sides) == 2:
        sides = (sides[0], sides[0], sides[1], sides[1])
    if (
        sides is None
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in sides)
        or not all(0 <= n <= MAX_PADDING for n in sides)
    ):
        raise KernelError(
            f"{where}: padding must be a whole number from 0 to {MAX_PADDING}, or a pair or four of them, "
            f"got {shown(value)}"
        )
    top, bottom, left, right = (int(n) for n in sides)
    return {"padding": (max(top, bottom), max(left, right)), "pads": (top, bottom, left, right)}


def kernel_from_array(array: np.ndarray, name: str, source: str) -> Kernel:
    """Make a :class:`Kernel` from a ``.npy`` array: a 2-D kernel (applied depthwise) or a 4-D
    PyTorch weight ``[O, C/g, kh, kw]`` whose groups are inferred from the image's channels."""
    check_array(array.dtype, array.shape, source)
    return Kernel(
        name=name,
        source=source,
        weights=_float32(array, source),
        mix="depthwise" if array.ndim == 2 else "infer",
    )


def model_kernel(
    weight: np.ndarray, bias: np.ndarray | None, name: str, source: str, summary: str = "", **layer
) -> Kernel:
    """Make a :class:`Kernel` from a layer of a model file: a 4-D weight ``[O, C/g, kh, kw]`` and
    its bias (None, or O numbers), padded with zeros as PyTorch pads. ``layer`` holds the
    layer's own settings where the file has them (``mix`` = groups, ``stride``, ``dilation``,
    ``padding``, ``pads``); without ``mix`` the groups are inferred from the image's channels."""
    check_array(weight.dtype, weight.shape, source)
    if weight.ndim != 4:
        raise KernelError(f"{source}: has shape {shown(weight.shape)}; a convolution weight is [O, C/g, kh, kw]")
    values = ()
    if bias is not None:
        if bias.dtype.kind not in "iuf" or bias.ndim != 1 or len(bias) != len(weight):
            raise KernelError(
                f"{source}: the bias has shape {shown(bias.shape)} of {bias.dtype}; it must hold "
                f"{len(weight)} numbers, one per output channel"
            )
        values = tuple(float(b) for b in _float32(bias, source, "the bias"))
    return Kernel(
        name=name,
        source=source,
        weights=_float32(weight, source),
        summary=summary,
        mix=layer.pop("mix", "infer"),
        bias=values,
        padding_mode="zeros",
        **layer,
    )


def check_array(dtype: np.dtype, shape: tuple[int, ...], source: str) -> None:
    """Refuse what cannot be an array kernel from its dtype and shape alone, so that a ``.npy``
    header is judged before any of its data is read: integers or floats, 2-D or 4-D, not
    empty, at most 255×255."""
    if dtype.kind not in "iuf":
        raise KernelError(f"{source}: holds {dtype} values; a kernel holds integers or floats")
    if len(shape) not in (2, 4) or min(shape) < 0:
        raise KernelError(f"{source}: has shape {shown(shape)}; give a 2-D [kh, kw] or 4-D [O, C/g, kh, kw] array")
    if min(shape) == 0:
        raise KernelError(f"{source}: the weights must be finite numbers and not empty")
    if max(shape[-2:]) > MAX_SIZE:
        kh, kw = (cut(str(n), 20) for n in shape[-2:])  # a .npy header may claim a number of 4000 digits
        raise KernelError(f"{source}: {kh}×{kw} is larger than {MAX_SIZE}×{MAX_SIZE}")


def _float32(weights: np.ndarray, where: str, what: str = "the weights") -> np.ndarray:
    """The weights (or the bias) as float32, refused if any is not finite there (NaN, infinity,
    or beyond float32's range: 1e39 would become infinity and every result NaN or infinite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        weights = np.asarray(weights).astype(np.float32, order="C")
    if not np.all(np.isfinite(weights)):
        raise KernelError(f"{where}: {what} must be finite numbers within float32's range (±3.4e38)")
    return weights


def _normalize(weights: np.ndarray, where: str) -> np.ndarray:
    # a 2-D kernel sums to 1 as a whole; each kernel of a bank, and each output channel of a
    # 4-D weight, sums to 1 on its own
    axes = {2: (0, 1), 3: (1, 2), 4: (1, 2, 3)}[weights.ndim]
    total = weights.sum(axis=axes, keepdims=True)
    if np.any(np.abs(total) < 1e-12):
        raise KernelError(f"{where}: 'normalize' divides by the sum of the weights, which is 0")
    return weights / total


def _run_generator(spec: dict, overrides: dict[str, object], where: str) -> tuple[str, dict, np.ndarray]:
    """Build a generated kernel (``spec`` already checked) with the ``-p`` overrides."""
    generator = GENERATORS[spec["type"]]
    values = check_generator(spec, where)
    if overrides:
        from_options = generator.resolve(overrides, f"{where}, option -p")
        values.update({name: from_options[name] for name in overrides})
    with np.errstate(all="ignore"):  # a sigma of 1e-200 divides by 0: refused as non-finite weights, in one line
        return spec["type"], values, generator.build(**values)
