"""Many inputs to many outputs: planning the names, running the files on worker processes,
and the record of each file.

``process`` is the work for one file: a plain function of (job, kernel, options) that returns a
``FileResult`` and raises nothing a worker would lose, so that any executor can run it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .errors import ConvFilterError, UsageError
from .kernel import Kernel
from .options import FORMATS
from .pipeline import Options, filter_file

# what OpenCV (and so convfilter) reads, by extension, lower case
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif", ".npy", ".jp2", ".pbm", ".pgm"}
    | {".ppm", ".pnm", ".pxm", ".sr", ".ras", ".exr", ".hdr", ".pic"}
)


@dataclass(frozen=True)
class Job:
    """One file to filter, and where its output goes."""

    input: Path
    output: Path


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: ``written``, ``failed`` (with the one-line reason) or ``skipped``."""

    input: str
    output: str
    status: str
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict:
        """The record as printed by ``--json``."""
        return asdict(self)


@dataclass
class Plan:
    """The jobs of a batch, and what was passed over while finding them."""

    jobs: list[Job]
    skipped: list[FileResult]  # outputs that exist (--skip-existing) and files that are not images


def _walk(folder: Path, recursive: bool, exclude: Path) -> Iterator[Path]:
    """Files under ``folder`` (sorted, hidden ones and ``exclude``'s subtree left out)."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if recursive and entry.resolve() != exclude:
                yield from _walk(entry, recursive, exclude)
        elif entry.is_file():
            yield entry


def plan(inputs: Iterable[str], outdir: Path, recursive: bool = False, fmt: str | None = None,
         skip_existing: bool = False) -> Plan:  # fmt: skip
    """Find the images among ``inputs`` (files and folders), name their outputs under ``outdir``
    (the relative path kept, the extension changed to ``fmt`` if given) and check, before any
    work, that no two outputs collide, no output is an input, and every output format can be written."""
    outdir_resolved = outdir.resolve()
    jobs, skipped = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for file in _walk(path, recursive, outdir_resolved):
                relative = file.relative_to(path)
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append(FileResult(str(file), "", "skipped", error="not an image file (by its extension)"))
                    continue
                jobs.append(Job(file, outdir / relative))
        elif path.is_file() or not path.exists():
            jobs.append(Job(path, outdir / path.name))  # a missing file fails on its own, the rest go on
        else:
            raise UsageError(f"input {item}: neither a file nor a folder")
    if fmt is not None:
        jobs = [Job(job.input, job.output.with_suffix("." + fmt)) for job in jobs]
    _check(jobs)
    if skip_existing:
        kept = []
        for job in jobs:
            if job.output.exists():
                skipped.append(FileResult(str(job.input), str(job.output), "skipped", error="output exists"))
            else:
                kept.append(job)
        jobs = kept
    return Plan(jobs, skipped)


def _check(jobs: list[Job]) -> None:
    seen: dict[Path, Path] = {}
    inputs = {job.input.resolve() for job in jobs if job.input.exists()}
    for job in jobs:
        target = job.output.resolve()
        if target in seen:
            raise UsageError(
                f"inputs {seen[target]} and {job.input} would both write {job.output}; "
                "rename one, or choose another --format"
            )
        seen[target] = job.input
        if target in inputs:
            raise UsageError(f"output {job.output}: is an input; writing over an input is refused")
        suffix = job.output.suffix.lower().lstrip(".")
        if suffix not in FORMATS:
            raise UsageError(
                f"output {job.output}: .{suffix} cannot be written; choose a format with --format "
                f"({', '.join(FORMATS)})"
            )


def process(job: Job, kernel: Kernel, options: Options) -> FileResult:
    """Filter one file into its output, creating the output's folder; never raises for a bad
    file: the failure is in the record."""
    start = time.perf_counter()
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        fmt = FORMATS[job.output.suffix.lower().lstrip(".")]
        filter_file(job.input, job.output, kernel, replace(options, format=fmt))
    except ConvFilterError as error:
        return FileResult(str(job.input), str(job.output), "failed", time.perf_counter() - start, str(error))
    except OSError as error:
        reason = f"{job.output.parent}: {error.strerror}"
        return FileResult(str(job.input), str(job.output), "failed", time.perf_counter() - start, reason)
    except Exception as error:  # a bug: report it on the file rather than lose the batch
        reason = f"unexpected {type(error).__name__}: {error}"
        return FileResult(str(job.input), str(job.output), "failed", time.perf_counter() - start, reason)
    return FileResult(str(job.input), str(job.output), "written", time.perf_counter() - start)


_worker: dict = {}


def _start_worker(kernel: Kernel, options: Options) -> None:
    """In each worker process: keep the resolved kernel, and convolve on one thread, since the
    processes already use every core."""
    from .engine import core

    _worker["kernel"], _worker["options"] = kernel, options
    core.DEFAULT_THREADS = 1


def _process_in_worker(job: Job) -> FileResult:
    return process(job, _worker["kernel"], _worker["options"])


def run(jobs: list[Job], kernel: Kernel, options: Options, workers: int,
        on_result: Callable[[FileResult], bool]) -> None:  # fmt: skip
    """Run ``jobs`` on ``workers`` processes (in this one for 1), calling ``on_result`` in this
    process as each finishes; it returns False to stop (``--fail-fast``). At most two jobs per
    worker are in flight, so memory does not grow with the number of files."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            if not on_result(process(job, kernel, options)):
                return
        return
    pending = iter(jobs)
    running: set[Future] = set()
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(kernel, options)) as pool:
        try:
            while True:
                for job in pending:
                    running.add(pool.submit(_process_in_worker, job))
                    if len(running) >= 2 * workers:
                        break
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if not on_result(future.result()):
                        for other in running:
                            other.cancel()
                        return
        except BaseException:
            for other in running:
                other.cancel()
            raise


def default_workers() -> int:
    """All cores."""
    return os.cpu_count() or 1
