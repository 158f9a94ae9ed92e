"""One image through one kernel: channels and alpha in, convolution, bank combine, range, pixels out.

``filter_file`` is a plain function of (input, output, kernel, options) returning a result record,
so that a batch of files, or any other executor, can run it as it is.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from .engine import Convolution
from .errors import ImageError
from .guards import Limits
from .imageio import (
    Encoded,
    Image,
    Reading,
    decode_image,
    encode_pieces,
    opencv_order,
    read_image,
    stream_format,
    swap_red_blue,
    to_rgb,
    write_atomic,
)
from .kernel import Kernel, Layer
from .maps import Prepare, montage, split_path, stretch
from .metadata import fit_metadata
from .overwrite import Overwrite
from .pixels import pixel_dtype, spread, to_pixels
from .report import layer_summary


@dataclass(frozen=True)
class Result:
    """What happened to one image: ``written`` (with the layer applied, the sizes and any notes),
    ``failed`` (with the one-line reason) or ``skipped`` (with why)."""

    input: str
    output: str
    status: str = "written"
    seconds: float = 0.0
    error: str | None = None
    layer: Layer | None = None  # None in a batch's records: the layer is the batch's, not sent back per file
    in_size: tuple[int, int] | None = None  # (width, height)
    out_size: tuple[int, int] | None = None
    notes: tuple[str, ...] = ()  # things the user should know, such as a 16-bit result written as 8 bits

    def to_json(self) -> dict:
        """The record ``--json`` prints: input, output, status, the layer's configuration and
        counts where there is one, seconds, and the error (None for an image written)."""
        record = {"input": self.input, "output": self.output, "status": self.status}
        if self.layer is not None:
            record.update(layer_summary(self.layer, self.out_size))
        return {**record, "seconds": round(self.seconds, 4), "error": self.error}


def split_alpha(pixels: np.ndarray, alpha: str, has_alpha: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Set the alpha channel of a gray+alpha or RGBA image aside when ``alpha`` is ``keep``
    (a raw ``.npy`` array has channels, not alpha: ``has_alpha`` False)."""
    if alpha == "keep" and has_alpha and pixels.shape[2] in (2, 4):
        return pixels[:, :, :-1], pixels[:, :, -1:]
    return pixels, None


