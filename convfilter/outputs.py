"""Which file goes where: for one file, several files, a folder and a stream alike, the output of
every input, the format it is written in, and the refusals made before any work — an output over
an input, two inputs onto one output, a missing folder, a format that cannot be written.

``plan_outputs`` is the one place these rules live; the command line only asks it.
"""

from __future__ import annotations

import os
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
    """The jobs, what was passed over while finding them as (input, output, reason), and the
    folder a batch writes into (None for one file)."""

    jobs: list[Job]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    folder: Path | None = None


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
    if len(inputs) > 1 or Path(inputs[0]).is_dir():
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
    if out_path.is_dir() or output.endswith(os.sep):
        # into a folder: named as a batch names it (--format's extension, or a writable one)
        return _checked(_job(input_path, out_path / ("stdin.png" if input_path is None else input_path.name), ext))
    out_format = output_format(out_path)
    if ext and FORMATS[ext] != out_format:
        raise UsageError(f"option --format {fmt}: the output {out_path} already asks for {out_format}")
    return _checked(Job(input_path, out_path, out_format))


def _checked(job: Job) -> Job:
    if not job.output.parent.is_dir():
        raise UsageError(f"output {job.output}: the folder {job.output.parent} does not exist")
    if job.input is not None and job.input.exists():
        check_writable_over(job.output, [job.input])
    return job


def _batch(inputs: tuple[str, ...], output: str | None, ext: str | None, recursive: bool, skip_existing: bool):
    if "-" in inputs:
        raise UsageError("standard input (-) cannot be one of several inputs")
    if output is None or output == "-":
        raise UsageError("several inputs, or a folder, need -o FOLDER for the outputs")
    folder = Path(output)
    names_a_file = folder.suffix.lower().lstrip(".") in FORMATS
    if (folder.exists() and not folder.is_dir()) or (not folder.exists() and names_a_file):
        raise UsageError(f"several inputs, or a folder, need -o FOLDER; {folder} names a file")
    jobs, skipped = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for file in _walk(path, recursive, folder.resolve()):
                if file.suffix.lower().lstrip(".") not in READABLE:
                    skipped.append((str(file), "", "not an image file (by its extension)"))
                    continue
                jobs.append(_job(file, folder / file.relative_to(path), ext))
        elif path.is_file() or not path.exists():
            jobs.append(_job(path, folder / path.name, ext))  # a missing file fails on its own, the rest go on
        else:
            raise UsageError(f"input {item}: neither a file nor a folder")
    _check_collisions(jobs)
    if skip_existing:
        skipped += [(str(job.input), str(job.output), "output exists") for job in jobs if job.output.exists()]
        jobs = [job for job in jobs if not job.output.exists()]
    return Outputs(jobs, skipped, folder)


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


def _walk(folder: Path, recursive: bool, exclude: Path, seen: set | None = None) -> Iterator[Path]:
    """Files under ``folder`` (sorted, hidden ones and ``exclude``'s subtree left out); a folder
    reached again through a link (a loop) is not descended into twice."""
    seen = {folder.resolve()} if seen is None else seen
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            real = entry.resolve()
            if recursive and real != exclude and real not in seen:
                seen.add(real)
                yield from _walk(entry, recursive, exclude, seen)
        elif entry.is_file():
            yield entry


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
