"""Convolution layers read from model files: ``MODEL.onnx[:NAME]`` (see :mod:`.onnxmodel`),
``MODEL.safetensors:TENSOR`` and ``MODEL.pt[:KEY]`` (a PyTorch state dict).

A safetensors file is read here with NumPy alone: an 8-byte little-endian header length, a JSON
header of dtype, shape and byte offsets per tensor, then the raw data; only the header and the
one tensor asked for (and its bias) are read. A ``.pt`` file is handed to
``torch.load(weights_only=True)``, which never unpickles anything but tensors and plain
containers. Every file is opened once, checked to be a regular file of at most 2 GiB."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import KernelError
from .generators import MAX_SIZE, cut, shown
from .kernel import MAX_LAYER_WEIGHTS, Kernel, model_kernel

MODEL_SUFFIXES = (".onnx", ".safetensors", ".pt", ".pth")
MAX_MODEL_BYTES = 2 << 30  # a model file is large (100 MB is common), but not past this
MAX_HEADER_BYTES = 64 << 20  # a safetensors header of a large language model is a few MB
_REF = re.compile(r"(?P<file>.+?\.(?:onnx|safetensors|pth?))(?::(?P<name>.*))?", re.IGNORECASE | re.DOTALL)
# safetensors dtype → NumPy dtype (little-endian); BF16 is widened to float32 by hand
_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "U16": "<u2",
    "U32": "<u4",
    "U64": "<u8",
}


@dataclass(frozen=True)
class LayerInfo:
    """One convolution layer of a model file as ``convfilter show MODEL`` lists it. ``groups``,
    ``stride``, ``padding`` and ``dilation`` are None where the file does not say (a state dict
    holds weights only)."""

    name: str
    shape: tuple[int, ...]
    bias: bool
    groups: int | None = None
    stride: tuple[int, int] | None = None
    padding: str | None = None
    dilation: tuple[int, int] | None = None
    from_input: bool = False  # fed by the graph's input: the layer taken when no name is given

    @property
    def parameters(self) -> int:
        """Weights plus bias, counted as PyTorch counts them."""
        return math.prod(self.shape) + (self.shape[0] if self.bias else 0)

    @property
    def takes_image(self) -> bool:
        """Whether the layer takes an image's 1, 3 or 4 channels (groups 1 where unknown)."""
        return len(self.shape) == 4 and self.shape[1] * (self.groups or 1) in (1, 3, 4)

    def to_json(self) -> dict:
        """The row of ``show MODEL --json``."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "groups": self.groups,
            "stride": None if self.stride is None else list(self.stride),
            "padding": self.padding,
            "dilation": None if self.dilation is None else list(self.dilation),
            "bias": self.bias,
            "parameters": self.parameters,
            "takes_image": self.takes_image,
            "from_input": self.from_input,
        }


def split_model_ref(text: str) -> tuple[Path, str | None] | None:
    """``(file, name)`` if ``text`` names a model file, ``MODEL.onnx`` or ``MODEL.onnx:NAME``
    (also ``.safetensors``, ``.pt``, ``.pth``); None for anything else.

    >>> split_model_ref("net.onnx:Conv@2"), split_model_ref("net.pt"), split_model_ref("edge")
    ((PosixPath('net.onnx'), 'Conv@2'), (PosixPath('net.pt'), None), None)
    """
    if Path(text).suffix.lower() in MODEL_SUFFIXES:
        return Path(text), None
    match = _REF.fullmatch(text)
    return (Path(match["file"]), match["name"]) if match and match["name"] is not None else None


def model_source(path: Path) -> str:
    """What messages call a model file."""
    return f"model file {cut(str(path), 200)}"


def load_model_kernel(path: Path, name: str | None) -> Kernel:
    """The kernel of layer ``name`` of the model file ``path`` (without a name: the layer that
    takes the input, for ONNX and state dicts; a safetensors file needs the tensor's name)."""
    source = model_source(path)
    if name is not None and not name.strip():
        raise KernelError(f"{source}: give a layer after ':', or no ':' (see 'convfilter show {cut(str(path), 80)}')")
    suffix = path.suffix.lower()
    with open_model(path, source) as handle:
        if suffix == ".onnx":
            from .onnxmodel import onnx_kernel

            return onnx_kernel(handle, path, name)
        if suffix == ".safetensors":
            header, start = safetensors_header(handle, source)
            tensors = {key: tuple(value["shape"]) for key, value in header.items()}
            key = _pick(tensors, name, source, path, need_name=True)
            weight = _read_tensor(handle, header, start, key, source)
            bias_key = _bias_key(key, tensors)
            bias = _read_tensor(handle, header, start, bias_key, source) if bias_key else None
        else:
            state = state_dict(handle, source)
            tensors = {key: tuple(value.shape) for key, value in state.items()}
            key = _pick(tensors, name, source, path, need_name=False)
            weight = _from_torch(state[key], f"{source}, tensor {cut(key, 80)}")
            bias_key = _bias_key(key, tensors)
            bias = _from_torch(state[bias_key], f"{source}, tensor {cut(bias_key, 80)}") if bias_key else None
    summary = f"{key} of {path.name}"
    return model_kernel(weight, bias, key, f"{source}, tensor {cut(key, 80)}", summary)


def model_layers(path: Path) -> list[LayerInfo]:
    """Every convolution layer of the model file ``path``: a ``Conv`` node of an ONNX graph,
    a 4-D tensor of a safetensors file or state dict."""
    source = model_source(path)
    suffix = path.suffix.lower()
    with open_model(path, source) as handle:
        if suffix == ".onnx":
            from .onnxmodel import onnx_layers

            return onnx_layers(handle, path)
        if suffix == ".safetensors":
            shapes = {key: tuple(value["shape"]) for key, value in safetensors_header(handle, source)[0].items()}
        else:
            shapes = {key: tuple(value.shape) for key, value in state_dict(handle, source).items()}
    convs = {key: shape for key, shape in shapes.items() if len(shape) == 4}
    # a state dict is in the network's order: its first weight that takes an image is the default
    first = None if suffix == ".safetensors" else next((k for k, s in convs.items() if s[1] in (1, 3, 4)), None)
    return [
        LayerInfo(key, shape, _bias_key(key, shapes) is not None, from_input=key == first)
        for key, shape in convs.items()
    ]


def open_model(path: Path, source: str) -> BinaryIO:
    """The model file ``path`` opened for reading: refused, in one line naming ``source``, when
    it is missing, unreadable, not a regular file (a folder, a FIFO, a device) or over 2 GiB."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise KernelError(f"{source}: not a file")
        # O_NONBLOCK: a FIFO put in the file's place since the stat does not hang the open
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        handle = os.fdopen(os.open(path, flags), "rb")
    except (FileNotFoundError, NotADirectoryError):
        raise KernelError(f"{source}: no such file") from None
    except OSError as error:
        raise KernelError(f"{source}: cannot read ({error.strerror or error})") from None
    status = os.fstat(handle.fileno())
    if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_MODEL_BYTES:
        handle.close()
        raise KernelError(f"{source}: {'larger than 2 GiB' if stat.S_ISREG(status.st_mode) else 'not a file'}")
    return handle


def read_bounded(handle: BinaryIO, source: str) -> bytes:
    """The whole of an opened model file, at most 2 GiB."""
    data = handle.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:
        raise KernelError(f"{source}: larger than 2 GiB")
    return data


def listing(names: list[str], most: int = 8) -> str:
    """Names for a message, the first ``most`` of them and how many in all.

    >>> listing(["a", "b"]), listing([str(i) for i in range(20)], most=3)
    ('a, b', '0, 1, 2, … (20 in all)')
    """
    shown_names = ", ".join(cut(n, 60) for n in names[:most])
    return shown_names + (f", … ({len(names)} in all)" if len(names) > most else "")


def safetensors_header(handle: BinaryIO, source: str) -> tuple[dict[str, dict], int]:
    """The tensors of a safetensors file (name → dtype, shape, data_offsets, each checked against
    the file's size) and where their data starts; nothing but the header is read."""
    size = os.fstat(handle.fileno()).st_size
    unreadable = f"{source}: not a readable safetensors file"
    head = handle.read(8)
    if len(head) < 8:
        raise KernelError(f"{unreadable} (it holds {len(head)} bytes; the header length alone takes 8)")
    length = int.from_bytes(head, "little")
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise KernelError(
            f"{unreadable} (its header claims {length} bytes; the file holds {size}, and a header is at most 64 MiB)"
        )
    try:
        header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise KernelError(f"{unreadable} (its header is not JSON: {cut(' '.join(str(error).split()), 80)})") from None
    if not isinstance(header, dict):
        raise KernelError(f"{unreadable} (its header is not a JSON object)")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - length
    for key, entry in header.items():
        _check_entry(key, entry, data_bytes, unreadable)
    return header, 8 + length


def _check_entry(key: str, entry: object, data_bytes: int, unreadable: str) -> None:
    """Refuse a header entry that is not ``{dtype, shape, data_offsets}`` with offsets inside the
    data and as many bytes as the shape needs."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise KernelError(f"{unreadable} (tensor {shown(key)} is not {{dtype, shape, data_offsets}})")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]

    def whole(values: object, count: int | None) -> bool:
        return (
            isinstance(values, list)
            and (count is None or len(values) == count)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
        )

    if not isinstance(dtype, str) or not whole(shape, None) or len(shape) > 8 or not whole(offsets, 2):
        raise KernelError(f"{unreadable} (tensor {shown(key)} has a malformed dtype, shape or data_offsets)")
    begin, end = offsets
    if not begin <= end <= data_bytes:
        raise KernelError(
            f"{unreadable} (tensor {shown(key)} lies at bytes {shown(begin)}..{shown(end)}, "
            f"beyond the {data_bytes} bytes of data)"
        )
    itemsize = np.dtype(_DTYPES[dtype]).itemsize if dtype in _DTYPES else None
    if itemsize is not None and math.prod(shape) * itemsize != end - begin:
        raise KernelError(
            f"{unreadable} (tensor {shown(key)} of shape {shown(shape)} and {dtype} needs "
            f"{shown(math.prod(shape) * itemsize)} bytes, its offsets hold {end - begin})"
        )


def _read_tensor(handle: BinaryIO, header: dict, start: int, key: str, source: str) -> np.ndarray:
    """One tensor of a safetensors file, read from its offsets (already checked)."""
    entry = header[key]
    where = f"{source}, tensor {cut(key, 80)}"
    if entry["dtype"] not in _DTYPES:
        raise KernelError(f"{where}: holds {shown(entry['dtype'])} values; integers and floats are read")
    _check_size(tuple(entry["shape"]), where)
    begin, end = entry["data_offsets"]
    handle.seek(start + begin)
    data = handle.read(end - begin)
    if len(data) != end - begin:
        raise KernelError(f"{where}: the file ends before the tensor's data")
    array = np.frombuffer(data, _DTYPES[entry["dtype"]]).reshape(entry["shape"])
    if entry["dtype"] == "BF16":  # the high half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _check_size(shape: tuple[int, ...], where: str) -> None:
    """Refuse a tensor too large to be a layer's weight before its data is read."""
    if math.prod(shape) > MAX_LAYER_WEIGHTS or (len(shape) == 4 and max(shape[2:]) > MAX_SIZE):
        raise KernelError(
            f"{where}: shape {shown(shape)} is larger than a kernel may be "
            f"(at most {MAX_LAYER_WEIGHTS} weights, {MAX_SIZE}×{MAX_SIZE} taps)"
        )


def _pick(shapes: dict[str, tuple], name: str | None, source: str, path: Path, need_name: bool) -> str:
    """The key of the weight asked for: ``name``, or ``name.weight``; without a name, the first
    4-D weight that takes an image's 1, 3 or 4 channels (not for safetensors, whose order is
    not the network's)."""
    convs = [key for key, shape in shapes.items() if len(shape) == 4]
    if name is None:
        first = next((key for key in convs if shapes[key][1] in (1, 3, 4)), None)
        if need_name or first is None:
            raise KernelError(
                f"{source}: give the weight as {cut(str(path), 80)}:NAME; its convolution weights "
                f"are {listing(convs) or 'none (no 4-D tensor)'}"
            )
        return first
    for key in (name, f"{name}.weight"):
        if key in shapes:
            if len(shapes[key]) != 4:
                raise KernelError(
                    f"{source}: tensor {cut(key, 80)} has shape {shown(shapes[key])}, not a convolution weight "
                    f"[O, C/g, kh, kw]; the convolution weights are {listing(convs) or 'none'}"
                )
            return key
    raise KernelError(
        f"{source}: no tensor {shown(name, 80)}; the convolution weights are {listing(convs) or 'none (no 4-D tensor)'}"
    )


def _bias_key(key: str, shapes: dict[str, tuple]) -> str | None:
    """``conv1.bias`` for ``conv1.weight``, when there is one of O numbers."""
    if not key.endswith("weight"):
        return None
    bias = key[: -len("weight")] + "bias"
    return bias if shapes.get(bias) == (shapes[key][0],) else None


def state_dict(handle: BinaryIO, source: str) -> dict:
    """The tensors of a PyTorch file, name → tensor (nested mappings, as in a checkpoint with a
    ``state_dict`` entry, give dotted names), loaded with ``weights_only=True``: nothing but
    tensors and plain containers is ever unpickled."""
    try:
        import torch
    except ImportError:
        raise KernelError(
            f"{source}: reading .pt files needs PyTorch (pip install torch), "
            "or save the weights with safetensors and give the .safetensors file"
        ) from None
    try:
        loaded = torch.load(handle, weights_only=True, map_location="cpu")
    except Exception as error:  # a corrupt zip, a pickle of objects: torch's many kinds of refusal
        text = " ".join(str(error).split())
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise KernelError(
                f"{source}: holds Python objects besides tensors ({cut(found[1], 60)}), which are never unpickled; "
                "save model.state_dict() instead, or the weights with safetensors"
            ) from None
        reason = text.split("WeightsUnpickler error:", 1)[-1].split(" Check the documentation", 1)[0].strip()
        raise KernelError(f"{source}: not a readable PyTorch file ({cut(reason, 120)})") from None
    tensors: dict = {}
    _flatten(loaded, "", tensors, torch.Tensor, depth=0)
    if not isinstance(loaded, dict) or not tensors:
        kind = type(loaded).__name__
        raise KernelError(f"{source}: holds a {kind}, not a state dict (a mapping of names to tensors)")
    return tensors


def _flatten(value: object, prefix: str, into: dict, tensor_type: type, depth: int) -> None:
    if isinstance(value, tensor_type):
        into[prefix] = value
    elif isinstance(value, dict) and depth < 4:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), into, tensor_type, depth + 1)


def _from_torch(tensor, where: str) -> np.ndarray:
    """A tensor of a state dict as a NumPy array of its numbers."""
    if tensor.is_sparse or tensor.is_quantized or tensor.is_complex():
        raise KernelError(f"{where}: holds {tensor.dtype} values; a kernel holds integers or floats")
    _check_size(tuple(tensor.shape), where)
    try:
        if tensor.dtype.is_floating_point:
            return tensor.detach().to("cpu").float().numpy()
        return tensor.detach().to("cpu").numpy()
    except (TypeError, RuntimeError) as error:
        raise KernelError(f"{where}: holds values that are not numbers ({cut(str(error), 80)})") from None
