"""Where kernels come from: the built-ins shipped in the package, the folders of
``CONVFILTER_KERNEL_PATH``, or a path to a file.

A name is looked up among the built-ins first, then in the user folders in their order (the
first folder that has it wins, as with ``PATH``). A user kernel with a built-in's name is never
used under that name — ``convfilter list`` says so — but its path still works."""

from __future__ import annotations

import ast
import difflib
import io
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .errors import KernelError
from .kernelfile import check_mapping, describe

if TYPE_CHECKING:
    from .kernel import Kernel

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 16  # a 4-D weight nests 5 levels below the mapping; anything far deeper is hostile
KERNEL_SUFFIXES = (".yaml", ".yml", ".npy")


def builtin_folder() -> resources.abc.Traversable:
    """The folder of built-in kernel files, inside the installed package."""
    return resources.files("convfilter.kernels")


def builtin_names() -> list[str]:
    """Names of the built-in kernels, sorted."""
    return sorted(f.name[: -len(".yaml")] for f in builtin_folder().iterdir() if f.name.endswith(".yaml"))


def load_kernel(ref: str | Path, params: dict[str, object] | None = None) -> Kernel:
    """Return the kernel named ``ref`` (a built-in), or read from the ``.yaml``/``.npy`` file ``ref``.

    ``params`` override the parameters of a generated kernel (``-p sigma=2``).

    >>> load_kernel("edge").weights.tolist()[1]
    [-0.3333333432674408, 2.6666667461395264, -0.3333333432674408]
    """
    text = str(ref)
    path = Path(text)
    if path.suffix.lower() in KERNEL_SUFFIXES or "/" in text:
        return _load_path(path, params)
    if text not in builtin_names():
        users = user_kernels()
        if text in users:
            return _load_path(users[text], params)
        close = difflib.get_close_matches(text, [*builtin_names(), *users], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise KernelError(
            f"unknown kernel {text!r}: {hint}give a built-in name (see 'convfilter list') "
            "or a path to a .yaml or .npy file"
        )
    from .kernel import parse_kernel

    data = read_yaml(builtin_folder().joinpath(f"{text}.yaml").read_bytes(), f"kernel file {text}.yaml")
    return parse_kernel(data, text, f"kernel file {text}.yaml", builtin=True, params=params)


def _load_path(path: Path, params: dict[str, object] | None) -> Kernel:
    from .kernel import kernel_from_array, parse_kernel

    source = f"kernel file {path}"
    if not path.exists():
        raise KernelError(f"{source}: no such file")
    if not path.is_file():
        raise KernelError(f"{source}: not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise KernelError(f"{source}: larger than 1 MiB; a kernel file is small")
    data = path.read_bytes()
    if path.suffix.lower() == ".npy":
        import numpy as np

        if params:
            raise KernelError(f"{source}: an array kernel takes no parameters, got -p {next(iter(params))}")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise KernelError(f"{source}: not a readable .npy array ({error})") from None
        return kernel_from_array(array, path.stem, source)
    return parse_kernel(read_yaml(data, source), path.stem, source, params=params)


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
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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
    found: dict[str, Path] = {}
    for folder in os.environ.get("CONVFILTER_KERNEL_PATH", "").split(":"):
        if not folder or not Path(folder).is_dir():
            continue
        for file in sorted(Path(folder).iterdir()):
            if file.suffix.lower() in KERNEL_SUFFIXES and not file.name.startswith(".") and file.is_file():
                found.setdefault(file.stem, file)
    return found


def kernel_table() -> list[dict]:
    """One row per kernel, built-ins then user kernels: name, summary, weight shape, mix and
    generator parameters, read from the files without computing weights (so without NumPy).
    A user kernel that a built-in hides, or that does not load, says so in its row."""
    rows = []
    builtins = builtin_names()
    for name in builtins:
        data = read_yaml(builtin_folder().joinpath(f"{name}.yaml").read_bytes(), f"kernel file {name}.yaml")
        rows.append({**describe(data, name), "source": "built-in"})
    for name, file in user_kernels().items():
        row = {"name": name, "summary": "", "shape": [], "mix": "", "parameters": {}, "source": f"user: {file}"}
        try:
            row.update(_describe_file(file, name))
        except KernelError as error:
            row["error"] = str(error)
        if name in builtins:
            row["hidden_by"] = "built-in"
        rows.append(row)
    return rows


def _describe_file(file: Path, name: str) -> dict:
    """A user kernel file's row of ``list``: validated as loading would, but without NumPy."""
    if file.stat().st_size > MAX_FILE_BYTES:
        raise KernelError(f"kernel file {file}: larger than 1 MiB; a kernel file is small")
    if file.suffix.lower() == ".npy":
        shape = _npy_shape(file)
        return {"shape": list(shape), "mix": "depthwise" if len(shape) == 2 else "groups from channels"}
    data = read_yaml(file.read_bytes(), f"kernel file {file}")
    check_mapping(data, name, f"kernel file {file}")
    return {key: value for key, value in describe(data, name).items() if key != "name"}


def _npy_shape(file: Path) -> tuple[int, ...]:
    """The shape in a ``.npy`` file's header, read without NumPy."""
    with open(file, "rb") as stream:
        magic = stream.read(8)
        if magic[:6] != b"\x93NUMPY":
            raise KernelError(f"kernel file {file}: not a .npy array")
        size = int.from_bytes(stream.read(2 if magic[6] == 1 else 4), "little")
        try:
            header = ast.literal_eval(stream.read(size).decode("latin-1"))
            return tuple(header["shape"])
        except (ValueError, SyntaxError, KeyError, TypeError):
            raise KernelError(f"kernel file {file}: not a readable .npy header") from None
