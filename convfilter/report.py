"""Parameter and multiply-add counts of a convolution layer, and the text and JSON report."""

from __future__ import annotations

from .channels import check_groups, common_divisors, listing
from .errors import UsageError
from .options import int_pair


def _size_pair(kernel_size: int | tuple[int, int]) -> tuple[int, int]:
    pair = int_pair(kernel_size, single=False)
    if pair is None or min(pair) < 1:
        raise UsageError(f"kernel size must be a positive int or a pair of them, got {kernel_size!r}")
    return pair


def count_parameters(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    groups: int = 1,
    bias: bool = False,
) -> int:
    """Weights of a 2-D convolution layer, counted as PyTorch counts them:
    ``out · in/groups · kh · kw``, plus ``out`` for a bias.

    >>> count_parameters(3, 3, 3, groups=3)
    27
    >>> count_parameters(64, 128, 3, groups=4)
    18432
    """
    kh, kw = _size_pair(kernel_size)
    if in_channels < 1 or out_channels < 1:
        raise UsageError(f"channel counts must be at least 1, got {in_channels} in and {out_channels} out")
    check_groups(in_channels, out_channels, groups)
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def multiply_adds(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], groups: int, out_pixels: int
) -> int:
    """Multiply-adds to compute ``out_pixels`` output positions: every output value takes
    ``in/groups · kh · kw`` of them.

    >>> multiply_adds(3, 3, 3, 1, 451 * 300)
    10959300
    """
    kh, kw = _size_pair(kernel_size)
    return out_pixels * out_channels * (in_channels // groups) * kh * kw


def layer_counts(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    groups: int = 1,
    bias: bool = False,
    size: tuple[int, int] | None = None,
) -> dict:
    """Everything the report says about a layer's size, as a JSON-ready mapping.

    ``size`` is ``(width, height)`` of the output, for the multiply-add count.
    """
    kh, kw = _size_pair(kernel_size)
    weights = count_parameters(in_channels, out_channels, (kh, kw), groups)
    counts = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "kernel_size": [kh, kw],
        "groups": groups,
        "weights": weights,
        "bias": out_channels if bias else 0,
        "parameters": weights + (out_channels if bias else 0),
        "dense_weights": count_parameters(in_channels, out_channels, (kh, kw), 1),
        "depthwise_weights": (
            count_parameters(in_channels, out_channels, (kh, kw), in_channels)
            if out_channels % in_channels == 0
            else None
        ),
        "valid_groups": common_divisors(in_channels, out_channels),
    }
    if size is not None:
        counts["size"] = list(size)
        counts["multiply_adds"] = multiply_adds(in_channels, out_channels, (kh, kw), groups, size[0] * size[1])
    return counts


def human(n: float) -> str:
    """A count with a unit prefix: ``10.96 M``.

    >>> human(10958400), human(512), human(18432)
    ('10.96 M', '512', '18.43 k')
    """
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n:g}"


def _pair_text(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}×{pair[1]}"


def describe_counts(counts: dict) -> str:
    """The parameter line of the report, with what the other ways of mixing would cost."""
    dense, groups = counts["dense_weights"], counts["groups"]
    others = []
    depthwise = counts["depthwise_weights"]
    if depthwise is not None and groups != counts["in_channels"]:
        others.append(f"depthwise would be {depthwise}")
    if groups != 1:
        others.append(f"dense would be {dense}")
    if len(counts["valid_groups"]) > 1:
        others.append(f"groups=g gives {dense}/g for g in {listing(counts['valid_groups'])}")
    line = f"parameters: {counts['weights']} weights + {counts['bias']} bias = {counts['parameters']}"
    return line + (f"  ({'; '.join(others)})" if others else "")


