"""Batches survive their faults — a worker killed, a folder that cannot be read, links in loops,
a FIFO, a signal, a stop at the first failure, a bad --cluster address — through real runs of the
installed command under a memory limit and a time limit: one line per failure, the summary counts
exactly the outputs on disk, the inputs untouched, no temporary file left, and the documented
exit status."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLES, SUMMARY
from PIL import Image

MEMORY_LIMIT = 4 << 30  # bytes of address space, for the command and each of its workers
DEADLINE = 60  # seconds any run may take at most; the runs here take a few
HUGE_RSS = 180  # MiB: a worker filtering huge.png holds more (its 183 MiB of pixels); one filtering a sample < 100
WORKER_DIED = "the worker process died while filtering it (killed, or out of memory?)"


def _limit_memory() -> None:
    """In the command's process: the memory limit, and the signals' default actions, as a terminal
    gives them (a test runner started in the background would pass SIGINT on ignored)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def run(command: Path, *args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed command, to the end, under the memory limit."""
    return subprocess.run(
        [command, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=DEADLINE,
        preexec_fn=_limit_memory, env=env,
    )  # fmt: skip


def start(command: Path, *args, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """The installed command in its own process group (a terminal's Ctrl-C reaches the group)."""
    return subprocess.Popen(
        [command, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limit_memory, start_new_session=True, env=env,
    )  # fmt: skip


def finish(process: subprocess.Popen) -> str:
    """Wait for the command's end; its standard error."""
    try:
        return process.communicate(timeout=DEADLINE)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise


def check_batch(stderr: str, out: Path, errors: int) -> tuple[int, int, int]:
    """``errors`` lines ``convfilter: error: …``, then the summary, which counts every output on
    disk (and only those) as written; no temporary file anywhere under ``out``. Return the counts."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and "" not in lines, stderr
    assert sum(line.startswith("convfilter: error: ") for line in lines) == errors, stderr
    match = SUMMARY.match(lines[-1])
    assert match, stderr
    counts = tuple(int(group) for group in match.groups())
    files = [path for path in out.rglob("*") if path.is_file()] if out.exists() else []
    assert not [path for path in files if path.name.endswith(".convfilter-tmp")], files
    assert counts[0] == len(files), (stderr, files)
    for path in files:  # every output whole
        np.asarray(Image.open(path))
    return counts


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}  # fmt: skip


def small_inputs(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    names = ("cat.jpeg", "camera.png", "logo.png", "coffee.png")
    for name in names:
        shutil.copy(SAMPLES / name, folder / name)
    return [folder / name for name in names]


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """An 8000×8000 PNG: a worker filtering it holds over 400 MiB for a second or more."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    pixels = np.zeros((8000, 8000, 3), np.uint8)
    pixels[::7] = 200
    assert cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def _workers(pid: int) -> list[int]:
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return children


def _resident_mib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def kill_big_workers(process: subprocess.Popen, most: int | None) -> str:
    """Play the kernel's out-of-memory killer while ``process`` runs: SIGKILL every worker whose
    resident memory passes ``HUGE_RSS`` MiB (at most ``most`` of them); return its stderr and
    remember the number killed in ``process.kills``."""
    killed: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    while process.poll() is None and time.monotonic() < deadline:
        for pid in _workers(process.pid):
            if pid not in killed and (most is None or len(killed) < most) and _resident_mib(pid) > HUGE_RSS:
                with contextlib.suppress(ProcessLookupError):  # it may have ended since it was measured
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
        time.sleep(0.005)
    process.kills = len(killed)
    return finish(process)


def test_a_worker_killed_mid_file_is_replaced_and_its_file_run_again(tmp_path, convfilter_command, huge_png):
    inputs = [*small_inputs(tmp_path / "in"), tmp_path / "in" / "huge.png"]
    shutil.copy(huge_png, inputs[-1])
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    # what a worker killed while writing would leave; the batch removes it
    out.mkdir()
    (out / ".huge.png.k1ll3d00.convfilter-tmp").write_bytes(b"half an image")
    process = start(convfilter_command, "box", *inputs, "-o", out, "-j", "2", cwd=tmp_path)
    stderr = kill_big_workers(process, most=1)
    assert process.kills == 1 and process.returncode == 0, stderr
    assert check_batch(stderr, out, errors=0) == (5, 0, 0)
    notes = [line for line in stderr.splitlines() if line.startswith("convfilter: note: ")]
    assert notes == [f"convfilter: note: a worker process died while filtering {inputs[-1]}; running it again "
                     "on its own"]  # fmt: skip
    assert Image.open(out / "huge.png").size == (8000, 8000)
    assert digest(tmp_path / "in") == before


def test_a_file_that_kills_its_worker_even_alone_fails_and_the_rest_is_written(tmp_path, convfilter_command, huge_png):
    inputs = [*small_inputs(tmp_path / "in"), tmp_path / "in" / "huge.png"]
    shutil.copy(huge_png, inputs[-1])
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    process = start(convfilter_command, "box", tmp_path / "in", "-o", out, "-j", "2", cwd=tmp_path)
    stderr = kill_big_workers(process, most=None)  # as often as it runs: with the others, then alone
    assert process.kills == 2 and process.returncode == 1, stderr
    assert check_batch(stderr, out, errors=1) == (4, 1, 0)
    assert f"convfilter: error: input {inputs[-1]}: {WORKER_DIED}\n" in stderr
    assert not (out / "huge.png").exists() and digest(tmp_path / "in") == before


def test_workers_that_keep_dying_never_make_the_batch_loop(tmp_path, convfilter_command, huge_png):
    (tmp_path / "in").mkdir()
    for i in range(3):  # files that take a while: a worker is killed long before it finishes one
        os.link(huge_png, tmp_path / "in" / f"huge-{i}.png")
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    process = start(convfilter_command, "box", tmp_path / "in", "-o", out, "-j", "2", cwd=tmp_path)
    killed: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    while process.poll() is None and time.monotonic() < deadline:  # every worker, as soon as it is seen
        for pid in set(_workers(process.pid)) - killed:
            with contextlib.suppress(ProcessLookupError):  # it may have ended since it was listed
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.005)
    stderr = finish(process)
    assert process.returncode == 1 and killed, stderr
    # each file that was being filtered failed on its own, and the batch gave up on workers that
    # died while idle: one line each, the summary, then the line that ends the batch
    lines = stderr.strip().splitlines()
    if lines[-1].startswith("convfilter: error: the worker processes keep dying"):
        lines = lines[:-1]
    errors = [line for line in lines if line.startswith("convfilter: error: ")]
    assert all(line.endswith(WORKER_DIED) for line in errors), stderr
    check_batch("\n".join(lines), out, errors=len(errors))
    assert digest(tmp_path / "in") == before


def _without_read_permission_bypass() -> list[str]:
    """Root reads any folder; run as root without the capabilities that let it (setpriv)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed")
    drop = "-dac_override,-dac_read_search"
    prefix = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    return prefix


def test_an_unreadable_sub_folder_is_one_failure_and_the_rest_goes_on(tmp_path, convfilter_command):
    prefix = _without_read_permission_bypass()
    small_inputs(tmp_path / "in")
    locked = tmp_path / "in" / "locked"
    locked.mkdir()
    shutil.copy(SAMPLES / "cat.jpeg", locked / "cat.jpeg")
    shutil.copy(SAMPLES / "logo.png", tmp_path / "in" / "z.png")
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    locked.chmod(0)
    try:
        done = subprocess.run([*prefix, convfilter_command, "edge", "in", "-r", "-o", "out"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=DEADLINE, preexec_fn=_limit_memory)  # fmt: skip
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert check_batch(done.stderr, out, errors=1) == (5, 1, 0)
    assert done.stderr.startswith("convfilter: error: input in/locked: cannot read the folder (Permission denied)\n")
    assert digest(tmp_path / "in") == before


def test_links_in_loops_are_walked_once_and_never_hang(tmp_path, convfilter_command):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(SAMPLES / "logo.png", root / "a.png")
    shutil.copy(SAMPLES / "camera.png", root / "sub" / "b.png")
    (root / "self").symlink_to(".")  # a folder linked to itself
    (root / "sub" / "again").symlink_to("../sub")  # and again, one level down
    (root / "sub" / "up").symlink_to("..")  # a link to a parent
    (root / "sub" / "top").symlink_to("../..")  # to the folder holding the whole tree
    (root / "knot.png").symlink_to("knot.png")  # a link to itself: cannot be followed
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(SAMPLES / "cat.jpeg", tmp_path / "elsewhere" / "c.jpeg")
    (root / "outside").symlink_to(tmp_path / "elsewhere")  # followed: a folder outside the tree
    (root / "outside2").symlink_to(tmp_path / "elsewhere")  # but once
    before = digest(tmp_path)
    done = run(convfilter_command, "edge", "in", "-r", "-o", "out", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert check_batch(done.stderr, tmp_path / "out", errors=0) == (3, 0, 1)
    produced = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert produced == ["a.png", "outside/c.jpeg", "sub/b.png"]
    skipped = [r for r in map(json.loads, done.stdout.splitlines()) if r["status"] == "skipped"]
    assert [(r["input"], r["error"]) for r in skipped] == [
        ("in/knot.png", "cannot be followed (Too many levels of symbolic links)")
    ]
    shutil.rmtree(tmp_path / "out")
    assert digest(tmp_path) == before


def test_a_fifo_among_several_inputs_fails_alone_without_being_opened(tmp_path, convfilter_command):
    inputs = small_inputs(tmp_path / "in")
    fifo = tmp_path / "in" / "pipe.png"
    os.mkfifo(fifo)
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    done = run(convfilter_command, "edge", inputs[0], fifo, *inputs[1:], "-o", out, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert check_batch(done.stderr, out, errors=1) == (4, 1, 0)
    refusal = f"convfilter: error: input {fifo}: not a regular file (a FIFO); give an image file or a folder\n"
    assert refusal in done.stderr
    # in a folder, a FIFO is passed over
    done = run(convfilter_command, "edge", tmp_path / "in", "-o", tmp_path / "out2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert check_batch(done.stderr, tmp_path / "out2", errors=0) == (4, 0, 1)
    assert '"error": "not a regular file (a FIFO)"' in done.stdout
    assert stat.S_ISFIFO(fifo.stat().st_mode) and digest(tmp_path / "in") == before


def _open_for_writing(fifo: Path, process: subprocess.Popen) -> int:
    """Open ``fifo`` for writing once the command has it open for reading."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader is there
        except OSError:
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        return fd
    raise AssertionError(f"the command never opened {fifo}: {finish(process)}")


@pytest.mark.parametrize("data", [b"", (SAMPLES / "logo.png").read_bytes()], ids=["nothing", "an image"])
def test_a_fifo_as_the_single_input_is_read_as_a_pipe(tmp_path, convfilter_command, data):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    process = start(convfilter_command, "edge", fifo, "-o", "out.png", "-q", cwd=tmp_path)
    fd = _open_for_writing(fifo, process)
    os.write(fd, data)
    os.close(fd)
    stderr = finish(process)
    if data:
        assert (process.returncode, stderr) == (0, "")
        assert Image.open(tmp_path / "out.png").size == (Image.open(SAMPLES / "logo.png").size)
    else:
        assert process.returncode == 1 and stderr == f"convfilter: error: input {fifo}: is empty, no image data\n"
        assert sorted(os.listdir(tmp_path)) == ["pipe.png"]


# Installed as sitecustomize.py ahead of the command: just before an output named NAME is renamed
# into place (its temporary file written whole), ACTION runs — a signal arrives during the write.
# ``until_signalled()`` keeps the process there, running Python code, until a signal ends it.
HOOK = """
import os, signal, time
_replace = os.replace
def until_signalled():
    while True:
        time.sleep(0.01)
def replace(source, target, *args, **kwargs):
    if os.path.basename(str(target)) == {name!r}:
        {action}
    return _replace(source, target, *args, **kwargs)
os.replace = replace
"""


def hooked(tmp_path: Path, name: str, action: str) -> dict:
    folder = tmp_path / "hook"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(HOOK.format(name=name, action=action))
    return {**os.environ, "PYTHONPATH": str(folder)}


@pytest.mark.parametrize(("signum", "code", "message"), [
    (signal.SIGTERM, 143, "interrupted (SIGTERM)"),
    (signal.SIGHUP, 129, "interrupted (SIGHUP)"),
    (signal.SIGINT, 130, "interrupted"),
])  # fmt: skip
def test_a_signal_during_a_write_leaves_the_old_output_and_no_temporary_file(tmp_path, convfilter_command, signum,
                                                                             code, message):  # fmt: skip
    (tmp_path / "out.png").write_bytes(b"old output")
    env = hooked(tmp_path, "out.png", f"os.kill(os.getpid(), {int(signum)})")
    done = run(convfilter_command, "sharpen", SAMPLES / "astronaut.png", "-o", "out.png", cwd=tmp_path, env=env)
    assert (done.returncode, done.stderr) == (code, f"convfilter: error: {message}\n")
    assert (tmp_path / "out.png").read_bytes() == b"old output"
    assert sorted(os.listdir(tmp_path)) == ["hook", "out.png"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_to_a_batch_ends_its_workers_and_counts_what_is_on_disk(tmp_path, convfilter_command, jobs):
    inputs = small_inputs(tmp_path / "in")
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    # while a worker writes camera.png, SIGTERM reaches the command alone (as `kill PID` sends it)
    to = "os.getpid()" if jobs == "1" else "os.getppid()"
    env = hooked(tmp_path, "camera.png", f"os.kill({to}, signal.SIGTERM); until_signalled()")
    process = start(convfilter_command, "emboss", *inputs, "-o", out, "-j", jobs, cwd=tmp_path, env=env)
    stderr = finish(process)
    assert process.returncode == 143, stderr
    assert stderr.endswith("\nconvfilter: error: interrupted (SIGTERM)\n")
    written, _, _ = check_batch(stderr.rsplit("convfilter: error:", 1)[0], out, errors=0)
    assert written < 4 and not (out / "camera.png").exists() and digest(tmp_path / "in") == before


def test_ctrl_c_stops_a_batch_at_once_and_counts_what_is_on_disk(tmp_path, convfilter_command):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(12):
        shutil.copy(SAMPLES / "astronaut.png", src / f"{i:02}.png")
    before = digest(src)
    # Ctrl-C reaches the whole process group: the command and its workers, one of them writing 03.png
    env = hooked(tmp_path, "03.png", "os.killpg(0, signal.SIGINT); until_signalled()")
    process = start(convfilter_command, "gaussian", "-p", "sigma=4", src, "-o", out, "-j", "2", cwd=tmp_path, env=env)
    stderr = finish(process)
    assert process.returncode == 130, stderr
    summary, error = stderr.rstrip("\n").rsplit("\n", 1)
    assert error == "convfilter: error: interrupted"  # no blank line before it
    check_batch(summary, out, errors=0)
    assert not (out / "03.png").exists() and digest(src) == before


@pytest.mark.parametrize("where", [["-j", "2"], ["--cluster", "local:2"]], ids=["processes", "cluster"])
def test_fail_fast_stops_at_once_and_counts_what_is_on_disk(tmp_path, convfilter_command, where):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    for i in range(16):
        shutil.copy(SAMPLES / "astronaut.png", src / f"b{i:02}.png")
    before = digest(src)
    done = run(convfilter_command, "gaussian", "-p", "sigma=4", src, "-o", out, "--fail-fast", *where, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    written, failed, _ = check_batch(done.stderr, out, errors=1)
    assert done.stderr.startswith("convfilter: error: input ") and "a-broken.png" in done.stderr.splitlines()[0]
    # it stopped: the files not started were cancelled (at most two per worker were in flight)
    assert failed == 1 and written < 16 and digest(src) == before


def test_on_a_cluster_a_file_that_kills_its_worker_fails_and_the_rest_is_written(tmp_path, convfilter_command,
                                                                                 huge_png):  # fmt: skip
    inputs = [*small_inputs(tmp_path / "in"), tmp_path / "in" / "huge.png"]
    os.link(huge_png, inputs[-1])
    before, out = digest(tmp_path / "in"), tmp_path / "out"
    # Dask's own settings: a task in flight on a worker that dies is bad (by default, after four),
    # and a worker holds only the task it runs (by default, one more, which would be blamed too)
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
           "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}  # fmt: skip
    process = start(convfilter_command, "box", "in", "-o", "out", "--cluster", "local:2", cwd=tmp_path, env=env)
    stderr = kill_big_workers(process, most=None)
    assert process.kills == 1 and process.returncode == 1, stderr
    assert check_batch(stderr, out, errors=1) == (4, 1, 0)
    assert "convfilter: error: input in/huge.png: " + WORKER_DIED + "\n" in stderr
    assert digest(tmp_path / "in") == before
