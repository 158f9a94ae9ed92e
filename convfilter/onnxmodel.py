"""``Conv`` layers of an ONNX graph, with the node's own strides, pads, dilations, group and bias.

The file is parsed with the ``onnx`` package (the optional extra ``convfilter[onnx]``); only the
weight and bias of the node asked for are turned into arrays, after their shapes are checked.
Weights stored in separate files (ONNX's external data) are not followed."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import KernelError
from .generators import cut, shown
from .kernel import MAX_PADDING, Kernel, explicit_padding, model_kernel, pads_text
from .models import LayerInfo, _check_size, listing, model_source, read_bounded

INSTALL = 'pip install "convfilter[onnx]"'
MAX_STEP = 2**31 - 1
_IDENTITY_HOPS = 8  # a weight may reach its Conv through a few Identity nodes


def onnx_kernel(handle: BinaryIO, path: Path, name: str | None) -> Kernel:
    """The kernel of the ``Conv`` node ``name`` (a node's name, or its weight's) of the ONNX
    model read from ``handle``; without a name, the first ``Conv`` fed by the graph's input."""
    source = model_source(path)
    graph = _load(handle, source).graph
    convs = _conv_nodes(graph)
    if name is None:
        inputs = _graph_inputs(graph)
        found = next(((label, node) for label, node in convs if node.input[0] in inputs), None)
        if found is None:
            raise KernelError(
                f"{source}: no Conv node takes the graph's input directly; give one as "
                f"{cut(str(path), 80)}:NAME, from {listing([label for label, _ in convs]) or 'none (no Conv node)'}"
            )
    else:
        found = next(((label, node) for label, node in convs if name in (node.name, node.input[1])), None)
        if found is None:
            raise KernelError(
                f"{source}: no Conv node or weight {shown(name, 80)}; the Conv nodes are "
                f"{listing([label for label, _ in convs]) or 'none'}"
            )
    label, node = found
    where = f"{source}, Conv {cut(label, 80)}"
    weight = _array(graph, node.input[1], where, "weight")
    bias = _array(graph, node.input[2], where, "bias") if len(node.input) > 2 and node.input[2] else None
    if weight.ndim != 4:
        raise KernelError(f"{where}: the weight has shape {shown(weight.shape)}; a 2-D convolution's is 4-D")
    settings = _settings(_attributes(node), weight.shape, where)
    summary = f"Conv node {label} of {path.name}"
    return model_kernel(weight, bias, label, where, summary, **settings)


def onnx_layers(handle: BinaryIO, path: Path) -> list[LayerInfo]:
    """Every ``Conv`` node of the ONNX model read from ``handle``, as ``show MODEL`` lists it."""
    source = model_source(path)
    graph = _load(handle, source).graph
    inputs = _graph_inputs(graph)
    layers = []
    stored = _Stored(graph)
    for label, node in _conv_nodes(graph):
        where = f"{source}, Conv {cut(label, 80)}"
        tensor = _tensor(graph, node.input[1], stored)
        shape = tuple(tensor.dims) if tensor is not None else ()
        attributes = _attributes(node)
        info = {"groups": attributes.get("group", 1)}
        if len(shape) == 4 and all(n > 0 for n in shape):
            settings = _settings(attributes, shape, where)
            padding = settings.get("padding", "same")
            if "pads" in settings:
                padding = pads_text(settings["pads"])
            info.update(stride=settings["stride"], dilation=settings["dilation"], padding=padding)
        bias = len(node.input) > 2 and bool(node.input[2])
        layers.append(LayerInfo(label, shape, bias, from_input=node.input[0] in inputs, **info))
    return layers


def _load(handle: BinaryIO, source: str):
    """The model's protobuf, parsed from the bytes of the file."""
    try:
        import onnx
    except ImportError:
        raise KernelError(f"{source}: reading ONNX models needs the onnx package: {INSTALL}") from None
    data = read_bounded(handle, source)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError, and what its parsers raise on nonsense
        raise KernelError(f"{source}: not a readable ONNX model ({cut(' '.join(str(error).split()), 80)})") from None
    if not model.HasField("graph"):
        raise KernelError(f"{source}: not a readable ONNX model (it holds no graph)")
    return model


def _conv_nodes(graph) -> list[tuple[str, object]]:
    """``(label, node)`` for each ``Conv`` node of the main graph, in order; a node without a name
    is labelled by its weight's."""
    convs = []
    for node in graph.node:
        if node.op_type == "Conv" and node.domain in ("", "ai.onnx") and len(node.input) >= 2:
            convs.append((node.name or node.input[1], node))
    return convs


def _graph_inputs(graph) -> set[str]:
    """The graph's real inputs (older models also list their initializers among the inputs)."""
    return {i.name for i in graph.input} - {t.name for t in graph.initializer}


