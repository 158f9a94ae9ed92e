"""The commands besides filtering — ``list``, ``show``, ``gallery`` and ``params`` — and the option
parsing they share with it. Click only, like ``cli.py``; the library is imported inside each command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from .channels import MAX_CHANNELS
from .errors import UsageError
from .options import complete_kernel, mix_options, param_option, parse_mix, parse_params


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects instead of a table.")
def list_command(as_json: bool) -> None:
    """List every kernel: name, shape, mix and summary."""
    from .library import kernel_table

    rows, problems = kernel_table()
    for problem in problems:  # the kernels of a folder that cannot be read are left out, with a note
        click.echo(f"convfilter: note: {problem}", err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        shape = "×".join(map(str, r["shape"]))
        params = f"  [-p {', '.join(f'{k}={v:g}' for k, v in r['parameters'].items())}]" if r["parameters"] else ""
        line = f"{r['name']:<{width}}  {shape:<9} {r['mix']:<10} {r['summary']}{params}"
        if r["source"] != "built-in":
            line += f"  ({r['source']}"
            if "hidden_by" in r:
                line += "; hidden by the built-in of that name, use its path"
            if "error" in r:
                line += f"; does not load: {r['error']}"
            line += ")"
        click.echo(line)


@click.command("show")
@click.argument("kernel_ref", metavar="KERNEL", shell_complete=complete_kernel)
@param_option
@click.option(
    "--channels",
    type=click.IntRange(1, MAX_CHANNELS),
    help="Image channels C [default: 3, or the input channels of a model file's layer].",
)
@mix_options
@click.option("--json", "as_json", is_flag=True, help="Print the kernel as JSON.")
@click.option("--plot", "plot_path", metavar="FILE.png", help="Also draw the weights as a picture.")
def show_command(kernel_ref, params, channels, groups, depthwise, dense, as_json, plot_path) -> None:
    """Print KERNEL's weights, configuration, parameter and multiply-add counts.

    For a model file without a layer (MODEL.onnx, MODEL.pt, MODEL.safetensors), list its
    convolution layers instead."""
    from . import library
    from .models import split_model_ref
    from .report import describe_kernel, kernel_json

    model = split_model_ref(kernel_ref)
    if model is not None and model[1] is None and not (params or groups or depthwise or dense or plot_path):
        _list_model_layers(model[0], as_json)
        return
    kernel = library.load_kernel(kernel_ref, parse_params(params)).with_options(mix=parse_mix(groups, depthwise, dense))
    if channels is None:
        channels = _layer_channels(kernel) if model is not None else 3
    layer = kernel.layer(channels)  # before the plot: a layer refused for these channels writes nothing
    if plot_path is not None:
        from .imageio import encode_image, write_atomic
        from .outputs import check_writable_over, output_format
        from .plot import draw_kernel

        fmt = output_format(plot_path)
        check_writable_over(Path(plot_path), [Path(kernel_ref)] if Path(kernel_ref).exists() else [])
        write_atomic(plot_path, encode_image(draw_kernel(kernel), fmt))
    click.echo(json.dumps(kernel_json(kernel, layer)) if as_json else describe_kernel(kernel, layer))


def _layer_channels(kernel) -> int:
    """The channels a model file's layer takes: its weight's input channels times its groups
    (for a state dict, whose groups are not stored: 3 if the weight can take them)."""
    per_group = kernel.weights.shape[1]
    if isinstance(kernel.mix, int):
        return per_group * kernel.mix
    return 3 if 3 % per_group == 0 else per_group


def _list_model_layers(path: Path, as_json: bool) -> None:
    """``show MODEL``: every convolution layer of the model file, marked where it takes an image."""
    from .models import model_layers

    layers = model_layers(path)
    if as_json:
        click.echo(json.dumps([layer.to_json() for layer in layers], indent=2))
        return
    click.echo(f"{path.name}: {len(layers)} convolution layers")
    if not layers:
        return

    def text(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, tuple):
            return str(value[0]) if value[0] == value[1] else f"{value[0]}×{value[1]}"
        return str(value)

    header = ("", "name", "weight", "groups", "stride", "padding", "dilation", "bias", "parameters")
    rows = [
        (
            ("→" if layer.from_input else " ") + ("*" if layer.takes_image else " "),
            layer.name,
            "×".join(map(str, layer.shape)) or "?",
            text(layer.groups),
            text(layer.stride),
            text(layer.padding),
            text(layer.dilation),
            "yes" if layer.bias else "no",
            str(layer.parameters),
        )
        for layer in layers
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    click.echo("* takes an image's 1, 3 or 4 channels; → takes the model's input (the layer used without :NAME)")
    if layers[0].groups is None:
        click.echo(
            "a state dict holds weights only: give --stride, --padding, --dilation and -g as the layer was built"
        )


@click.command("gallery")
@click.argument("image_path", metavar="IMAGE", type=click.Path())
@click.option("-o", "--output", required=True, metavar="SHEET.png", help="The contact sheet to write.")
@click.option("--width", type=click.IntRange(16, 2000), default=240, show_default=True, help="Tile width.")
@click.option("--columns", type=click.IntRange(1, 50), default=5, show_default=True, help="Tiles per row.")
def gallery_command(image_path, output, width, columns) -> None:
    """Apply every built-in kernel to IMAGE and write a labelled contact sheet."""
    from .imageio import encode_image, read_image, write_atomic
    from .outputs import check_writable_over, output_format
    from .plot import gallery

    fmt = output_format(output)
    if not Path(output).parent.is_dir():
        raise UsageError(f"output {output}: the folder {Path(output).parent} does not exist")
    if Path(image_path).exists():
        check_writable_over(Path(output), [Path(image_path)])
    write_atomic(output, encode_image(gallery(read_image(image_path).pixels, width, columns), fmt))


def _kernel_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*", value)
    if not match or int(match[1]) < 1 or (match[2] and int(match[2]) < 1):
        raise UsageError(f"option --kernel-size: expected K or KHxKW with positive numbers, got {value!r}")
    return int(match[1]), int(match[2] or match[1])


def _image_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", value)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise UsageError(f"option --size: expected WIDTHxHEIGHT with positive numbers, got {value!r}")
    return int(match[1]), int(match[2])


@click.command("params")
@click.option("--in-channels", type=click.IntRange(1, MAX_CHANNELS), required=True, help="Input channels C.")
@click.option("--out-channels", type=click.IntRange(1, MAX_CHANNELS), required=True, help="Output channels O.")
@click.option("--kernel-size", required=True, metavar="K[xK]", help="Kernel size: 3 or 3x5.")
@click.option("--groups", type=click.IntRange(1, MAX_CHANNELS), default=1, show_default=True, help="Groups G.")
@click.option("--bias", is_flag=True, help="The layer has a bias (one per output channel).")
@click.option("--size", metavar="WxH", help="Input image size: gives the output size and the multiply-adds.")
@click.option("--stride", default="1", show_default=True, metavar="S|SH,SW", help="Stride, as Conv2d takes it.")
@click.option("--padding", default="same", show_default=True, metavar="same|valid|P|PH,PW", help="Padding.")
@click.option("--dilation", default="1", show_default=True, metavar="D|DH,DW", help="Dilation.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def params_command(in_channels, out_channels, kernel_size, groups, bias, size, stride, padding, dilation, as_json):
    """Count the parameters and multiply-adds of a convolution layer, as PyTorch's Conv2d has them,
    and its output size for an input of --size."""
    from .report import describe_counts, human, layer_counts

    kh, kw = _kernel_size(kernel_size)
    out_size = _output_size(_image_size(size), (kh, kw), stride, padding, dilation) if size else None
    counts = layer_counts(in_channels, out_channels, (kh, kw), groups, bias, out_size)
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo(f"conv {in_channels}→{out_channels} channels, {kh}×{kw} kernel, groups={groups}")
    click.echo(describe_counts(counts))
    if size:
        w, h = counts["size"]
        click.echo(f"output: {w}×{h} for {size.strip()} (stride {stride}, padding {padding}, dilation {dilation})")
        click.echo(f"cost: {human(counts['multiply_adds'])} multiply-adds for {w}×{h}")


def _pair(text: str, option: str, least: int) -> tuple[int, int]:
    parts = text.split(",")
    if not 1 <= len(parts) <= 2 or not all(p.strip().isdigit() and len(p.strip()) <= 9 for p in parts):
        raise UsageError(f"option {option}: expected N or H,W with whole numbers, got {text!r}")
    values = tuple(int(p) for p in parts) * (3 - len(parts))
    if min(values) < least:
        raise UsageError(f"option {option}: must be ≥ {least}, got {text!r}")
    return values[0], values[1]


def _output_size(size, kernel, stride, padding, dilation) -> tuple[int, int]:
    """``(width, height)`` of the output, by PyTorch's formula ⌊(n + 2p − d(k − 1) − 1) / s⌋ + 1."""
    (sy, sx), (dy, dx) = _pair(stride, "--stride", 1), _pair(dilation, "--dilation", 1)
    if padding == "same":
        if (sy, sx) != (1, 1):
            raise UsageError("option --padding: same takes stride 1 (as in PyTorch); give the padding as a number")
        return size
    py, px = (0, 0) if padding == "valid" else _pair(padding, "--padding", 0)
    (width, height), (kh, kw) = size, kernel
    out = ((height + 2 * py - dy * (kh - 1) - 1) // sy + 1, (width + 2 * px - dx * (kw - 1) - 1) // sx + 1)
    if min(out) < 1:
        raise UsageError(f"the {kh}×{kw} kernel (dilation {dilation}) does not fit a {width}×{height} input")
    return out[1], out[0]
