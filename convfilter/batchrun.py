"""The command line's side of a batch (several inputs, or a folder, into a folder): workers or a
Dask cluster, one line per failure, notes, the progress bar, the ``--json`` records and the
summary ``N written, M failed, K skipped in T s``, which counts exactly the outputs on disk
however the batch ends. Click only, as ``cli.py``; the work is ``batch``'s and ``cluster``'s.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time

import click

from .outputs import make_folder


def run_batch(planned, kernel, options, jobs, fail_fast, cluster, as_json, quiet) -> int:
    """Run the batch ``planned`` (from ``outputs.plan_outputs``) on ``jobs`` workers or on the
    Dask ``cluster``; return the exit status: 1 if any file failed, else 0."""
    from .batch import worker_limit

    connection, requested = None, jobs or 0
    if cluster:
        from . import cluster as dask_cluster

        requested = dask_cluster.local_workers(cluster) or 0
    if requested > worker_limit() and not quiet:
        click.echo(f"convfilter: note: {requested} workers lowered to {worker_limit()} (4 per core)", err=True)
    if cluster:  # connected before any folder is made; a local cluster starts no more workers than files
        connection = dask_cluster.connect(cluster, min(worker_limit(), max(1, len(planned.jobs))))
    try:
        return _run_batch(planned, kernel, options, jobs, connection, fail_fast, as_json, quiet)
    finally:
        if connection is not None:
            dask_cluster.close(connection)


def _run_batch(planned, kernel, options, jobs, connection, fail_fast, as_json, quiet) -> int:
    from . import batch
    from .pipeline import Result

    make_folder(planned.folder)
    if connection is not None:
        from . import cluster as dask_cluster

        dask_cluster.check_writable(planned.folder)
    counts = {"written": 0, "failed": 0, "skipped": 0}
    start = time.perf_counter()
    show_bar = not as_json and not quiet and _is_terminal(sys.stderr) and planned.jobs
    progress = (
        click.progressbar(
            length=len(planned.jobs),
            label="filtering",
            file=sys.stderr,
            show_pos=True,
            show_eta=True,
            item_show_func=lambda _: _rate(counts, start),
        )
        if show_bar
        else contextlib.nullcontext()
    )
    bar = None

    def record(result: Result) -> bool:
        counts[result.status] += 1
        if as_json:
            click.echo(json.dumps(result.to_json()))
        if result.status == "failed":
            reason = result.error if result.input in (result.error or "") else f"{result.input}: {result.error}"
            click.echo(f"convfilter: error: {' '.join(reason.split())}", err=True)
        if bar is not None and result.status != "skipped":
            bar.update(1, result)
        return not (fail_fast and result.status == "failed")

    def note(text: str) -> None:
        if not quiet:
            click.echo(f"convfilter: note: {' '.join(text.split())}", err=True)

    for source, target, reason in planned.skipped:
        record(Result(source, target, "skipped", error=reason))
    go_on = all([record(Result(source, target, "failed", error=reason)) for source, target, reason in planned.failed])
    try:
        with progress as bar:
            if not go_on:
                pass  # --fail-fast, and a named input or a folder already failed
            elif connection is not None:
                dask_cluster.run_on_cluster(planned.jobs, kernel, options, connection, record)
            else:
                workers = batch.worker_count(jobs, len(planned.jobs))
                batch.run(planned.jobs, kernel, options, workers, record, note)
    finally:
        if not quiet or counts["failed"]:
            summary = f"{counts['written']} written, {counts['failed']} failed, {counts['skipped']} skipped"
            click.echo(f"{summary} in {time.perf_counter() - start:.1f} s", err=True)
    return 1 if counts["failed"] else 0


def _is_terminal(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


def _rate(counts: dict, start: float) -> str:
    done = counts["written"] + counts["failed"]
    return f"{done / max(time.perf_counter() - start, 1e-9):.1f} files/s"
