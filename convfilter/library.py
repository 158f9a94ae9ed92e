"""Where kernels come from: a kernel written out (a matrix literal, an ImageMagick kernel
string), the built-ins shipped in the package, the folders of ``CONVFILTER_KERNEL_PATH``, a path
to a kernel file (``.yaml``, ``.npy``, a libvips ``.mat``), or a layer of a model file.

A name is looked up among the built-ins first, then in the user folders in their order (the
first folder that has it wins, as with ``PATH``). A user kernel with a built-in's name is never
used under that name — ``convfilter list`` says so — but its path still works."""

from __future__ import annotations

import difflib
import math
import os
import stat
import sys
from collections.abc import Hashable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .errors import KernelError
from .generators import cut, shown
from .kernelfile import check_mapping, describe

if TYPE_CHECKING:
    import numpy as np

    from .kernel import Kernel

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 16  # a 4-D weight nests 5 levels below the mapping; anything far deeper is hostile
# the longest number a kernel file may write: a number within float's range needs 309 digits;
# PyYAML would turn 5000 digits into an int past Python's conversion limit, and 1:2:3:… (base 60)
# into an ever larger one, in quadratic time
MAX_NUMBER_CHARS = 1000
KERNEL_SUFFIXES = (".yaml", ".yml", ".npy", ".mat")
# model files that are not read: what to do instead
UNREAD_MODELS = {
    ".h5": "a Keras model",
    ".keras": "a Keras model",
    ".ckpt": "a TensorFlow checkpoint",
}


def builtin_folder() -> resources.abc.Traversable:
    """The folder of built-in kernel files, inside the installed package."""
    return resources.files("convfilter.kernels")


def builtin_names() -> list[str]:
    """Names of the built-in kernels, sorted."""
    return sorted(f.name[: -len(".yaml")] for f in builtin_folder().iterdir() if f.name.endswith(".yaml"))


