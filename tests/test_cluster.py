"""Batches on a Dask cluster: the same outputs, records and statuses as the local batch, and
nothing lost when a worker dies."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys

import distributed
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, SUMMARY, copies_of_a_photo, wait_for_outputs
from PIL import Image

from convfilter.cli import cli
from convfilter.outputs import Job
from convfilter.pipeline import Options


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    ) as running:
        yield running


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for name in ("cat.jpeg", "coffee.png", "camera.png"):
        shutil.copy(SAMPLES / name, root / name)
    shutil.copy(SAMPLES / "logo.png", root / "sub" / "logo.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg \xff\xd9")
    (root / "readme.txt").write_text("not an image")
    return root


def run_cli(command, *args):
    return subprocess.run([command, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_same_outputs_records_and_status_as_the_local_batch(cluster, photos, tmp_path, convfilter_command):
    local = run_cli(convfilter_command, "emboss", photos, "-o", tmp_path / "local", "-r", "--json")
    remote = run_cli(convfilter_command, "emboss", photos, "-o", tmp_path / "remote", "-r", "--json",
                     "--cluster", cluster.scheduler_address)  # fmt: skip
    assert local.returncode == remote.returncode == 1
    assert SUMMARY.search(local.stderr).groups() == SUMMARY.search(remote.stderr).groups() == ("4", "1", "1")
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert len(files) == 4
    for relative in files:
        assert (tmp_path / "local" / relative).read_bytes() == (tmp_path / "remote" / relative).read_bytes()
    error = [line for line in remote.stderr.splitlines() if line.startswith("convfilter: error:")]
    assert error == [line for line in local.stderr.splitlines() if line.startswith("convfilter: error:")]
    assert _records(local.stdout) == _records(remote.stdout)


def _records(text: str) -> list[str]:
    """The --json lines without their times and output folders, sorted."""
    return sorted(
        re.sub(r'"seconds": [0-9.e-]+', "", re.sub(r"/(local|remote)/", "/", line)) for line in text.splitlines()
    )


def test_local_n_starts_its_own_cluster(photos, tmp_path):
    result = CliRunner().invoke(cli, ["box", str(photos), "-o", str(tmp_path / "out"), "--cluster", "local:2"])
    assert result.exit_code == 1 and SUMMARY.search(result.stderr).groups() == ("3", "1", "1")


def test_bad_cluster_options(photos, tmp_path):
    result = CliRunner().invoke(cli, ["box", str(photos), "-o", str(tmp_path / "o"), "--cluster", "local:zero"])
    assert result.exit_code == 2 and "'local:N' needs a number of workers" in result.stderr
    result = CliRunner().invoke(cli, ["box", str(SAMPLES / "cat.jpeg"), "-o", str(tmp_path / "x.png"),
                                      "--cluster", "local:2"])  # fmt: skip
    assert result.exit_code == 2 and "--cluster: runs a batch" in result.stderr


def test_without_dask_it_says_how_to_install_it(photos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    result = CliRunner().invoke(cli, ["box", str(photos), "-o", str(tmp_path / "out"), "--cluster", "local:2"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        'convfilter: error: --cluster needs Dask distributed, which is not installed: pip install "convfilter[dask]"'
    )
    assert not (tmp_path / "out").exists()


def test_a_file_written_by_a_worker_that_died_is_not_written_again(tmp_path):
    from convfilter import load_kernel
    from convfilter.cluster import process_once
    from convfilter.outputs import file_state

    job = Job(SAMPLES / "camera.png", tmp_path / "camera.png", "png")
    before = file_state(job.output)  # None: no output yet
    first = process_once(job, before, load_kernel("box"), Options("png"))
    inode = (tmp_path / "camera.png").stat().st_ino
    again = process_once(job, before, load_kernel("box"), Options("png"))  # a retry after the worker died
    assert first.status == again.status == "written"
    assert (tmp_path / "camera.png").stat().st_ino == inode  # not replaced
    # an output as it was before the batch is written, whatever its time says (clocks are not trusted)
    os.utime(job.output, (2**31, 2**31))  # 2038
    old = process_once(job, file_state(job.output), load_kernel("box"), Options("png"))
    assert old.status == "written" and (tmp_path / "camera.png").stat().st_ino != inode


def test_an_output_from_the_future_is_still_replaced(photos, tmp_path, convfilter_command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "camera.png").write_bytes(b"old output")
    os.utime(out / "camera.png", (1893456000, 1893456000))  # 2030-01-01: a clock ahead, a copied file
    done = run_cli(convfilter_command, "edge", photos / "camera.png", photos / "cat.jpeg", "-o", out,
                   "--cluster", "local:1", "-q")  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    single = tmp_path / "single.png"
    assert run_cli(convfilter_command, "edge", photos / "camera.png", "-o", single, "-q").returncode == 0
    assert (out / "camera.png").read_bytes() == single.read_bytes()


def test_unwritable_output_folder_is_refused_at_the_start(tmp_path, monkeypatch):
    from convfilter import UsageError
    from convfilter.cluster import check_writable

    def refuse(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "write_bytes", refuse)
    with pytest.raises(UsageError, match=r"cannot write there \(Permission denied\)"):
        check_writable(tmp_path)


def test_a_worker_killed_mid_run_loses_nothing(cluster, tmp_path, convfilter_command):
    src, out = tmp_path / "in", tmp_path / "out"
    copies_of_a_photo(src, 40)
    client = distributed.Client(cluster)
    victim = next(iter(client.run(os.getpid).values()))
    process = subprocess.Popen(
        [convfilter_command, "gaussian", "-p", "sigma=5", src, "-o", out, "--cluster", cluster.scheduler_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_outputs(out, 3)
    os.kill(victim, signal.SIGKILL)  # the worker process dies mid-batch
    _, stderr = process.communicate(timeout=900)  # generous: a loaded machine is slow, not wrong
    client.close()
    assert process.returncode == 0, stderr
    assert SUMMARY.search(stderr).groups() == ("40", "0", "0")
    names = sorted(os.listdir(out))
    assert names == [f"{i:02}.png" for i in range(40)]  # every output, and no temporary file
    for name in names:
        assert Image.open(out / name).size == (512, 512)
        Image.open(out / name).load()  # whole


def run_limited(command, *args, cwd):
    """The installed command under a memory limit, as the hardening tests run it."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run([command, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60,
                          preexec_fn=limit)  # fmt: skip


def test_a_cluster_address_that_is_not_one_is_a_usage_error(photos, tmp_path, convfilter_command):
    done = run_limited(convfilter_command, "edge", "in", "-o", "out", "--cluster", "foo://x", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert re.match(r"convfilter: error: option --cluster: 'foo://x' is not a scheduler's address \(unknown address "
                    r"scheme 'foo'.*\); give tcp://HOST:PORT", done.stderr)  # fmt: skip
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    done = run_limited(convfilter_command, "edge", "in", "-o", "out", "--cluster", address, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2, f"convfilter: error: option --cluster: cannot reach a Dask scheduler at {address} (Connection refused)\n",
    )  # fmt: skip
    assert not (tmp_path / "out").exists()
