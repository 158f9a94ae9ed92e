"""Signals that end a run — SIGINT (Ctrl-C), SIGTERM, SIGHUP — turned into one exception,
``Interrupted``, so that every ``finally`` and ``except BaseException`` on the way out runs: the
temporary file of an output being written is removed, a batch stops its workers and prints its
summary, and the command exits with 128 + the signal's number (130 for Ctrl-C), as GNU tools do.

Python runs a signal's handler in the main thread, between two steps of its code. Code that
waits on executors and their locks is not to be interrupted at any such step (a lock taken and
never given back hangs the run), so a batch holds signals back (``deferred``) and raises them
where it is safe (``check``), waking up often enough to do so.

A batch's worker processes handle the same signals: a worker writing a file removes its
temporary file and ends; an idle one ends at once; and on Linux a worker also ends when the
process that started it dies, whatever killed it. A worker takes its signals on a thread of its
own: the kernel may hand a signal to any thread, and one handed to a thread of a native library
would never wake a main thread that waits for work.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

# the signals that end a run cleanly; SIGKILL cannot be caught, so only it leaves a temporary file
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# seconds between two looks at a signal held back, in code that waits (a batch waiting for files)
POLL = 0.1


class Interrupted(BaseException):
    """The run was ended by signal ``signum``. A ``BaseException``, as ``KeyboardInterrupt`` is,
    so that no ``except Exception`` takes it for a failure of one file."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP."""
        return 128 + self.signum

    @property
    def message(self) -> str:
        """``interrupted``, naming the signal unless it is Ctrl-C's."""
        if self.signum == signal.SIGINT:
            return "interrupted"
        return f"interrupted ({signal.Signals(self.signum).name})"


# owner: the process whose handlers these are (a forked child must not raise in its parent's
# place); received: the first signal; deferring/pending: a signal held back; busy: a worker is
# filtering a file
_state: dict = {"owner": None, "received": None, "deferring": 0, "pending": False, "busy": False}


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP (those not ignored) raise ``Interrupted`` in
    this process, once: a second signal while the run is already ending is ignored, so that it
    cannot cut the cleanup short. The previous handlers are restored after the block unless a
    signal came (the process is then ending). Outside the main thread, nothing is changed."""
    _state.update(owner=os.getpid(), received=None, deferring=0, pending=False)
    try:
        previous = {number: signal.signal(number, _on_signal) for number in _not_ignored()}
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        if _state["received"] is None:
            for number, handler in previous.items():
                if handler is not None:  # None: set outside Python, and cannot be put back from here
                    signal.signal(number, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block, a signal is held back until ``check`` or the end of the block: a file's
    record is never half made, and no lock of an executor is left taken."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
    if not _state["deferring"]:
        check()


def check() -> None:
    """Raise the signal held back by ``deferred``, if one came: a point where that is safe."""
    if _state["pending"]:
        _state["pending"] = False
        raise Interrupted(_state["received"])


def _not_ignored() -> list[int]:
    """The signals this process does not ignore: a command started with ``nohup``, or in the
    background by a script, keeps ignoring SIGHUP or SIGINT as it was asked to."""
    return [number for number in SIGNALS if signal.getsignal(number) is not signal.SIG_IGN]


def _on_signal(signum: int, frame) -> None:
    if os.getpid() != _state["owner"]:  # a worker forked before it set its own handlers
        os._exit(128 + signum)
    if _state["received"] is not None:
        return
    _state["received"] = signum
    if _state["deferring"]:
        _state["pending"] = True
        return
    raise Interrupted(signum)


def in_worker(parent: int) -> None:
    """In a batch's worker process, from its main thread before any other starts: the signals
    are blocked in every thread and taken by a thread that waits for them (see ``working``); the
    process ends when ``parent`` does (Linux)."""
    _state.update(owner=os.getpid(), received=None, deferring=0, pending=False, busy=False)
    numbers = _not_ignored()
    for number in numbers:
        signal.signal(number, _on_worker_signal)  # run in the main thread, when the watcher asks
    signal.pthread_sigmask(signal.SIG_BLOCK, numbers)  # threads started from now on inherit it
    threading.Thread(target=_watch, args=(numbers,), name="convfilter-signals", daemon=True).start()
    _end_with_parent(parent)


@contextlib.contextmanager
def working() -> Iterator[None]:
    """A worker filtering a file: a signal now raises ``Interrupted`` in the main thread, so that
    the file's temporary output is removed; the caller then ends the process."""
    _state["busy"] = True
    try:
        yield
    finally:
        _state["busy"] = False


def _watch(numbers: list[int]) -> None:
    if not numbers:
        return
    signum = signal.sigwait(numbers)
    _state["received"] = signum
    if _state["busy"]:
        _thread.interrupt_main(signum)  # the main thread raises at its next step, in _on_worker_signal
    else:
        os._exit(128 + signum)  # idle: nothing to clean up


def _on_worker_signal(signum: int, frame) -> None:
    if _state["busy"]:
        raise Interrupted(signum)
    os._exit(128 + signum)  # the file was finished meanwhile


def _end_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies, so that a worker of a killed batch does
    not wait forever for work; a parent already gone ends the worker now."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(128 + signal.SIGTERM)
