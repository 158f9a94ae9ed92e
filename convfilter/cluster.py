"""A batch on a Dask distributed cluster: the same per-file function as the local batch, run on
workers that reach the same files (a shared file system).

A worker that dies mid-file is replaced and its files run again elsewhere: Dask reschedules
them. Writes are atomic, so no output is ever half-written; and a file that a dead worker had
already finished is found written (its output is newer than the batch's start) and not written
again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .batch import process
from .errors import UsageError
from .kernel import Kernel
from .outputs import Job
from .pipeline import Options, Result

INSTALL_HINT = 'pip install "convfilter[dask]"'


def require_dask() -> None:
    """Raise a ``UsageError`` saying how to install Dask distributed when it is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"--cluster needs Dask distributed, which is not installed: {INSTALL_HINT}") from None


def local_workers(address: str) -> int | None:
    """N of ``local:N`` (a ``UsageError`` if it is not a number ≥ 1); None for a scheduler's address."""
    if not address.startswith("local:"):
        return None
    count = address.partition(":")[2]
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"option --cluster: 'local:N' needs a number of workers N ≥ 1, got {address!r}")
    return int(count)


def connect(address: str, max_workers: int | None = None):
    """A Dask client for ``tcp://host:port``, or for a new local cluster of N workers (``local:N``,
    at most ``max_workers``), with the cluster it started (or None); ``close`` both when done."""
    require_dask()
    from distributed import Client, LocalCluster

    count = local_workers(address)
    if count is not None:
        cluster = LocalCluster(
            n_workers=min(count, max_workers or count),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=50,
        )
        return Client(cluster), cluster
    try:
        return Client(address, timeout="10s"), None
    except (OSError, TimeoutError) as error:
        raise UsageError(f"option --cluster: cannot reach a Dask scheduler at {address} ({error})") from None


def process_once(job: Job, kernel: Kernel, options: Options, started: float) -> Result:
    """``process``, except that an output already written since ``started`` (by a worker that
    died before reporting it) is not written again."""
    try:
        if job.output.stat().st_mtime >= started:
            return Result(str(job.input), str(job.output), "written")
    except OSError:
        pass
    return process(job, kernel, options)


def check_writable(outdir: Path) -> None:
    """The output folder must take files (every worker writes there)."""
    probe = outdir / f".convfilter-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"output {outdir}: cannot write there ({error.strerror})") from None


def close(connection) -> None:
    """Close a client and the local cluster it started, if any."""
    client, cluster = connection
    client.close()
    if cluster is not None:
        cluster.close()


def run_on_cluster(
    jobs: list[Job], kernel: Kernel, options: Options, connection, on_result: Callable[[Result], bool]
) -> None:
    """Run ``jobs`` on the cluster of ``connection`` (from ``connect``), calling ``on_result`` here
    as each finishes (it returns False to stop, as ``--fail-fast`` does)."""
    from distributed import as_completed

    client, _ = connection
    started = time.time() - 1  # file times may be coarser than the clock
    shared = client.scatter(kernel, broadcast=True)
    options = replace(options, threads=1)  # one convolution thread per worker: the workers share the cores
    futures = client.map(process_once, jobs, kernel=shared, options=options, started=started, pure=False, retries=2)
    for future in as_completed(futures):
        if not on_result(future.result()):
            client.cancel(futures)
            return
