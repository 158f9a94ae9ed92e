"""Many inputs to many outputs (named by ``outputs.plan_outputs``): running the files on
worker processes, and the record of each file.

``process`` is the work for one file: a plain function of (job, kernel, options) that returns a
``Result`` and raises nothing a worker would lose, so that any executor can run it.

A batch survives its workers: a worker that dies (killed, or out of memory) breaks the process
pool; the pool is replaced and the files lost with it run again — those that were being filtered
one at a time, so that a file that kills its worker even alone is found, reported failed, and
the batch goes on. Stopping (``--fail-fast``, a signal) cancels what has not started and ends
the files being filtered; every output that reached the disk is counted.
"""

from __future__ import annotations

import contextlib
import glob
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from . import interrupts
from .errors import ConvFilterError, ImageError
from .kernel import Kernel
from .outputs import Job, file_state, not_regular
from .pipeline import Options, Result, filter_file

# the one line of a file whose worker process died while filtering it, even when it ran alone
WORKER_DIED = "the worker process died while filtering it (killed, or out of memory?)"
# breaks of the pool while no file was being filtered (a worker killed while idle) tolerated in a row
IDLE_BREAKS = 3


def process(job: Job, kernel: Kernel, options: Options) -> Result:
    """Filter one file into its output, creating the output's folder; never raises for a bad
    file: the failure is in the record."""
    start = time.perf_counter()
    try:
        kind = not_regular(job.input)
        if kind is not None:  # never opened: reading a FIFO could wait forever
            raise ImageError(f"input {job.input}: not a regular file ({kind}); give an image file")
        job.output.parent.mkdir(parents=True, exist_ok=True)
        result = filter_file(job.input, job.output, kernel, replace(options, format=job.format))
    except ConvFilterError as error:
        return failed(job, str(error), time.perf_counter() - start)
    except OSError as error:
        return failed(job, f"{job.output.parent}: {error.strerror}", time.perf_counter() - start)
    except Exception as error:  # a bug: report it on the file rather than lose the batch
        return failed(job, f"unexpected {type(error).__name__}: {error}", time.perf_counter() - start)
    return replace(result, seconds=time.perf_counter() - start, layer=None)


def failed(job: Job, reason: str, seconds: float = 0.0) -> Result:
    """The record of ``job`` failed for ``reason`` (one line)."""
    return Result(str(job.input), str(job.output), "failed", seconds, reason)


def written_meanwhile(job: Job, before) -> Result | None:
    """The record of ``job`` as written when its output is no longer the file it was
    (``before``, from ``outputs.file_state``): a run that was stopped or lost had finished it."""
    now = file_state(job.output)
    if now is not None and now != before:
        return Result(str(job.input), str(job.output), "written")
    return None


_worker: dict = {}


def _start_worker(kernel: Kernel, options: Options, started, stopping, parent: int) -> None:
    """In each worker process: keep the resolved kernel, and convolve on one thread, since the
    processes already use every core; handle signals as a worker does (``interrupts``)."""
    interrupts.in_worker(parent)
    _worker.update(kernel=kernel, options=replace(options, threads=1), started=started, stopping=stopping)


def _process_in_worker(index: int, job: Job) -> Result | None:
    """``process`` for job number ``index``; None, without any work, once the batch is stopping."""
    if _worker["stopping"].value:
        return None
    try:
        with interrupts.working():
            _worker["started"][index] = os.getpid()  # so that the batch knows who was filtering what
            return process(job, _worker["kernel"], _worker["options"])
    except interrupts.Interrupted as stop:  # the temporary output is gone: end as the signal asks
        _worker["started"][index] = -os.getpid()  # a signal ended it, not the file
        os._exit(stop.exit_code)