def filter_pixels(
    pixels: np.ndarray,
    kernel: Kernel,
    fmt: str = "png",
    has_alpha: bool = True,
    threads: int | None = None,
    tally: list[int] | None = None,
    bgr: bool = False,
    reuse: bool = False,
) -> tuple[np.ndarray, Layer]:
    """Filter ``(H, W, C)`` pixels with ``kernel`` and return the output pixels for format ``fmt``
    (float32 and unclipped for ``npy``) together with the resolved layer; the convolution runs
    on ``threads`` threads (None: all cores). ``tally`` collects the counts of result values
    that saturate the output's integers. With ``bgr``, colour pixels come in OpenCV's B, G, R(, A)
    order and a colour result for an image format goes back in it: the layer is applied to the
    channels in that order (its weights reordered), so that neither is turned. With ``reuse``, the
    caller lets ``pixels`` go: the result may be written over them."""
    color, alpha = split_alpha(pixels, kernel.alpha, has_alpha)
    layer = kernel.layer(color.shape[2])
    bank = len(kernel.weights) if kernel.weights.ndim == 3 and kernel.combine != "none" else 0
    weight, bias, turn = layer.weight, layer.bias, False
    if bgr:
        written = opencv_order(layer.result_channels) if fmt != "npy" else np.arange(layer.result_channels)
        responses = np.repeat(written * max(bank, 1), max(bank, 1)) + np.tile(np.arange(max(bank, 1)), len(written))
        reordered = reorder_layer(weight, bias, layer.groups, opencv_order(layer.in_channels), responses)
        if reordered is None:  # groups that the order splits: the pixels are turned instead
            pixels, turn = swap_red_blue(pixels, in_place=reuse), fmt != "npy"
            color, alpha = split_alpha(pixels, kernel.alpha, has_alpha)
        else:
            weight, bias = reordered
    if layer.repeat_gray:
        color = np.broadcast_to(color, (*color.shape[:2], 3))
    conv = Convolution(
        color,
        weight,
        bias,
        stride=kernel.stride,
        padding=kernel.padding,
        dilation=kernel.dilation,
        groups=layer.groups,
        padding_mode=kernel.padding_mode,
        flip=kernel.flip,
    )
    out_height, out_width, _ = conv.shape
    dtype = pixel_dtype(pixels.dtype, fmt)
    # a 16-bit result written to an 8-bit-only format is brought to the 8-bit scale
    scale = 1 / 257 if pixels.dtype == np.uint16 and dtype == np.uint8 else 1.0
    # an untouched alpha goes back next to the result: its channel is made room for from the start
    attach = alpha is not None and fmt != "npy" and layer.result_channels in (1, 3)
    shape = (out_height, out_width, 4 if attach else layer.result_channels)
    overwrite = reuse and _can_overwrite(pixels, shape, dtype, conv)
    full = pixels if overwrite else np.empty(shape, dtype)
    out = full[:, :, : layer.result_channels]
    # rows read by strips still to come are held back (none when each output row reads its own only)
    over = Overwrite(out, conv.geometry.reach[0]) if overwrite and conv.geometry.reach[0] else None
    whole = kernel.range == "normalize" and dtype.kind != "f"  # min..max needs the whole result first
    floats = np.empty(out.shape, np.float32) if whole else None

    # all output channels equal (edge): make pixels of the one channel, then copy them
    collapse = conv.replicated and not bank and not whole
    # 8- or 16-bit pixels clipped: from the exact integer sums, or (a blur) written by OpenCV as it filters
    plain = kernel.range == "clip" and scale == 1 and dtype.kind == "u" and not (bank or whole or collapse)
    blocks = conv.block_dtype(dtype) if plain else np.dtype(np.float32)
    direct = blocks == dtype

    def sink(r0: int, block: np.ndarray) -> None:
        # runs in the worker thread that computed the strip: pixels are made while it is in cache,
        # and no whole-image float result is ever held (except for normalize, which needs min..max)
        rows = slice(r0, r0 + len(block))
        if bank:
            block = _combine(block.reshape(*block.shape[:2], -1, bank), kernel.combine)
        if whole:
            floats[rows] = block
        elif over:
            over.write(r0, block, make_pixels)
        else:
            make_pixels(block, out[rows])

    def make_pixels(values: np.ndarray, destination: np.ndarray) -> None:
        if direct:
            np.copyto(destination, values)
        elif values.shape == destination.shape:
            to_pixels(values, dtype, kernel.range, scale, destination, conv.finite, tally)
        else:  # the one channel of a collapsed result, copied to every channel
            spread(to_pixels(values, dtype, kernel.range, scale, np.empty(values.shape, dtype), conv.finite, tally),
                   destination)  # fmt: skip

    conv.run_into(sink, threads, collapse, dtype=blocks)
    if over:
        over.finish()
    if whole:
        to_pixels(floats, dtype, kernel.range, scale, out, finite=conv.finite)
    if attach:
        _attach_alpha(full, layer.result_channels, alpha, conv, scale)
    return (swap_red_blue(full, in_place=True) if turn else full), layer


def _can_overwrite(pixels: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, conv: Convolution) -> bool:
    """Whether the result of ``conv`` (``shape``, ``dtype``) can be written over ``pixels``, its
    input: same shape and dtype, a stride of 1, rows that strips read near their own (not a
    circular border, nor a reach of a quarter of the image)."""
    geo = conv.geometry
    if pixels.shape != shape or pixels.dtype != dtype or not (pixels.flags.c_contiguous and pixels.flags.writeable):
        return False
    return geo.stride == (1, 1) and conv.padding_mode != "circular" and 4 * geo.reach[0] < shape[0]


