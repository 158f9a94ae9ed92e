"""The threads strips run on: one pool per process and thread count, its threads all started
before any strip is given to it."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

POOL_PREFIX = "convfilter-strips"
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def strip_pool(threads: int) -> ThreadPoolExecutor | None:
    """A thread pool kept for the life of the process (per process: a forked child makes its
    own), so that a convolution does not start and join threads every time; None when its
    threads cannot all be started (an address-space limit leaves no room for their stacks): the
    strips then run in the caller's thread."""
    key = (os.getpid(), threads)
    with _pools_lock:
        if key not in _pools:
            pool = ThreadPoolExecutor(threads, thread_name_prefix=POOL_PREFIX)
            if not _start_all(pool, threads):
                pool.shutdown(wait=True)
                return None
            _pools[key] = pool
        return _pools[key]


def _start_all(pool: ThreadPoolExecutor, threads: int) -> bool:
    """Start every thread of ``pool`` now, before any strip is given to it (a task submitted
    while no thread is idle starts one): False if one cannot be started."""
    release = threading.Event()
    try:
        for _ in range(threads):
            pool.submit(release.wait)
    except RuntimeError:
        return False
    finally:
        release.set()
    return True