def describe_layer(layer, out_size: tuple[int, int] | None = None) -> str:
    """The report's lines on a resolved layer: configuration, parameters, and cost for an output
    of ``out_size`` = (width, height)."""
    kernel = layer.kernel
    kh, kw = kernel.kernel_size
    counts = layer_summary(layer, out_size)
    head = (
        f"{kernel.name}: {layer.mix} conv {layer.in_channels}→{layer.out_channels} channels, {kh}×{kw} kernel, "
        f"groups={layer.groups}, padding={kernel.border}, stride {_pair_text(kernel.stride)}"
    )
    if kernel.dilation != (1, 1):
        head += f", dilation {_pair_text(kernel.dilation)}"
    if layer.repeat_gray:
        head += " (the gray channel repeated as R, G, B)"
    if kernel.weights.ndim == 3:
        head += f"; a bank of {len(kernel.weights)} kernels, combine={kernel.combine}"
        if kernel.combine != "none":
            head += f" → {layer.result_channels} channels"
    lines = [head, "      " + describe_counts(counts)]
    if out_size is not None:
        lines.append(f"      cost: {human(counts['multiply_adds'])} multiply-adds for {out_size[0]}×{out_size[1]}")
    return "\n".join(lines)


def layer_summary(layer, out_size: tuple[int, int] | None = None) -> dict:
    """The JSON form of a resolved layer: configuration and counts."""
    kernel = layer.kernel
    counts = layer_counts(
        layer.in_channels,
        layer.out_channels,
        kernel.kernel_size,
        layer.groups,
        layer.bias is not None,
        out_size,
    )
    return {
        "kernel": kernel.name,
        "mix": layer.mix,
        **counts,
        "multiply_adds_per_pixel": multiply_adds(
            layer.in_channels, layer.out_channels, kernel.kernel_size, layer.groups, 1
        ),
        "padding": kernel.border,
        "stride": list(kernel.stride),
        "dilation": list(kernel.dilation),
        "flip": kernel.flip,
        "combine": kernel.combine,
        "range": kernel.range,
        "result_channels": layer.result_channels,
    }


def format_matrix(values, indent: str = "  ") -> str:
    """A 2-D array of weights as aligned text, up to 4 significant digits.

    >>> print(format_matrix([[-1, 0.5], [2, 1 / 3]], indent=""))
        -1     0.5
         2  0.3333
    """
    cells = [[f"{float(v):.4g}" for v in row] for row in values]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(indent + "  ".join(c.rjust(width) for c in row) for row in cells)


def describe_kernel(kernel, layer) -> str:
    """``convfilter show``: the resolved weights, the kernel's settings, and the layer it makes
    for ``layer.in_channels`` channels with its parameter and multiply-add counts."""
    w = kernel.weights
    shape = "×".join(map(str, w.shape))
    lines = [f"{kernel.name}: {kernel.summary}" if kernel.summary else kernel.name, f"source: {kernel.source}"]
    settings = f"weights {shape}, mix {kernel.mix}, padding {kernel.border}, range {kernel.range}"
    if w.ndim == 3:
        settings += f", combine {kernel.combine}"
    if kernel.params:
        settings += ", " + ", ".join(f"{k}={v:g}" for k, v in kernel.params)
    lines.append(settings)
    lines.append(describe_layer(layer))
    counts = layer_summary(layer)
    lines.append(f"      multiply-adds per output pixel: {counts['multiply_adds_per_pixel']}")
    lines.append("weights:")
    if w.ndim == 2:
        lines.append(format_matrix(w))
    elif w.ndim == 3:
        for k in range(len(w)):
            lines += [f"  kernel {k + 1} of {len(w)}:", format_matrix(w[k], "    ")]
    else:
        for o in range(w.shape[0]):
            for c in range(w.shape[1]):
                lines += [f"  out {o + 1}, in {c + 1}:", format_matrix(w[o, c], "    ")]
    return "\n".join(lines)


def _plain(weights) -> list:
    """Nested lists of the weights, each float32 as the shortest decimal that rounds back to it."""
    if weights.ndim == 0:
        return float(f"{float(weights):.7g}")
    return [_plain(w) for w in weights]


def kernel_json(kernel, layer) -> dict:
    """``convfilter show --json``: the kernel's settings and weights, and its layer's counts."""
    return {
        "name": kernel.name,
        "summary": kernel.summary,
        "source": kernel.source,
        "shape": list(kernel.weights.shape),
        "weights": _plain(kernel.weights),  # 0.299, not 0.29899999499
        "mix": kernel.mix,
        "bias": list(kernel.bias),
        "padding": kernel.border,
        "stride": list(kernel.stride),
        "dilation": list(kernel.dilation),
        "flip": kernel.flip,
        "combine": kernel.combine,
        "range": kernel.range,
        "alpha": kernel.alpha,
        "parameters": dict(kernel.params),
        "layer": layer_summary(layer),
    }