class _Stored:
    """Where a graph's tensors come from: its initializers, and the node producing each output."""

    def __init__(self, graph) -> None:
        self.initializers = {t.name: t for t in reversed(graph.initializer)}
        self.producers = {out: n for n in reversed(graph.node) for out in n.output}


def _tensor(graph, name: str, stored: _Stored | None = None):
    """The stored tensor named ``name``: an initializer, or the value of a ``Constant`` node,
    possibly through ``Identity`` nodes; None if the graph computes it."""
    stored = stored or _Stored(graph)
    for _ in range(_IDENTITY_HOPS):
        if name in stored.initializers:
            return stored.initializers[name]
        producer = stored.producers.get(name)
        if producer is None:
            return None
        if producer.op_type == "Constant":
            value = next((a for a in producer.attribute if a.name == "value"), None)
            return value.t if value is not None and value.HasField("t") else None
        if producer.op_type != "Identity" or not producer.input:
            return None
        name = producer.input[0]
    return None


def _array(graph, name: str, where: str, what: str) -> np.ndarray:
    """The stored tensor ``name`` as an array, its shape, type and size checked first."""
    from onnx import TensorProto, numpy_helper

    tensor = _tensor(graph, name)
    if tensor is None:
        raise KernelError(f"{where}: the {what} {shown(name, 60)} is computed by the graph, not stored in the file")
    if tensor.data_location == TensorProto.EXTERNAL:
        raise KernelError(f"{where}: the {what} is kept in a separate file (external data), which is not read")
    shape = tuple(tensor.dims)
    if any(n < 0 for n in shape) or len(shape) > 4:
        raise KernelError(f"{where}: the {what} has shape {shown(shape)}")
    _check_size(shape, f"{where}, {what}")
    try:
        array = numpy_helper.to_array(tensor)
    except Exception as error:  # data that does not fill the shape, an unknown type
        raise KernelError(f"{where}: the {what} cannot be read ({cut(' '.join(str(error).split()), 80)})") from None
    if array.shape != shape or array.dtype.kind not in "iuf":
        raise KernelError(f"{where}: the {what} holds {array.dtype} values of shape {shown(array.shape)}")
    return array


def _attributes(node) -> dict:
    """The node's attributes, name → int, list of ints or text."""
    from onnx import AttributeProto

    values = {}
    for attribute in node.attribute:
        if attribute.type == AttributeProto.INTS:
            values[attribute.name] = list(attribute.ints)
        elif attribute.type == AttributeProto.STRING:
            values[attribute.name] = attribute.s.decode("utf-8", "replace")
        elif attribute.type == AttributeProto.INT:
            values[attribute.name] = attribute.i
        else:
            values[attribute.name] = None  # a type no Conv attribute has: refused where it is read
    return values


def _settings(attributes: dict, shape: tuple[int, ...], where: str) -> dict:
    """The kernel fields of a ``Conv`` node: groups, stride, dilation and padding, as ONNX
    defines them (``pads`` is [top, left, bottom, right]; ``auto_pad`` SAME_UPPER puts the odd
    one at the end, as "same" does)."""
    kh, kw = shape[2:]

    def ints(key: str, count: int, default: int, low: int, high: int) -> list[int]:
        value = attributes.get(key, [default] * count)
        if not isinstance(value, list) or len(value) != count or not all(low <= v <= high for v in value):
            raise KernelError(f"{where}: {key} is {shown(value)}; expected {count} numbers from {low} to {high}")
        return value

    group = attributes.get("group", 1)
    if not isinstance(group, int) or group < 1 or shape[0] % group:
        raise KernelError(f"{where}: group {shown(group)} does not divide the {shape[0]} output channels")
    if "kernel_shape" in attributes and attributes["kernel_shape"] != [kh, kw]:
        raise KernelError(f"{where}: kernel_shape {shown(attributes['kernel_shape'])} is not the weight's {kh}×{kw}")
    stride = ints("strides", 2, 1, 1, MAX_STEP)
    dilation = ints("dilations", 2, 1, 1, MAX_STEP)
    settings = {"mix": group, "stride": tuple(stride), "dilation": tuple(dilation)}
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return {**settings, "padding": "valid"}
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if stride != [1, 1]:
            raise KernelError(
                f"{where}: auto_pad {auto_pad} with strides {stride} pads by an amount that depends on the image's "
                "size; only fixed pads are read"
            )
        total = [dilation[0] * (kh - 1), dilation[1] * (kw - 1)]
        before = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
        pads = [before[0], before[1], total[0] - before[0], total[1] - before[1]]
    elif auto_pad == "NOTSET":
        pads = ints("pads", 4, 0, 0, MAX_PADDING)
    else:
        raise KernelError(f"{where}: auto_pad {shown(auto_pad)} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    top, left, bottom, right = pads
    return {**settings, **explicit_padding((top, bottom, left, right), where)}