def run(jobs: list[Job], kernel: Kernel, options: Options, workers: int, on_result: Callable[[Result], bool],
        on_note: Callable[[str], None] | None = None) -> None:  # fmt: skip
    """Run ``jobs`` on ``workers`` processes (in this one for 1), calling ``on_result`` in this
    process as each finishes; it returns False to stop (``--fail-fast``). At most two jobs per
    worker are in flight, so memory does not grow with the number of files. ``on_note`` hears
    of a worker that died and the files run again."""
    if workers <= 1 or len(jobs) <= 1:
        _run_here(jobs, kernel, options, on_result)
        return
    with interrupts.deferred():  # a signal is raised where the pool can be stopped (see interrupts)
        _PoolRun(jobs, kernel, options, on_result, on_note or (lambda note: None)).run(workers)


def _run_here(jobs: list[Job], kernel: Kernel, options: Options, on_result: Callable[[Result], bool]) -> None:
    for job in jobs:
        before = file_state(job.output)
        try:
            result = process(job, kernel, options)
        except BaseException:  # a signal: count the output if it was renamed into place already
            meanwhile = written_meanwhile(job, before)
            if meanwhile is not None:
                on_result(meanwhile)
            else:  # a signal at any step of the write, even before its temporary file was known
                remove_temporaries(job.output)
            raise
        with interrupts.deferred():
            if not on_result(result):
                return