def load_kernel(ref: str | Path, params: dict[str, object] | None = None) -> Kernel:
    """Return the kernel ``ref``: a matrix literal (``[[0,-1,0],[-1,5,-1],[0,-1,0]]``), an
    ImageMagick kernel string (``3x3: …`` or ``@file``), a built-in's name, a user kernel's name,
    a kernel file (``.yaml``, ``.yml``, ``.npy``, ``.mat``), or a layer of a model file
    (``MODEL.onnx[:NAME]``, ``MODEL.safetensors:TENSOR``, ``MODEL.pt[:KEY]``).

    ``params`` override the parameters of a generated kernel (``-p sigma=2``).

    >>> load_kernel("edge").weights.tolist()[1]
    [-0.3333333432674408, 2.6666667461395264, -0.3333333432674408]
    >>> load_kernel("3x3: 0,-1,0 -1,5,-1 0,-1,0").weights.tolist()[1]
    [-1.0, 5.0, -1.0]
    """
    from .literals import parse_literal
    from .models import load_model_kernel, split_model_ref

    text = str(ref)
    written = None if isinstance(ref, Path) else parse_literal(text)
    model = None if written is not None else split_model_ref(text)
    if params and (written is not None or model is not None):
        what = written.source if written is not None else f"model file {cut(str(model[0]), 80)}"
        raise KernelError(f"{what}: has fixed weights and takes no parameters, got -p {next(iter(params))}")
    if written is not None:
        return written
    if model is not None:
        return load_model_kernel(*model)
    path = Path(text)
    _check_kernel_suffix(path)
    if path.suffix.lower() in KERNEL_SUFFIXES or "/" in text:
        return _load_path(path, params)
    if text not in builtin_names():
        users, problems = scan_user_folders()
        if text in users:
            return _load_path(users[text], params)
        close = difflib.get_close_matches(text, [*builtin_names(), *users], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        unread = f" ({'; '.join(problems)})" if problems else ""
        raise KernelError(
            f"unknown kernel {shown(text)}: {hint}give a built-in name (see 'convfilter list') "
            f"or a path to a .yaml or .npy file{unread}"
        )
    from .kernel import parse_kernel

    data = read_yaml(builtin_folder().joinpath(f"{text}.yaml").read_bytes(), f"kernel file {text}.yaml")
    return parse_kernel(data, text, f"kernel file {text}.yaml", builtin=True, params=params)


def _check_kernel_suffix(path: Path) -> None:
    """Refuse an image where the kernel goes (the arguments the wrong way round), and an existing
    file of a kind that is not read as a kernel, each with what to do instead."""
    from .outputs import READABLE

    suffix = path.suffix.lower()
    if suffix[1:] in READABLE and suffix != ".npy":
        name = cut(str(path), 200)
        raise KernelError(
            f"KERNEL comes first: {name} is an image, not a kernel; try 'convfilter edge {name} …' "
            "(see 'convfilter list' for the kernels)"
        )
    if suffix in UNREAD_MODELS and path.is_file():
        raise KernelError(
            f"kernel file {cut(str(path), 200)}: {suffix} is {UNREAD_MODELS[suffix]}, which is not read; "
            "export the model to ONNX (.onnx), or save its weights with safetensors (.safetensors)"
        )
    if suffix and suffix not in KERNEL_SUFFIXES and path.is_file():
        raise KernelError(
            f"kernel file {cut(str(path), 200)}: {suffix} is not a kernel format; give a .yaml, .yml or .npy file, "
            "a libvips .mat matrix, or a model file (.onnx, .safetensors, .pt, .pth)"
        )


def _load_path(path: Path, params: dict[str, object] | None) -> Kernel:
    from .kernel import kernel_from_array, parse_kernel

    source = f"kernel file {path}"
    data = read_kernel_file(path, source)
    if path.suffix.lower() == ".mat":
        from .literals import vips_matrix

        if params:
            raise KernelError(f"{source}: a matrix kernel takes no parameters, got -p {next(iter(params))}")
        return vips_matrix(data, path.stem, source)
    if path.suffix.lower() == ".npy":
        if params:
            raise KernelError(f"{source}: an array kernel takes no parameters, got -p {next(iter(params))}")
        return kernel_from_array(read_npy(data, source), path.stem, source)
    return parse_kernel(read_yaml(data, source), path.stem, source, params=params)


def read_kernel_file(path: Path, source: str) -> bytes:
    """The bytes of the kernel file ``path``: refused, in one line naming ``source``, when it is
    missing, unreadable, not a regular file (a folder, a FIFO, a device) or over 1 MiB.

    It never blocks on a FIFO and reads at most 1 MiB + 1 byte, whatever size the file claims
    (files in ``/proc`` say 0)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise KernelError(f"{source}: not a file")
        # O_NONBLOCK: a FIFO put in the file's place since the stat does not hang the open
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        descriptor = os.open(path, flags)
        with os.fdopen(descriptor, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise KernelError(f"{source}: not a file")
            data = stream.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise KernelError(f"{source}: no such file") from None
    except OSError as error:
        raise KernelError(f"{source}: cannot read ({error.strerror or error})") from None
    if len(data) > MAX_FILE_BYTES:
        raise KernelError(f"{source}: larger than 1 MiB; a kernel file is small")
    return data


def npy_header(data: bytes, source: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """The dtype, shape, Fortran order and data offset of the ``.npy`` bytes ``data``, checked
    as a kernel (:func:`~convfilter.kernel.check_array`) and against the bytes that follow, so
    that a header claiming a giant array is refused before anything is allocated."""
    import io

    import numpy as np

    from .kernel import check_array

    stream = io.BytesIO(data)
    unreadable = f"{source}: not a readable .npy array"
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:  # 3.0 only adds UTF-8 field names, which no kernel has
            raise KernelError(f"{unreadable} (format version {version[0]}.{version[1]}; 1.0 and 2.0 are read)")
        shape, fortran_order, dtype = read_header[version](stream)
    except KernelError:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise KernelError(f"{unreadable} ({cut(' '.join(str(error).split()), 120)})") from None
    if dtype.hasobject:
        raise KernelError(f"{unreadable} (it holds Python objects, which are never loaded)")
    if any(isinstance(n, bool) for n in shape):
        raise KernelError(f"{unreadable} (shape is not valid: {shown(shape)})")
    check_array(dtype, shape, source)
    if math.prod(shape) * dtype.itemsize > len(data) - stream.tell():
        raise KernelError(
            f"{unreadable} (its header's shape {shown(shape)} of {dtype} needs more than the "
            f"{len(data) - stream.tell()} bytes of data the file holds)"
        )
    return dtype, shape, fortran_order, stream.tell()


def read_npy(data: bytes, source: str) -> np.ndarray:
    """The array of the ``.npy`` bytes ``data``, its header checked first (:func:`npy_header`)."""
    import numpy as np

    dtype, shape, fortran_order, offset = npy_header(data, source)
    flat = np.frombuffer(data, dtype, count=math.prod(shape), offset=offset)
    return flat.reshape(shape, order="F" if fortran_order else "C")


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, also refusing anchors and aliases (a few hundred bytes of aliases can
    expand into gigabytes), duplicate keys and absurd nesting."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (&, *) are not allowed in kernel files",
                problem_mark=event.start_mark,
            )
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise yaml.MarkedYAMLError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise yaml.MarkedYAMLError(
                    problem=f"a {type(key).__name__} cannot be a key; keys are names", problem_mark=key_node.start_mark
                )
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {shown(key)}", problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_number(self, node):
        """An int or float scalar, refused if it is written with more than ``MAX_NUMBER_CHARS``
        characters or lies beyond float's range (``.inf`` is left to the field that gets it)."""
        if len(node.value) > MAX_NUMBER_CHARS:
            raise yaml.MarkedYAMLError(
                problem=f"a number written with {len(node.value)} characters is too long", problem_mark=node.start_mark
            )
        construct = self.construct_yaml_int if node.tag.endswith(":int") else self.construct_yaml_float
        value = construct(node)
        finite = math.isfinite(value) if isinstance(value, float) else abs(value) <= sys.float_info.max
        if not finite and ".inf" not in node.value.lower() and ".nan" not in node.value.lower():
            raise yaml.MarkedYAMLError(
                problem=f"the number {cut(node.value)} is beyond float's range (±1.8e308)",
                problem_mark=node.start_mark,
            )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_number)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_number)


