"""Many inputs to many outputs (named by ``outputs.plan_outputs``): running the files on
worker processes, and the record of each file.

``process`` is the work for one file: a plain function of (job, kernel, options) that returns a
``Result`` and raises nothing a worker would lose, so that any executor can run it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace

from .errors import ConvFilterError
from .kernel import Kernel
from .outputs import Job
from .pipeline import Options, Result, filter_file


def process(job: Job, kernel: Kernel, options: Options) -> Result:
    """Filter one file into its output, creating the output's folder; never raises for a bad
    file: the failure is in the record."""
    start = time.perf_counter()
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        result = filter_file(job.input, job.output, kernel, replace(options, format=job.format))
    except ConvFilterError as error:
        return Result(str(job.input), str(job.output), "failed", time.perf_counter() - start, str(error))
    except OSError as error:
        reason = f"{job.output.parent}: {error.strerror}"
        return Result(str(job.input), str(job.output), "failed", time.perf_counter() - start, reason)
    except Exception as error:  # a bug: report it on the file rather than lose the batch
        reason = f"unexpected {type(error).__name__}: {error}"
        return Result(str(job.input), str(job.output), "failed", time.perf_counter() - start, reason)
    return replace(result, seconds=time.perf_counter() - start, layer=None)


_worker: dict = {}


def _start_worker(kernel: Kernel, options: Options) -> None:
    """In each worker process: keep the resolved kernel, and convolve on one thread, since the
    processes already use every core."""
    _worker["kernel"], _worker["options"] = kernel, replace(options, threads=1)


def _process_in_worker(job: Job) -> Result:
    return process(job, _worker["kernel"], _worker["options"])


def run(jobs: list[Job], kernel: Kernel, options: Options, workers: int,
        on_result: Callable[[Result], bool]) -> None:  # fmt: skip
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


# More worker processes than this per core only add memory: each holds an image and its result.
WORKERS_PER_CORE = 4


def worker_limit() -> int:
    """The most worker processes a batch starts, whatever ``-j`` asks for."""
    return WORKERS_PER_CORE * (os.cpu_count() or 1)


def worker_count(requested: int | None, files: int) -> int:
    """Workers for ``files`` files: ``requested`` (default: all cores), at most ``worker_limit()``,
    and never more than there are files."""
    return max(1, min(requested or os.cpu_count() or 1, worker_limit(), files))
