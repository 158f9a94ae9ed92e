"""Batches: a folder (or several files) in, a folder out, through the command and the installed program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import SAMPLES, SUMMARY, run
from PIL import Image


@pytest.fixture
def folder(tmp_path):
    """Real images, a corrupt one, an empty file, a text file, a hidden file and a sub-folder."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(SAMPLES / "cat.jpeg", root / "cat.jpeg")
    shutil.copy(SAMPLES / "camera.png", root / "Camera.PNG")  # extensions are case-insensitive
    shutil.copy(SAMPLES / "logo.png", root / "sub" / "logo.png")
    shutil.copy(SAMPLES / "coffee.png", root / "sub" / "deeper" / "coffee.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    shutil.copy(SAMPLES / "cat.jpeg", root / ".hidden.jpeg")
    return root


def summary(result) -> tuple[int, int, int]:
    return summary_counts(result.stderr.strip().splitlines()[-1])


def summary_counts(line: str) -> tuple[int, int, int]:
    match = SUMMARY.match(line)
    assert match, line
    return tuple(int(g) for g in match.groups())


def test_folder_in_folder_out_with_errors_isolated(folder, tmp_path):
    out = tmp_path / "out"
    result = run("edge", folder, "-o", out, "-j", 2)
    assert result.exit_code == 1
    assert summary(result) == (2, 2, 1)
    assert sorted(os.listdir(out)) == ["Camera.PNG", "cat.jpeg"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("convfilter: error: ")]
    assert len(errors) == 2
    assert any("corrupt.jpg: not an image that can be decoded" in line for line in errors)
    assert any("empty.png: is empty" in line for line in errors)
    # the outputs are the single-file command's outputs
    assert run("edge", folder / "cat.jpeg", "-o", tmp_path / "single.jpeg", "-q").exit_code == 0
    assert (out / "cat.jpeg").read_bytes() == (tmp_path / "single.jpeg").read_bytes()


def test_recursive_mirrors_the_tree(folder, tmp_path):
    out = tmp_path / "out"
    result = run("box", folder, "-o", out, "-r", "--format", "png")
    assert summary(result) == (4, 2, 1)
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert produced == ["Camera.png", "cat.png", "sub/deeper/coffee.png", "sub/logo.png"]
    assert Image.open(out / "sub" / "deeper" / "coffee.png").size == (600, 400)


def test_output_folder_inside_the_input_is_never_read(folder):
    out = folder / "filtered"
    first = run("identity", folder, "-o", out, "-r")
    second = run("identity", folder, "-o", out, "-r")
    assert summary(first) == summary(second) == (4, 2, 1)
    assert not (out / "filtered").exists()


def test_several_files_in(tmp_path):
    result = run("sharpen", SAMPLES / "cat.jpeg", SAMPLES / "camera.png", "-o", tmp_path / "out", "-q")
    assert result.exit_code == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["camera.png", "cat.jpeg"]


def test_collisions_are_refused_before_any_work(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLES / "camera.png", src / "a.png")
    shutil.copy(SAMPLES / "cat.jpeg", src / "a.jpg")
    result = run("edge", src, "-o", tmp_path / "out", "--format", "png")
    assert result.exit_code == 2
    assert "would both write" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_skip_existing_leaves_outputs_alone(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.jpeg").write_bytes(b"keep me")
    result = run("edge", folder, "-o", out, "--skip-existing")
    assert summary(result) == (1, 2, 2)
    assert (out / "cat.jpeg").read_bytes() == b"keep me"
    replaced = run("edge", folder, "-o", out)
    assert summary(replaced) == (2, 2, 1)
    assert Image.open(out / "cat.jpeg").size == (451, 300)


def test_json_lines_one_per_file(folder, tmp_path):
    result = run("edge", folder, "-o", tmp_path / "out", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["status"] for r in records} == {"written", "failed", "skipped"}
    assert len(records) == 5
    for record in records:
        assert set(record) == {"input", "output", "status", "seconds", "error"}
    failed = next(r for r in records if r["input"].endswith("corrupt.jpg"))
    assert "not an image that can be decoded" in failed["error"]


def test_all_good_exits_0_and_quiet_keeps_only_failures(tmp_path):
    result = run("edge", SAMPLES / "cat.jpeg", SAMPLES / "coffee.png", "-o", tmp_path / "o", "-q")
    assert result.exit_code == 0 and result.stderr == ""


def test_fail_fast_stops_at_the_first_failure(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    for name in ("b.png", "c.png", "d.png"):
        shutil.copy(SAMPLES / "camera.png", src / name)
    result = run("edge", src, "-o", tmp_path / "out", "--fail-fast", "-j", 1)
    assert result.exit_code == 1
    assert summary(result) == (0, 1, 0)
    assert not list((tmp_path / "out").iterdir())


def test_parallel_and_sequential_outputs_are_identical(folder, tmp_path):
    run("emboss", folder, "-o", tmp_path / "one", "-r", "-j", 1)
    run("emboss", folder, "-o", tmp_path / "two", "-r", "-j", 2)
    for path in (tmp_path / "one").rglob("*.*"):
        assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()


def test_bad_batch_options(tmp_path):
    result = run("edge", SAMPLES / "cat.jpeg", SAMPLES / "camera.png")
    assert result.exit_code == 2 and "need -o FOLDER" in result.stderr
    result = run("edge", SAMPLES, "-o", tmp_path / "o", "--format", "gif")
    assert result.exit_code == 2 and "unknown format 'gif'" in result.stderr


def test_progress_bar_only_on_a_terminal(tmp_path, convfilter_command):
    import pty

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        shutil.copy(SAMPLES / "camera.png", src / f"{i}.png")
    leader, follower = pty.openpty()
    process = subprocess.Popen([convfilter_command, "box", src, "-o", tmp_path / "out"], stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    process.wait(timeout=60)
    os.close(leader)
    text = seen.decode(errors="replace")
    assert process.returncode == 0
    assert "filtering" in text and "4/4" in text and "files/s" in text
    assert SUMMARY.match(text.strip().splitlines()[-1].strip())
    piped = subprocess.run([convfilter_command, "box", src, "-o", tmp_path / "out2"], capture_output=True, text=True)
    assert "filtering" not in piped.stderr and SUMMARY.match(piped.stderr.strip())


def test_one_record_for_one_file_and_for_a_batch(tmp_path):
    # one Result type and one to_json: a batch's records are a single file's without the layer
    single = json.loads(run("sharpen", SAMPLES / "cat.jpeg", "-o", tmp_path / "s.png", "--json").stdout)
    batch = json.loads(run("sharpen", SAMPLES / "cat.jpeg", SAMPLES / "logo.png", "-o", tmp_path / "out",
                           "--json").stdout.splitlines()[0])  # fmt: skip
    assert set(batch) == {"input", "output", "status", "seconds", "error"}
    assert set(batch) < set(single) and single["error"] is None and single["status"] == batch["status"] == "written"
    assert single["kernel"] == "sharpen" and single["weights"] == 27


def test_workers_never_outnumber_the_files_or_four_per_core(tmp_path, convfilter_command):
    import os

    from convfilter.batch import worker_count, worker_limit

    cores = os.cpu_count() or 1
    assert worker_limit() == 4 * cores
    assert worker_count(64, 2) == 2 and worker_count(None, 1) == 1
    assert worker_count(10000, 400) == 4 * cores and worker_count(None, 400) == cores
    inputs = [SAMPLES / "logo.png", SAMPLES / "camera.png"]
    done = subprocess.run([convfilter_command, "edge", *inputs, "-o", tmp_path / "out", "-j", "10000"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"convfilter: note: 10000 workers lowered to {4 * cores} (4 per core)" in done.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["camera.png", "logo.png"]