class _PoolRun:
    """One batch on a process pool, replaced when a worker dies (see the module's docstring)."""

    def __init__(self, jobs, kernel, options, on_result, on_note) -> None:
        self.jobs, self.kernel, self.options = jobs, kernel, options
        self.on_result, self.on_note = on_result, on_note
        # shared with the workers: who started each job (its pid; negated when a signal ended the
        # worker; 0 for none), and whether to stop
        self.started = multiprocessing.RawArray("i", len(jobs))
        self.stopping = multiprocessing.RawValue("b", 0)
        self.before: dict[int, object] = {}  # each output's state when its job was submitted
        self.stopped = False

    def run(self, workers: int) -> None:
        """Run every job on ``workers`` processes; after a break, the files that were being
        filtered run again one at a time, and one that breaks the pool alone is a failure."""
        pending, alone, idle_breaks = deque(range(len(self.jobs))), deque(), 0
        while (pending or alone) and not self.stopped:
            index = alone.popleft() if alone else None
            lost = self._pass(pending if index is None else deque([index]), workers if index is None else 1)
            if lost is None:
                idle_breaks = 0
                continue
            running, queued = lost
            if index is None:
                pending.extendleft(reversed(queued))
                alone.extend(running)
                if running:
                    self.on_note(_died_note([self.jobs[i].input for i in running]))
            elif running:  # it broke the pool on its own
                self._record(failed(self.jobs[index], f"input {self.jobs[index].input}: {WORKER_DIED}"))
            else:
                alone.appendleft(index)
            idle_breaks = 0 if running else idle_breaks + 1
            if idle_breaks >= IDLE_BREAKS:
                raise ImageError("the worker processes keep dying (killed, or out of memory?); the batch stops")

    def _pass(self, order: deque, workers: int) -> tuple[list[int], list[int]] | None:
        """Run the jobs of ``order`` (taking them from it) on a new pool of ``workers``; None when
        they are done or the batch stops, else the jobs lost when the pool broke: (those being
        filtered, those not started)."""
        pool = ProcessPoolExecutor(
            workers, initializer=_start_worker,
            initargs=(self.kernel, self.options, self.started, self.stopping, os.getpid()),
        )  # fmt: skip
        futures: dict[Future, int] = {}
        try:
            while True:
                while order and len(futures) < 2 * workers:
                    index = order.popleft()
                    self.started[index] = 0
                    self.before[index] = file_state(self.jobs[index].output)
                    try:
                        futures[pool.submit(_process_in_worker, index, self.jobs[index])] = index
                    except BrokenProcessPool:
                        order.appendleft(index)
                        return self._broken(pool, futures)
                if not futures:
                    return None
                done, _ = wait(futures, timeout=interrupts.POLL, return_when=FIRST_COMPLETED)
                interrupts.check()
                for future in sorted(done, key=futures.get):
                    if isinstance(future.exception(), BrokenProcessPool):
                        return self._broken(pool, futures)
                    if not self._record(self._outcome(future, futures.pop(future))):
                        self._stop(pool, futures)
                        return None
                    interrupts.check()
        except BaseException:  # a signal (or a bug): stop the workers, count what they wrote
            self._stop(pool, futures)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _outcome(self, future: Future, index: int) -> Result | None:
        """The record of a finished future: its result (None: not run, the batch was stopping),
        or the error it raised as the file's failure."""
        error = future.exception()
        if error is None:
            return future.result()
        return failed(self.jobs[index], f"unexpected {type(error).__name__}: {error}")

    def _record(self, result: Result) -> bool:
        """Pass ``result`` on, whole even if a signal comes meanwhile; False once the batch stops."""
        with interrupts.deferred():
            if not self.on_result(result):
                self.stopped = True
        return not self.stopped

    def _broken(self, pool: ProcessPoolExecutor, futures: dict[Future, int]) -> tuple[list[int], list[int]]:
        """After a worker died: record what finished or reached the disk before, and return the
        rest as (being filtered, not started)."""
        pool.shutdown(wait=True)  # every future is settled now
        running, queued = [], []
        for future, index in sorted(futures.items(), key=lambda item: item[1]):
            result = None if isinstance(future.exception(), BrokenProcessPool) else self._outcome(future, index)
            result = result or written_meanwhile(self.jobs[index], self.before[index])
            if result is not None:
                self._record(result)
            elif self.started[index] > 0:  # its worker died (a worker ended by a signal marks its job)
                remove_temporaries(self.jobs[index].output)
                running.append(index)
            else:
                queued.append(index)
        futures.clear()
        return running, queued

    def _stop(self, pool: ProcessPoolExecutor, futures: dict[Future, int]) -> None:
        """Stop the batch now: the jobs not started are cancelled (a worker that picks one up
        returns at once), the workers filtering a file are ended (their temporary files are
        removed), and every output in flight that reached the disk is recorded as written."""
        self.stopped = True
        self.stopping.value = 1
        with interrupts.deferred():  # a signal that comes now is raised once the stop is complete
            for future, index in futures.items():
                if self.started[index] > 0 and not future.done():
                    with contextlib.suppress(OSError):
                        os.kill(self.started[index], signal.SIGTERM)
            pool.shutdown(wait=True, cancel_futures=True)  # no worker is left: nothing is being written
            for future, index in sorted(futures.items(), key=lambda item: item[1]):
                result = None
                if not future.cancelled() and future.exception() is None:
                    result = future.result()
                result = result or written_meanwhile(self.jobs[index], self.before[index])
                if result is not None:
                    self.on_result(result)
                else:  # what a worker ended at any step of its write may have left
                    remove_temporaries(self.jobs[index].output)
            futures.clear()


def remove_temporaries(output: Path) -> None:
    """Remove what a process killed while writing ``output`` left: the temporary files that
    ``imageio.write_atomic`` names ``.NAME.XXXXXXXX.convfilter-tmp`` next to it."""
    stem = os.fsencode(output.name)[:200].decode(errors="ignore")
    for temporary in output.parent.glob(f".{glob.escape(stem)}.*.convfilter-tmp"):
        with contextlib.suppress(OSError):
            temporary.unlink()


def _died_note(inputs: list) -> str:
    if len(inputs) == 1:
        return f"a worker process died while filtering {inputs[0]}; running it again on its own"
    names = ", ".join(map(str, inputs))
    return f"a worker process died while {names} were being filtered; running each again on its own"


# More worker processes than this per core only add memory: each holds an image and its result.
WORKERS_PER_CORE = 4


def worker_limit() -> int:
    """The most worker processes a batch starts, whatever ``-j`` asks for."""
    return WORKERS_PER_CORE * (os.cpu_count() or 1)


def worker_count(requested: int | None, files: int) -> int:
    """Workers for ``files`` files: ``requested`` (default: all cores), at most ``worker_limit()``,
    and never more than there are files."""
    return max(1, min(requested or os.cpu_count() or 1, worker_limit(), files))