def reorder_layer(
    weight: np.ndarray, bias: np.ndarray | None, groups: int, inputs: np.ndarray, outputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The weight ``[O, C/groups, kh, kw]`` and bias of a layer that takes its input channels in
    the order ``inputs`` (channel ``i`` holds the layer's channel ``inputs[i]``) and gives its
    outputs in the order ``outputs``; None when the orders would split a group.

    >>> w = np.arange(6, dtype=np.float32).reshape(3, 2, 1, 1)  # 2 inputs to 3 outputs, dense
    >>> reorder_layer(w, None, 1, np.array([1, 0]), np.array([2, 1, 0]))[0][:, :, 0, 0].tolist()
    [[5.0, 4.0], [3.0, 2.0], [1.0, 0.0]]
    >>> reorder_layer(np.ones((4, 2, 1, 1)), None, 2, np.array([2, 1, 0, 3]), np.arange(4)) is None
    True
    """
    per_in, per_out = len(inputs) // groups, weight.shape[0] // groups
    sources = inputs.reshape(groups, per_in)
    group = sources[:, :1] // per_in  # the layer's group that each group of the new order takes
    if np.any(sources // per_in != group) or np.any(outputs.reshape(groups, per_out) // per_out != group):
        return None
    within = (sources % per_in)[np.arange(weight.shape[0]) // per_out]  # (O, C/groups)
    reordered = weight[outputs[:, None], within]
    return reordered, (None if bias is None else bias[outputs])


def _combine(responses: np.ndarray, how: str) -> np.ndarray:
    """Fold the last axis (the k responses of a bank on one channel) into one value."""
    if how == "magnitude":
        return np.sqrt(np.einsum("...k,...k->...", responses, responses))
    if how == "max":
        return responses.max(axis=-1)
    return responses.sum(axis=-1)


def _attach_alpha(full: np.ndarray, channels: int, alpha: np.ndarray, conv: Convolution, scale: float) -> None:
    """Put the untouched alpha, sampled at the output's positions (which a stride thins), in the
    last channel of ``full`` after the result's ``channels``; a gray result is written as RGBA,
    which every format with alpha holds."""
    rows, cols = conv.sample_positions()
    kept = alpha[rows][:, cols]
    if kept.dtype != full.dtype:
        kept = to_pixels(kept.astype(np.float32), full.dtype, "clip", scale, finite=conv.finite)
    full[:, :, 3] = kept[:, :, 0]
    if channels == 1:
        full[:, :, 1] = full[:, :, 2] = full[:, :, 0]


@dataclass(frozen=True)
class Options:
    """How each file is read and written: the output format, JPEG/WebP quality, PNG compression
    level, and the limits an input must keep to."""

    format: str
    quality: int = 95
    compression: int | None = None  # PNG, 0-9; None: OpenCV's default
    limits: Limits = field(default_factory=Limits)
    threads: int | None = None  # convolution threads; None: all cores (a batch's workers take 1)
    prepare: Prepare | None = None  # the input as a model saw it (scale, mean, std, channel order)
    maps: str | None = None  # "montage" or "split": every channel of the result seen as a picture


def filter_image(
    image: Image, kernel: Kernel, options: Options, name: str = "<image>", output: str = "-"
) -> tuple[Encoded | list[Encoded], Result]:
    """Filter a decoded image and encode the result with the image's metadata (less what the
    output format cannot carry; options whose format is None keep the input's); return the bytes
    and the record, ``name`` and ``output`` naming the two ends in it. The input's pixels are let
    go before encoding, so that a caller that keeps no reference of its own does not hold both."""
    fmt = options.format or stream_format(image.format)
    saturated: list[int] = []
    if options.prepare is not None or options.maps:  # they speak R, G, B
        image = to_rgb(image)
    pixels = image.pixels if options.prepare is None else options.prepare.apply(image.pixels)
    if options.maps:
        return _maps(image, pixels, kernel, options, fmt, name, output)
    bgr = image.bgr
    out, layer = filter_pixels(pixels, kernel, fmt, image.format != "npy", options.threads, saturated, bgr, True)
    del pixels
    height, width = image.pixels.shape[:2]
    metadata, left_out = fit_metadata(image.metadata, fmt)
    notes = [f"{name}: {note}" for note in left_out]
    share = sum(saturated) / (out.size or 1)
    notes += filter(None, [_depth_note(name, output, image.pixels.dtype, out.dtype, share, kernel.range)])
    if image.frames > 1:
        notes.append(f"{name} has {image.frames} frames: only the first is filtered")
    del image
    data = encode_pieces(out, fmt, options.quality, metadata, options.compression, reuse=True, bgr=bgr)
    size = (out.shape[1], out.shape[0])
    return data, Result(name, output, "written", 0.0, None, layer, (width, height), size, tuple(notes))


def _maps(image: Image, pixels: np.ndarray, kernel: Kernel, options: Options, fmt: str, name: str, output: str):
    """``filter_image`` for ``--montage`` (one picture) and ``--split`` (a list of encoded images,
    one per channel), from the float result."""
    out, layer = filter_pixels(pixels, kernel, "npy", image.format != "npy", options.threads)
    if options.maps == "montage":
        data = encode_pieces(montage(out), fmt, options.quality, compression=options.compression)
    else:
        data = [encode_pieces(stretch(out[..., c])[..., None], fmt, options.quality) for c in range(out.shape[2])]
    height, width = image.pixels.shape[:2]
    return data, Result(name, output, "written", 0.0, None, layer, (width, height), (out.shape[1], out.shape[0]))


def filter_file(
    input_path: str | Path, output_path: str | Path, kernel: Kernel, options: Options, reading: Reading | None = None
) -> Result:
    """Read ``input_path`` (or take it from ``reading``, begun earlier), filter it and write
    ``output_path`` atomically."""
    start = time.perf_counter()
    name, output = str(input_path), str(output_path)
    with _memory_is_an_image_error(name):
        # no name of its own for the image: filter_image lets it go before encoding
        data, result = filter_image(
            reading.take() if reading is not None else read_image(input_path, options.limits, bgr=True),
            kernel, options, name, output,
        )  # fmt: skip
    write_result(output_path, data)
    return replace(result, seconds=time.perf_counter() - start)


def write_result(path: str | Path, data: Encoded | list[Encoded]) -> None:
    """Write an encoded result atomically: one file, or for ``--split`` one file per channel."""
    if isinstance(data, list):
        for index, part in enumerate(data):
            write_atomic(split_path(Path(path), index, len(data)), part)
    else:
        write_atomic(path, data)


def filter_bytes(
    data: bytes, name: str, kernel: Kernel, options: Options, output: str = "-"
) -> tuple[Encoded | list[Encoded], Result]:
    """Filter image bytes (a stream) and return the encoded result; options whose format is
    ``None`` keeps the input's, ``output`` is where the caller will put the bytes (for the report)."""
    start = time.perf_counter()
    with _memory_is_an_image_error(name):
        encoded, result = filter_image(
            decode_image(data, name, options.limits, bgr=True), kernel, options, name, output
        )
    return encoded, replace(result, seconds=time.perf_counter() - start)


# a share of saturated values worth a note: an edge filter clips its negative half by design (up to
# half the values), a range that does not suit the result clips nearly all of them
SATURATION_NOTE = 0.9


def _depth_note(
    name: str, output: str, source: np.dtype, written: np.dtype, saturated: float, range_policy: str
) -> str | None:
    """What the user should know when the written pixels cannot hold the result: a 16-bit result
    written as 8 bits, values of a type the output does not hold, or nearly all values clipped
    (``saturated`` is their share)."""
    if written.kind == "f":
        return None
    top = np.iinfo(written).max
    clipped = f"{saturated:.1%} of the values fall outside 0..{top} and are clipped"
    if source == np.uint16 and written == np.uint8:
        return f"{name} is 16-bit and {output} holds 8 bits per channel: the result is written as 8-bit" + (
            f"; {clipped}" if saturated > SATURATION_NOTE else ""
        )
    if source.kind == "f" or source not in (np.uint8, np.uint16):
        return (
            f"{name} holds {source} values and {output} holds {written.itemsize * 8}-bit integers: the result is "
            f"rounded{f' ({clipped})' if saturated else ''}; --range normalize stretches it to 0..{top}, "
            "a .tif or .npy output keeps it as float"
        )
    if saturated > SATURATION_NOTE and range_policy != "normalize":
        return f"{name}: {clipped}: {output} is nearly flat; --range normalize (or abs, offset) fits them"
    return None


@contextlib.contextmanager
def _memory_is_an_image_error(name: str):
    """An image too large for the memory there is: one line that says so, not a bug's report."""
    message = f"input {name}: not enough memory to filter it; lower --max-pixels to refuse such images from the header"
    try:
        yield
    except MemoryError:
        raise ImageError(message) from None
    except cv2.error as error:  # an allocation that failed within OpenCV
        if getattr(error, "code", None) == cv2.Error.StsNoMem or "bad_alloc" in str(error):
            raise ImageError(message) from None
        raise