def read_yaml(data: bytes, source: str) -> object:
    """Parse kernel YAML safely; errors become one line with the line and column."""
    if len(data) > MAX_FILE_BYTES:
        raise KernelError(f"{source}: larger than 1 MiB; a kernel file is small")
    try:
        return yaml.load(data, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(error.problem or error.context or "invalid YAML").split())
        raise KernelError(f"{source}: {where}{problem}") from None
    except yaml.YAMLError as error:
        raise KernelError(f"{source}: invalid YAML ({' '.join(str(error).split())})") from None


def user_kernels() -> dict[str, Path]:
    """Name → file for the kernel files in the folders of ``CONVFILTER_KERNEL_PATH``
    (``:``-separated; the first folder with a name wins; folders that do not exist are skipped)."""
    return scan_user_folders()[0]


def scan_user_folders() -> tuple[dict[str, Path], list[str]]:
    """:func:`user_kernels`, and one line for each folder that exists but cannot be read (its
    kernels are left out, as a shell leaves out a folder of ``PATH`` it cannot read)."""
    found: dict[str, Path] = {}
    problems = []
    for folder in os.environ.get("CONVFILTER_KERNEL_PATH", "").split(":"):
        try:
            if not folder or not Path(folder).is_dir():
                continue
            files = {}
            for file in sorted(Path(folder).iterdir()):
                if file.suffix.lower() in KERNEL_SUFFIXES and not file.name.startswith(".") and file.is_file():
                    files.setdefault(file.stem, file)
        except OSError as error:
            problems.append(
                f"kernel folder {cut(folder, 80)} in CONVFILTER_KERNEL_PATH cannot be read ({error.strerror or error})"
            )
            continue
        for name, file in files.items():
            found.setdefault(name, file)
    return found, problems


def kernel_table() -> tuple[list[dict], list[str]]:
    """One row per kernel, built-ins then user kernels: name, summary, weight shape, mix and
    generator parameters, read from the files without computing weights (NumPy reads the header
    of a ``.npy`` file only). A user kernel that a built-in hides, or that does not load, says
    so in its row. Then the lines on the user folders that cannot be read."""
    rows = []
    builtins = builtin_names()
    for name in builtins:
        data = read_yaml(builtin_folder().joinpath(f"{name}.yaml").read_bytes(), f"kernel file {name}.yaml")
        rows.append({**describe(data, name), "source": "built-in"})
    users, problems = scan_user_folders()
    for name, file in users.items():
        row = {"name": name, "summary": "", "shape": [], "mix": "", "parameters": {}, "source": f"user: {file}"}
        try:
            row.update(_describe_file(file, name))
        except KernelError as error:
            row["error"] = str(error)
        if name in builtins:
            row["hidden_by"] = "built-in"
        rows.append(row)
    return rows, problems


def _describe_file(file: Path, name: str) -> dict:
    """A user kernel file's row of ``list``: validated as loading would, without computing weights."""
    source = f"kernel file {file}"
    data = read_kernel_file(file, source)
    if file.suffix.lower() == ".npy":
        shape = npy_header(data, source)[1]
        return {"shape": list(shape), "mix": "depthwise" if len(shape) == 2 else "groups from channels"}
    if file.suffix.lower() == ".mat":
        from .literals import vips_matrix

        return {"shape": list(vips_matrix(data, name, source).weights.shape), "mix": "depthwise"}
    data = read_yaml(data, source)
    check_mapping(data, name, source)
    return {key: value for key, value in describe(data, name).items() if key != "name"}


def complete_kernel(ctx, param, text: str) -> list:
    """Shell completion of a KERNEL argument: the kernel names that start with ``text``, or file
    names when it looks like a path (or no name matches)."""
    from click.shell_completion import CompletionItem

    if "/" not in text and "." not in text:
        names = [name for name in [*builtin_names(), *user_kernels()] if name.startswith(text)]
        if names:
            return [CompletionItem(name) for name in names]
    return [CompletionItem(text, type="file")]
