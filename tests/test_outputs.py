"""Which file goes where: ``plan_outputs`` for one file, a stream and a folder, and a batch of
files whose extensions are read but not written (through the installed command)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES
from PIL import Image

from convfilter import UsageError
from convfilter.outputs import Job, plan_outputs


def test_one_file_to_a_file_a_folder_and_a_stream(tmp_path):
    cat = str(SAMPLES / "cat.jpeg")
    assert plan_outputs((cat,), str(tmp_path / "x.webp")).jobs == [Job(Path(cat), tmp_path / "x.webp", "webp")]
    assert plan_outputs((cat,), str(tmp_path)).jobs == [Job(Path(cat), tmp_path / "cat.jpeg", "jpeg")]
    assert plan_outputs((cat,), "-").jobs == [Job(Path(cat), None, None)]  # the input's format
    assert plan_outputs((cat,), "-", "tif").jobs == [Job(Path(cat), None, "tiff")]
    assert plan_outputs((), None).jobs == [Job(None, None, None)]  # piped in, piped out
    assert plan_outputs(("-",), str(tmp_path) + "/").jobs == [Job(None, tmp_path / "stdin.png", "png")]
    assert plan_outputs((cat,), "-").folder is None


@pytest.mark.parametrize(
    ("inputs", "output", "kwargs", "message"),
    [
        ((), None, {"stdin_is_terminal": True}, "no input: give an image file, or - to read standard input"),
        (("{cat}",), None, {"stdout_is_terminal": True}, "no output: give -o FILE, or pipe the output"),
        (("{cat}",), "-", {"stdout_is_terminal": True}, "standard output is a terminal"),
        (("{cat}",), "{tmp}/x.png", {"fmt": "jpg"}, "option --format jpg: the output {tmp}/x.png already asks for png"),
        (("{cat}",), "{tmp}/x.png", {"fmt": "gif"}, "option --format: unknown format 'gif'; use one of png, jpg"),
        (("{cat}",), "{tmp}/no/x.png", {}, "output {tmp}/no/x.png: the folder {tmp}/no does not exist"),
        (("{cat}",), "{tmp}/x.gif", {}, "output {tmp}/x.gif: unknown extension .gif; use one of .png"),
        (("{cat}", "-"), "{tmp}", {}, "standard input (-) cannot be one of several inputs"),
        (("{cat}", "{cat}"), "-", {}, "several inputs, or a folder, need -o FOLDER for the outputs"),
        (("{cat}", "{cat}"), "{tmp}/new.png", {}, "several inputs, or a folder, need -o FOLDER; {tmp}/new.png names"),
        (("{cat}", "{cat}"), "{tmp}", {}, "inputs {cat} and {cat} would both write {tmp}/cat.jpeg"),
    ],
)
def test_refusals_before_any_work(tmp_path, inputs, output, kwargs, message):
    def fill(text):
        return text.format(cat=SAMPLES / "cat.jpeg", tmp=tmp_path)

    with pytest.raises(UsageError) as raised:
        plan_outputs(tuple(fill(i) for i in inputs), output and fill(output), **kwargs)
    assert str(raised.value).startswith(fill(message))


def test_an_output_over_its_input_by_another_path_is_refused(tmp_path):
    (tmp_path / "a.png").write_bytes((SAMPLES / "logo.png").read_bytes())
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(UsageError, match=r"is the input; writing over an input is refused"):
        plan_outputs((str(tmp_path / "a.png"),), str(tmp_path / "link.png"))


def test_a_folder_of_files_read_but_not_written_under_their_extension(convfilter_command, tmp_path):
    # .jpe/.jfif/.dib are JPEG and BMP under other names: written as such, same name; a GIF or a
    # PGM is only read: its output is a PNG. None of them stops the batch.
    folder = tmp_path / "in"
    folder.mkdir()
    photo = Image.open(SAMPLES / "cat.jpeg").convert("RGB")
    photo.save(folder / "a.jpe", "JPEG")
    photo.save(folder / "b.jfif", "JPEG")
    photo.save(folder / "c.dib", "BMP")
    photo.save(folder / "d.gif")
    photo.convert("L").save(folder / "e.pgm")
    done = subprocess.run(
        [convfilter_command, "identity", folder, "-o", tmp_path / "out", "-q"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    written = {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()}
    assert sorted(written) == ["a.jpe", "b.jfif", "c.dib", "d.png", "e.png"]
    assert written["a.jpe"][:3] == written["b.jfif"][:3] == b"\xff\xd8\xff"
    assert written["c.dib"][:2] == b"BM" and written["d.png"][:4] == b"\x89PNG"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "c.dib")), np.asarray(photo))


def test_one_file_into_a_folder_is_named_as_a_batch_names_it(tmp_path):
    gif = tmp_path / "a.gif"
    Image.open(SAMPLES / "logo.png").convert("RGB").save(gif)
    out = tmp_path / "out"
    out.mkdir()
    assert plan_outputs((str(gif),), str(out)).jobs == [Job(gif, out / "a.png", "png")]
    cat = SAMPLES / "cat.jpeg"
    assert plan_outputs((str(cat),), str(out), "webp").jobs == [Job(cat, out / "cat.webp", "webp")]
    assert plan_outputs(("-",), str(out), "jpg").jobs == [Job(None, out / "stdin.jpg", "jpeg")]


def test_a_link_loop_is_walked_once(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.png").write_bytes((SAMPLES / "logo.png").read_bytes())
    (tmp_path / "in" / "sub" / "loop").symlink_to("..")
    jobs = plan_outputs((str(tmp_path / "in"),), str(tmp_path / "out"), recursive=True).jobs
    assert [job.output.relative_to(tmp_path / "out") for job in jobs] == [Path("a.png")]


def test_a_hard_link_to_an_input_in_the_output_folder_is_refused(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes((SAMPLES / "logo.png").read_bytes())
    (tmp_path / "out").mkdir()
    os.link(tmp_path / "a.png", tmp_path / "out" / "a.png")
    with pytest.raises(UsageError, match=r"out/a.png: is an input; writing over an input is refused"):
        plan_outputs((str(tmp_path / "a.png"), str(tmp_path / "b.png")), str(tmp_path / "out"))


@pytest.mark.parametrize("target", ["broken-link", "a.png/sub"])
def test_a_batch_folder_that_cannot_be_made_is_one_line(convfilter_command, tmp_path, target):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes((SAMPLES / "logo.png").read_bytes())
    (tmp_path / "broken-link").symlink_to(tmp_path / "nowhere")
    before = sorted(os.listdir(tmp_path))
    done = subprocess.run([convfilter_command, "edge", "a.png", "b.png", "-o", target], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"convfilter: error: output {target}: cannot make the folder (")
    assert done.stderr.count("\n") == 1 and sorted(os.listdir(tmp_path)) == before


def test_an_output_name_as_long_as_the_file_system_takes(convfilter_command, tmp_path):
    # the temporary file's name added 25 characters and failed at 244
    name = "é" * 60 + "x" * 126 + ".png"  # 250 bytes in UTF-8
    assert len(os.fsencode(name)) == 250
    done = subprocess.run([convfilter_command, "edge", SAMPLES / "logo.png", "-o", tmp_path / name, "-q"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert os.listdir(tmp_path) == [name]


def test_a_file_state_tells_a_new_file_from_the_old_one_whatever_the_clocks_say(tmp_path):
    from convfilter.outputs import file_state

    path, new = tmp_path / "a.png", tmp_path / "new.png"
    assert file_state(path) is None
    for name in (path, new):  # the same size and time, a year ahead of the clock
        name.write_bytes(b"0123456789")
        os.utime(name, (1893456000, 1893456000))
    old = file_state(path)
    assert file_state(path) == old
    os.replace(new, path)  # as an atomic write puts its output in place
    assert file_state(path) != old and file_state(path)[2:] == old[2:]


def test_what_is_not_a_regular_file_is_told_without_opening_it(tmp_path):
    from convfilter.outputs import not_regular

    os.mkfifo(tmp_path / "pipe")  # opening it to read would wait for a writer
    (tmp_path / "file.png").write_bytes(b"")
    assert not_regular(tmp_path / "pipe") == "a FIFO"
    assert not_regular(tmp_path / "file.png") is None and not_regular(tmp_path) is None
    assert not_regular(tmp_path / "missing.png") is None  # reading it will say


def test_a_folder_that_cannot_be_listed_is_a_failure_record(tmp_path, monkeypatch):
    # as an unreadable folder is for a user without root's rights: the listing of one folder fails
    (tmp_path / "in").mkdir()
    for name in ("cat.jpeg", "camera.png", "logo.png", "coffee.png"):
        shutil.copy(SAMPLES / name, tmp_path / "in" / name)
    (tmp_path / "in" / "sub").mkdir()
    shutil.copy(SAMPLES / "logo.png", tmp_path / "in" / "sub" / "logo.png")
    scandir = os.scandir

    def refuse(path):
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    planned = plan_outputs((str(tmp_path / "in"),), str(tmp_path / "out"), recursive=True)
    assert len(planned.jobs) == 4
    sub = tmp_path / "in" / "sub"
    assert planned.failed == [(str(sub), "", f"input {sub}: cannot read the folder (Permission denied)")]
