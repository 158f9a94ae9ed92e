"""Which file goes where: for one file, several files, a folder and a stream alike, the output of
every input, the format it is written in, and the refusals made before any work — an output over
an input, two inputs onto one output, a missing folder, a format that cannot be written.

``plan_outputs`` is the one place these rules live; the command line only asks it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .options import FORMATS

# extensions that are read and whose format is written under the same name
ALIASES = {"jpe": "jpeg", "jfif": "jpeg", "dib": "bmp"}
# extensions that are only read: their outputs get a writable extension (float formats keep floats)
READ_ONLY = {ext: "png" for ext in ("gif", "jp2", "pbm", "pgm", "ppm", "pnm", "pxm", "sr", "ras", "pic")}
READ_ONLY |= {"exr": "tif", "hdr": "tif"}
# what a folder's files are taken as images by: every extension OpenCV reads
READABLE = frozenset({*FORMATS, *ALIASES, *READ_ONLY})


@dataclass(frozen=True)
class Job:
    """One input and its output: a path, or None for standard input or output; ``format`` is the
    format written (None: the input's own, for an image streamed to standard output)."""

    input: Path | None
    output: Path | None
    format: str | None


@dataclass
class Outputs:
    """The jobs, what was passed over while finding them as (input, output, reason), the inputs
    that failed before any work as (input, output, one-line error) — a folder that cannot be
    read, a named input that is not a regular file — and the folder a batch writes into (None
    for one file)."""

    jobs: list[Job]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    folder: Path | None = None
    failed: list[tuple[str, str, str]] = field(default_factory=list)


def output_format(path: str | Path) -> str:
    """Return the format a path's extension asks for, or raise a ``UsageError``.

    >>> output_format("a/b.JPG"), output_format("x.jpe")
    ('jpeg', 'jpeg')
    """
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS and ext not in ALIASES:
        raise UsageError(
            f"output {path}: unknown extension {'.' + ext if ext else '(none)'}; use one of "
            + ", ".join("." + e for e in FORMATS)
        )
    return FORMATS.get(ext) or ALIASES[ext]


def check_writable_over(output: Path, inputs: Iterable[Path]) -> None:
    """Refuse ``output`` if it is one of ``inputs`` (the same file by any path)."""
    for source in inputs:
        if _same_file(source, output):
            raise UsageError(f"output {output}: is the input; writing over an input is refused")


def plan_outputs(
    inputs: tuple[str, ...],
    output: str | None,
    fmt: str | None = None,
    recursive: bool = False,
    skip_existing: bool = False,
    *,
    stdin_is_terminal: bool = False,
    stdout_is_terminal: bool = False,
) -> Outputs:
    """Decide every output, or refuse in one line before any work.

    ``inputs`` are files, folders or ``-``; ``output`` a file, a folder, ``-`` or None (standard
    output when it is piped); ``fmt`` the ``--format`` option. One input that is not a folder is a
    single job; several, or a folder, a batch into the folder ``output``.
    """
    ext = None
    if fmt is not None:
        ext = fmt.lower().lstrip(".")
        if ext not in FORMATS:
            raise UsageError(f"option --format: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not inputs:
        if stdin_is_terminal:
            raise UsageError("no input: give an image file, or - to read standard input")
        inputs = ("-",)
    if "" in inputs:  # Path("") is the current folder: never filter it by accident
        raise UsageError("input '': an empty name; give a file or a folder (. for the current one)")
    if len(inputs) > 1 or _kind(Path(inputs[0])) == "folder":
        return _batch(inputs, output, ext, recursive, skip_existing)
    return Outputs([_single(inputs[0], output, fmt, ext, stdout_is_terminal)])


def _single(source: str, output: str | None, fmt: str | None, ext: str | None, stdout_is_terminal: bool) -> Job:
    input_path = None if source == "-" else Path(source)
    if output is None:
        if stdout_is_terminal:
            raise UsageError("no output: give -o FILE, or pipe the output to another command")
        output = "-"
    if output == "-":
        if stdout_is_terminal:
            raise UsageError("standard output is a terminal: binary image data is not written there; give -o FILE")
        return Job(input_path, None, FORMATS[ext] if ext else None)
    out_path = Path(output)
    if _kind(out_path) == "folder" or output.endswith(os.sep):
        # into a folder, made if need be as a batch makes it: named as a batch names it
        job = _job(input_path, out_path / ("stdin.png" if input_path is None else input_path.name), ext)
        return _checked(job, new_folder=_kind(out_path) is None)

    out_format = output_format(out_path)
    if ext and FORMATS[ext] != out_format:
        raise UsageError(f"option --format {fmt}: the output {out_path} already asks for {out_format}")
    return _checked(Job(input_path, out_path, out_format))


def make_folder(folder: Path) -> None:
    """Make the output folder ``folder`` and its parents; one line (a ``UsageError``) if it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a broken link, a file on the way, no permission, a read-only file system
        raise UsageError(f"output {folder}: cannot make the folder ({error.strerror})") from None


def _checked(job: Job, new_folder: bool = False) -> Job:
    if not new_folder and _kind(job.output.parent) != "folder":
        raise UsageError(f"output {job.output}: the folder {job.output.parent} does not exist")
    if job.input is not None and _kind(job.input) is not None:  # one that cannot be reached fails on reading
        check_writable_over(job.output, [job.input])
    return job


def _batch(inputs: tuple[str, ...], output: str | None, ext: str | None, recursive: bool, skip_existing: bool):
    if "-" in inputs:
        raise UsageError("standard input (-) cannot be one of several inputs")
    if output is None or output == "-":
        raise UsageError("several inputs, or a folder, need -o FOLDER for the outputs")
    folder = Path(output)
    names_a_file, folder_kind = folder.suffix.lower().lstrip(".") in FORMATS, _kind(folder)
    if folder_kind not in ("folder", None) or (folder_kind is None and names_a_file):
        raise UsageError(f"several inputs, or a folder, need -o FOLDER; {folder} names a file")
    jobs, skipped, failed = [], [], []
    for item in inputs:
        path = Path(item)
        kind = _kind(path)
        if kind == "folder":
            for file, status, reason in _walk(path, recursive, Path(os.path.realpath(folder))):
                if status != "file":
                    (failed if status == "failed" else skipped).append((str(file), "", reason))
                elif file.suffix.lower().lstrip(".") not in READABLE:
                    skipped.append((str(file), "", "not an image file (by its extension)"))
                else:
                    jobs.append(_job(file, folder / file.relative_to(path), ext))
        elif kind in ("file", None):  # a missing or unreachable file fails on its own, the rest go on
            jobs.append(_job(path, folder / path.name, ext))
        else:  # never opened: reading a FIFO or a device could wait forever
            failed.append((item, "", f"input {item}: not a regular file ({kind}); give an image file or a folder"))
    _check_collisions(jobs)
    if skip_existing:
        existing = {job for job in jobs if os.path.exists(job.output)}
        skipped += [(str(job.input), str(job.output), "output exists") for job in jobs if job in existing]
        jobs = [job for job in jobs if job not in existing]
    return Outputs(jobs, skipped, folder, failed)


def _job(source: Path | None, target: Path, ext: str | None) -> Job:
    """The job for one file of a batch: ``--format``'s extension, else the input's own where it
    can be written, else a writable one (a GIF's output is a PNG)."""
    if ext is not None:
        return Job(source, target.with_suffix("." + ext), FORMATS[ext])
    own = target.suffix.lower().lstrip(".")
    if own in FORMATS or own in ALIASES:
        return Job(source, target, output_format(target))
    replacement = READ_ONLY.get(own, "png")
    return Job(source, target.with_suffix("." + replacement), FORMATS[replacement])


def _walk(folder: Path, recursive: bool, exclude: Path) -> Iterator[tuple[Path, str, str | None]]:
    """What is under ``folder``, in name order, hidden entries and ``exclude``'s subtree left out:
    ``(path, "file", None)`` for a regular file, ``(path, "skipped", why)`` for an entry that is
    not one, and ``(folder, "failed", why)`` for a folder that cannot be listed (the rest of the
    tree is still walked). With ``recursive``, sub-folders are walked too, each once: a link to a
    folder inside the tree (walked under its own name) or to one holding the tree (a loop) is not
    followed."""
    root = Path(os.path.realpath(folder))
    seen = {root}
    listings = []  # a stack of the folders being walked, not recursion: a tree may be deeper than Python's stack
    try:
        listings.append(_listing(folder))
    except OSError as error:
        yield folder, "failed", f"input {folder}: cannot read the folder ({error.strerror or error})"
    while listings:
        entry = next(listings[-1], None)
        if entry is None:
            listings.pop()
            continue
        path = Path(entry.path)
        if _is_dir(entry):
            real = Path(os.path.realpath(path))
            linked = entry.is_symlink() and (real.is_relative_to(root) or root.is_relative_to(real))
            if not recursive or real in seen or real == exclude or linked:
                continue
            seen.add(real)
            try:
                listings.append(_listing(path))
            except OSError as error:
                yield path, "failed", f"input {path}: cannot read the folder ({error.strerror or error})"
        elif _is_file(entry):
            yield path, "file", None
        else:
            yield path, "skipped", _not_regular_reason(path)


def _listing(folder: Path) -> Iterator[os.DirEntry]:
    """The entries of ``folder`` but hidden ones, in name order; an ``OSError`` if it cannot be read."""
    with os.scandir(folder) as entries:
        return iter(sorted((entry for entry in entries if not entry.name.startswith(".")), key=lambda e: e.name))


def _check_collisions(jobs: list[Job]) -> None:
    seen: dict[Path, Path] = {}
    # an input is known by its identity (device, inode): a hard link or another path to it too
    inputs = {_identity(job.input) for job in jobs} - {None}
    for job in jobs:
        target = job.output.resolve()
        if target in seen:
            raise UsageError(
                f"inputs {seen[target]} and {job.input} would both write {job.output}; "
                "rename one, or choose another --format"
            )
        seen[target] = job.input
        if _identity(job.output) in inputs:
            raise UsageError(f"output {job.output}: is an input; writing over an input is refused")


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # not even its type can be known: let reading it fail on its own
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a link that cannot be followed: passed over, with the reason
        return False


def _kind(path: Path) -> str | None:
    """``folder``, ``file``, None when it cannot be known (missing, no permission: reading it
    will say), or what else it is (``a FIFO``, ``a socket``, ``a device``)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    return _mode_name(mode)


def _mode_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _not_regular_reason(path: Path) -> str:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a link to nothing"
    except OSError as error:  # a loop of links, no permission
        return f"cannot be followed ({error.strerror})"
    return f"not a regular file ({_mode_name(mode)})"


def not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file or a folder (``a FIFO``,
    ``a socket``, ``a device``), found without opening it; None otherwise."""
    kind = _kind(path)
    return None if kind in ("file", "folder", None) else kind


def file_state(path: Path | None) -> tuple[int, int, int, int] | None:
    """The identity of the file at ``path`` — device, inode, modification time (ns) and size —
    or None when there is none. An atomic write renames a new inode into place, so a changed
    state means a new file, whatever the clocks say."""
    try:
        status = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
