"""A batch on a Dask distributed cluster: the same per-file function as the local batch, run on
workers that reach the same files (a shared file system).

A worker that dies mid-file is replaced and its files run again elsewhere: Dask reschedules
them, and a file that kills worker after worker is reported failed. Writes are atomic, so no
output is ever half-written; and a file that a dead worker had already finished is found written
(its output is no longer the file it was before the batch: a new inode was renamed in) and not
written again. Stopping (``--fail-fast``) cancels what has not started; what is running finishes
and is counted.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from . import interrupts
from .batch import WORKER_DIED, failed, process, remove_temporaries, written_meanwhile
from .errors import UsageError
from .kernel import Kernel
from .outputs import Job, file_state
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
    at most ``max_workers``), with the cluster it started (or None); ``close`` both when done.
    An address that is not one, or a scheduler that cannot be reached within ``CONNECT_TIMEOUT``
    seconds, is a ``UsageError``."""
    require_dask()
    from distributed import Client, LocalCluster

    count = local_workers(address)
    if count is not None:
        cluster = None
        try:
            # the cluster's processes inherit a mask that holds back the terminal's Ctrl-C and
            # hang-up: this process alone handles them, and stops the batch before closing them
            with interrupts.deferred(), _held_from_children(SIGNALS_HELD):
                cluster = LocalCluster(
                    n_workers=min(count, max_workers or count),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=50,
                )
                client = Client(cluster)
        except BaseException:  # a signal that came while the cluster started: close it, go on
            if cluster is not None:
                with interrupts.deferred():
                    cluster.close()
            raise
        return client, cluster
    _check_reachable(address)
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT}s"), None
    except (OSError, TimeoutError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UsageError(f"option --cluster: cannot reach a Dask scheduler at {address} ({reason})") from None
    except Exception as error:  # something else listens there, a TLS address without certificates, …
        raise UsageError(
            f"option --cluster: no Dask scheduler answered at {address} ({type(error).__name__})"
        ) from None


CONNECT_TIMEOUT = 10  # seconds to reach a scheduler
SIGNALS_HELD = tuple(getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _held_from_children(signals: tuple[int, ...]) -> Iterator[None]:
    """Block ``signals`` in this thread (and in the threads and processes started meanwhile,
    which keep them blocked); on leaving, a signal that came meanwhile is delivered here."""
    from multiprocessing import resource_tracker

    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    except (AttributeError, ValueError, OSError):  # no signal masks here
        yield
        return
    # multiprocessing's resource tracker, started by the first process spawned, unblocks SIGINT
    # in the thread that starts it: start it now (holding SIGHUP back from it too), block again
    resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _check_reachable(address: str) -> None:
    """Refuse an address Dask cannot use, and one where nothing listens, at once: Dask itself
    would retry a refused connection until its timeout."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    hint = "give tcp://HOST:PORT (or tls://, ws://, wss://) for a scheduler, or local:N"
    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        host, port = parse_host_port(location, 8786)
    except (ValueError, TypeError, ImportError) as error:
        reason = " ".join(str(error).split())
        raise UsageError(f"option --cluster: {address!r} is not a scheduler's address ({reason}); {hint}") from None
    if scheme not in ("tcp", "tls", "ws", "wss"):
        return
    if not host:
        raise UsageError(f"option --cluster: {address!r} names no host; {hint}")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise UsageError(f"option --cluster: cannot reach a Dask scheduler at {address} ({reason})") from None


def process_once(job: Job, before, kernel: Kernel, options: Options, stop: str | None = None) -> Result | None:
    """``process``, except that an output that is no longer the file it was before the batch
    (``before``, from ``outputs.file_state``) was written by a worker that died before reporting
    it, and is not written again; None, without any work, once the Dask event ``stop`` is set."""
    if stop is not None:
        from distributed import Event

        if Event(stop).is_set():
            return None
    return written_meanwhile(job, before) or process(job, kernel, options)


def check_writable(outdir: Path) -> None:
    """The output folder must take files (every worker writes there)."""
    probe = outdir / f".convfilter-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"output {outdir}: cannot write there ({error.strerror})") from None


def close(connection) -> None:
    """Close a client and the local cluster it started, if any (a signal meanwhile is raised
    once they are closed)."""
    client, cluster = connection
    with interrupts.deferred():
        client.close()
        if cluster is not None:
            cluster.close()


def run_on_cluster(
    jobs: list[Job], kernel: Kernel, options: Options, connection, on_result: Callable[[Result], bool]
) -> None:
    """Run ``jobs`` on the cluster of ``connection`` (from ``connect``), calling ``on_result`` here
    as each finishes; it returns False to stop, as ``--fail-fast`` does. Stopping, or a signal,
    cancels what has not started; what is running finishes and is recorded, so that every output
    on disk is counted."""
    from distributed import Event

    client, _ = connection
    with interrupts.deferred():  # a signal is raised where the batch can be stopped (see interrupts)
        before = [file_state(job.output) for job in jobs]
        stop = Event(f"convfilter-stop-{uuid.uuid4().hex}", client=client)
        shared = client.scatter(kernel, broadcast=True)
        options = replace(options, threads=1)  # one convolution thread per worker: the workers share the cores
        futures = client.map(
            process_once, jobs, before, kernel=shared, options=options, stop=stop.name, pure=False, retries=2
        )
        run = _ClusterRun(client, stop, futures, jobs, on_result)
        try:
            while len(run.reported) < len(jobs):
                future = run.next_done()
                if future is not None and not run.record(future):
                    break
                interrupts.check()
        finally:  # done, stopped, or a signal (or a lost scheduler)
            with contextlib.suppress(Exception):
                run.stop()
                stop.clear()
            for i, job in enumerate(jobs):  # what reached the disk and was not reported
                if i not in run.reported:
                    _record(on_result, written_meanwhile(job, before[i]))


class _ClusterRun:
    """The futures of one batch on a cluster, and which of them were recorded."""

    def __init__(self, client, stop, futures, jobs: list[Job], on_result) -> None:
        self.client, self.stop_event, self.futures, self.jobs = client, stop, futures, jobs
        self.on_result = on_result
        self.index = {future.key: i for i, future in enumerate(futures)}
        self.reported: set[int] = set()
        self.done: queue.Queue = queue.Queue()
        for future in futures:
            future.add_done_callback(self.done.put)

    def next_done(self):
        """A finished future, or None after ``interrupts.POLL`` seconds without one."""
        try:
            return self.done.get(timeout=interrupts.POLL)
        except queue.Empty:
            return None

    def record(self, future) -> bool:
        """Record a finished future (once), whole even if a signal comes meanwhile; False to stop."""
        i = self.index[future.key]
        if i in self.reported:
            return True
        with interrupts.deferred():
            self.reported.add(i)
            result = _outcome(future, self.jobs[i])
            return result is None or self.on_result(result)

    def stop(self) -> None:
        """Stop what is left: a job that starts from now on does nothing (the event is set before
        the running jobs are listed, so none is missed), the finished ones are recorded, the
        others cancelled, and the running ones finish and are recorded."""
        from distributed import as_completed

        left = [future for future in self.futures if self.index[future.key] not in self.reported]
        if not left:
            return
        self.stop_event.set()
        running = {key for keys in self.client.processing().values() for key in keys}
        for future in left:  # finished, and not taken from the queue yet
            if future.done():
                self.record(future)
        self.client.cancel([future for future in left if not future.done() and future.key not in running])
        for future in as_completed([future for future in left if future.key in running]):
            self.record(future)


def _outcome(future, job: Job) -> Result | None:
    """A finished future's record: its result, or the failure that ended it (a file that killed
    worker after worker, or a bug); None for one cancelled."""
    from distributed import KilledWorker

    if future.cancelled():
        return None
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, KilledWorker):
        remove_temporaries(job.output)  # a worker killed while writing leaves its temporary file
        return failed(job, f"input {job.input}: {WORKER_DIED}")
    return failed(job, f"unexpected {type(error).__name__}: {error}")


def _record(on_result: Callable[[Result], bool], result: Result | None) -> None:
    if result is not None:
        on_result(result)
