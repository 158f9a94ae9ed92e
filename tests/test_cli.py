"""The command line, through Click's runner and through real runs of the installed command."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys

import click
import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from bad_inputs import BAD_INPUTS, digest, make_workdir
from conftest import CAT, SAMPLES, assert_matches_golden, assert_one_line_error, pixels, run
from PIL import Image as PILImage
from test_kernel import BAD_FILES

from convfilter.cli import cli


def test_classic_example_matches_golden(tmp_path):
    result = run("edge", CAT, "-o", str(tmp_path / "e.png"))
    assert result.exit_code == 0, result.stderr
    assert_matches_golden(tmp_path / "e.png")
    assert result.stderr.splitlines()[:3] == [
        "edge: dense conv 3→3 channels, 3×3 kernel, groups=1, padding=zeros, stride 1",
        "      parameters: 81 weights + 0 bias = 81  (depthwise would be 27; groups=g gives 81/g for g in 1, 3)",
        "      cost: 10.96 M multiply-adds for 451×300",
    ]
    assert result.stdout == ""


def test_installed_command_matches_golden(tmp_path, convfilter_command):
    done = subprocess.run([convfilter_command, "edge", CAT, "-o", tmp_path / "e.png"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_matches_golden(tmp_path / "e.png")
    assert "cat.jpeg → " in done.stderr


def test_python_dash_m_runs_the_same_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "convfilter", "edge", CAT, "-o", tmp_path / "e.png", "-q"])
    assert done.returncode == 0
    assert_matches_golden(tmp_path / "e.png")


def test_groups_3_is_the_depthwise_result(tmp_path):
    result = run("edge", CAT, "-o", str(tmp_path / "g.png"), "--groups", "3")
    assert result.exit_code == 0, result.stderr
    assert "depthwise conv 3→3 channels" in result.stderr and "parameters: 27 weights" in result.stderr
    kernel = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 3
    cat = pixels(CAT).astype(np.float64)
    expected = np.stack([ndi.correlate(cat[..., c], kernel, mode="constant") for c in range(3)], -1)
    expected = np.clip(np.rint(expected), 0, 255)
    diff = np.abs(pixels(tmp_path / "g.png").astype(int) - expected)
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size


def test_groups_2_exits_2_and_writes_nothing(tmp_path):
    result = run("edge", CAT, "-o", str(tmp_path / "g.png"), "--groups", "2")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "groups=2 must divide both the 3 input and 3 output channels; try one of 1, 3")
    assert os.listdir(tmp_path) == []


def test_params_json():
    result = run("params", "--in-channels", "64", "--out-channels", "128", "--kernel-size", "3", "--groups", "4",
                 "--json")  # fmt: skip
    assert result.exit_code == 0
    counts = json.loads(result.stdout)
    assert counts["weights"] == 18432 and counts["parameters"] == 18432 and counts["groups"] == 4


def test_params_text_with_bias_and_size():
    result = run("params", "--in-channels", "3", "--out-channels", "3", "--kernel-size", "3x5", "--groups", "3",
                 "--bias", "--size", "451x300")  # fmt: skip
    assert result.exit_code == 0
    assert "parameters: 45 weights + 3 bias = 48" in result.stdout
    assert f"cost: {451 * 300 * 3 * 15 / 1e6:.2f} M multiply-adds for 451×300" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--groups", "5"], "groups=5 must divide both the 64 input and 128 output channels; try one of 1, 2, 4"),
        (["--kernel-size", "3y3"], "option --kernel-size: expected K or KHxKW"),
        (["--size", "12"], "option --size: expected WIDTHxHEIGHT"),
    ],
)
def test_params_errors(args, message):
    base = {"--in-channels": "64", "--out-channels": "128", "--kernel-size": "3"}
    for flag in args[::2]:
        base.pop(flag, None)
    flat = [item for pair in base.items() for item in pair]
    result = run("params", *flat, *args)
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, message)


def test_list_and_list_json():
    result = run("list")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"edge", "identity", "sharpen", "box", "emboss", "gray"} <= set(names)
    rows = json.loads(run("list", "--json").stdout)
    edge = next(r for r in rows if r["name"] == "edge")
    assert edge["shape"] == [3, 3] and edge["mix"] == "dense" and edge["summary"]
    assert next(r for r in rows if r["name"] == "gray")["shape"] == [1, 3, 1, 1]


def test_every_command_has_help():
    for name, command in cli.commands.items():
        assert command.help, name
        result = run(name, "--help")
        assert result.exit_code == 0 and "Usage: convfilter " + name in result.stdout
    top = run("--help")
    assert top.exit_code == 0 and "Usage: convfilter KERNEL [INPUT]..." in top.stdout
    assert "convfilter list" in top.stdout and "convfilter params" in top.stdout


@pytest.mark.parametrize(("args", "code", "fragment"), BAD_INPUTS, ids=[" ".join(a[:3]) for a, _, _ in BAD_INPUTS])
def test_bad_input_gets_one_line_and_its_exit_status(tmp_path, monkeypatch, args, code, fragment):
    # the same table as through the installed command (test_hardening.py), in this process
    workdir = make_workdir(tmp_path)
    monkeypatch.chdir(workdir)
    stdin = b""
    if args[-1].startswith("STDIN:"):
        stdin, args = args[-1][6:].encode(), args[:-1]
    before = digest(workdir)
    result = run(*args, input=stdin)
    assert result.exit_code == code
    assert_one_line_error(result.stderr, fragment)
    assert digest(workdir) == before  # inputs untouched, nothing written, no temporary file left


def test_writing_over_the_input_is_refused(tmp_path):
    target = tmp_path / "cat.jpeg"
    target.write_bytes((SAMPLES / "cat.jpeg").read_bytes())
    result = run("edge", str(target), "-o", str(target))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "is the input; writing over an input is refused")
    assert target.read_bytes() == (SAMPLES / "cat.jpeg").read_bytes()


def test_existing_output_is_replaced(tmp_path):
    (tmp_path / "e.png").write_bytes(b"old")
    assert run("edge", CAT, "-o", str(tmp_path / "e.png"), "-q").exit_code == 0
    assert_matches_golden(tmp_path / "e.png")
    assert os.listdir(tmp_path) == ["e.png"]


def test_output_folder_keeps_the_input_name(tmp_path):
    assert run("edge", CAT, "-o", str(tmp_path), "-q").exit_code == 0
    assert os.listdir(tmp_path) == ["cat.jpeg"]
    assert PILImage.open(tmp_path / "cat.jpeg").format == "JPEG"


def test_json_report_goes_to_stdout_for_a_file_output(tmp_path):
    result = run("sharpen", CAT, "-o", str(tmp_path / "s.png"), "--json")
    record = json.loads(result.stdout)
    assert record["kernel"] == "sharpen" and record["weights"] == 27 and record["mix"] == "depthwise"
    assert record["output"] == str(tmp_path / "s.png") and record["status"] == "written"
    assert record["multiply_adds"] == 451 * 300 * 27


def test_quiet_prints_nothing(tmp_path):
    result = run("edge", CAT, "-o", str(tmp_path / "e.png"), "-q")
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


def test_gray_writes_a_one_channel_image(tmp_path):
    assert run("gray", CAT, "-o", str(tmp_path / "g.png"), "-q").exit_code == 0
    gray = PILImage.open(tmp_path / "g.png")
    assert gray.mode == "L"
    rgb = pixels(CAT).astype(np.float64)
    expected = np.clip(np.rint(rgb @ [0.299, 0.587, 0.114]), 0, 255)
    assert np.abs(np.asarray(gray).astype(int) - expected).max() <= 1


@pytest.fixture
def rgba_png(tmp_path, rng):
    """An RGBA PNG whose alpha varies, so that keeping and filtering it differ."""
    image = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    PILImage.fromarray(image, "RGBA").save(tmp_path / "rgba.png")
    return tmp_path / "rgba.png", image


def test_rgba_keeps_its_alpha_through_a_dense_kernel(tmp_path, rgba_png):
    path, image = rgba_png
    result = run("edge", str(path), "-o", str(tmp_path / "e.png"))
    assert result.exit_code == 0 and "dense conv 3→3 channels" in result.stderr
    out = pixels(tmp_path / "e.png")
    assert out.shape == (40, 50, 4)
    np.testing.assert_array_equal(out[..., 3], image[..., 3])
    # the colour channels are the classic dense edge of R, G, B alone
    kernel = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 3
    rgb_sum = image[..., :3].astype(np.float64).sum(-1)
    expected = np.clip(np.rint(ndi.correlate(rgb_sum, kernel, mode="constant")), 0, 255)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1


def test_alpha_filter_makes_alpha_a_channel(tmp_path, rgba_png):
    path, image = rgba_png
    result = run("box", str(path), "-o", str(tmp_path / "b.png"), "--alpha", "filter")
    assert result.exit_code == 0 and "depthwise conv 4→4 channels" in result.stderr
    expected = np.clip(np.rint(ndi.uniform_filter(image[..., 3].astype(np.float64), 3, mode="mirror")), 0, 255)
    assert np.abs(pixels(tmp_path / "b.png")[..., 3].astype(int) - expected).max() <= 1


def test_stride_and_valid_padding_change_the_size(tmp_path):
    assert run("box", CAT, "-o", str(tmp_path / "s.png"), "--stride", "2", "-q").exit_code == 0
    assert pixels(tmp_path / "s.png").shape == (150, 226, 3)
    assert run("box", CAT, "-o", str(tmp_path / "v.png"), "--padding", "valid", "-q").exit_code == 0
    assert pixels(tmp_path / "v.png").shape == (298, 449, 3)


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    assert run("identity", str(SAMPLES / "astronaut-16bit.png"), "-o", str(tmp_path / "i.png"), "-q").exit_code == 0
    import cv2

    out = cv2.imread(str(tmp_path / "i.png"), cv2.IMREAD_UNCHANGED)
    src = cv2.imread(str(SAMPLES / "astronaut-16bit.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, src)


def test_user_yaml_kernel_with_bias_and_range(tmp_path):
    kernel = tmp_path / "shift.yaml"
    kernel.write_text("weights: [[1]]\nbias: -300\nrange: abs\n")
    assert run(str(kernel), CAT, "-o", str(tmp_path / "o.png"), "-q").exit_code == 0
    expected = np.clip(np.abs(pixels(CAT).astype(int) - 300), 0, 255)
    np.testing.assert_array_equal(pixels(tmp_path / "o.png"), expected)


def test_pipeline_through_stdin_and_stdout(tmp_path, convfilter_command):
    cat_bytes = (SAMPLES / "cat.jpeg").read_bytes()
    first = subprocess.run([convfilter_command, "identity", "-", "-o", "-", "--format", "png"], input=cat_bytes,
                           capture_output=True)  # fmt: skip
    assert first.returncode == 0 and first.stdout.startswith(b"\x89PNG")
    assert "<stdin> → -" in first.stderr.decode()
    second = subprocess.run([convfilter_command, "edge", "-o", tmp_path / "p.png"], input=first.stdout,
                            capture_output=True)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert_matches_golden(tmp_path / "p.png")  # identity then edge: the classic example again


def test_piped_stdout_keeps_the_input_format(convfilter_command):
    done = subprocess.run([convfilter_command, "sharpen", CAT], capture_output=True)
    assert done.returncode == 0 and done.stdout.startswith(b"\xff\xd8\xff")  # no -o, piped: JPEG to stdout


def test_binary_is_never_written_to_a_terminal(tmp_path, convfilter_command):
    leader, follower = pty.openpty()
    done = subprocess.run([convfilter_command, "edge", CAT, "-o", "-"], stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    os.close(leader)
    assert done.returncode == 2
    assert_one_line_error(done.stderr.decode(), "standard output is a terminal")


def test_closed_pipe_ends_quietly(convfilter_command):
    shell = f"'{convfilter_command}' sharpen '{SAMPLES / 'astronaut.png'}' --format png | head -c 100 > /dev/null"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True)
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
    assert "error" not in done.stderr.lower()


def test_unexpected_errors_are_one_line_too(monkeypatch, tmp_path):
    import convfilter.pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(convfilter.pipeline, "filter_file", boom)
    result = run("edge", CAT, "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "unexpected RuntimeError: simulated bug (run with --debug")
    for args in (["--debug", "edge", CAT], ["edge", CAT, "--debug"]):  # before or after the kernel
        debug = run(*args, "-o", str(tmp_path / "x.png"))
        assert isinstance(debug.exception, RuntimeError) and str(debug.exception) == "simulated bug"


def test_commands_are_click_commands():
    assert isinstance(cli, click.Group) and {"list", "params"} <= set(cli.commands)


def test_no_arguments_prints_the_help_with_status_2():
    result = run()
    assert result.exit_code == 2 and result.stdout.startswith("Usage: convfilter KERNEL [INPUT]...")


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("convfilter ")


def test_empty_standard_input(tmp_path):
    result = run("edge", "-", "-o", str(tmp_path / "x.png"), input=b"")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "input <stdin>: is empty, no image data")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("text", "message"), [case for case in BAD_FILES if case[1]])
def test_every_bad_kernel_file_exits_2_with_one_line(tmp_path, text, message):
    (tmp_path / "k.yaml").write_text(text)
    result = run(str(tmp_path / "k.yaml"), CAT, "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, f"kernel file {tmp_path / 'k.yaml'}: ")
    assert re.search(message, result.stderr)
    assert sorted(os.listdir(tmp_path)) == ["k.yaml"]


def test_stdout_output_in_process_is_the_encoded_image():
    result = run("identity", CAT, "-o", "-", "--format", "png", "-q")
    assert result.exit_code == 0
    np.testing.assert_array_equal(np.asarray(PILImage.open(io.BytesIO(result.stdout_bytes))), pixels(CAT))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["params", "--in-channels", "3",
                                  "--out-channels", "3", "--kernel-size", "3"]])  # fmt: skip
def test_quick_commands_do_not_import_numpy_or_opencv(args):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom convfilter.cli import cli\n"
        f"result = CliRunner().invoke(cli, {args!r})\nassert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'cv2', 'PIL')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_large_result_to_a_pipe_arrives_whole_before_the_command_ends(tmp_path, convfilter_command, rng):
    # a successful command leaves without Python's teardown: everything written is flushed first
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), rng.integers(0, 256, (1500, 2000, 3), dtype=np.uint8))
    done = subprocess.run([convfilter_command, "sharpen", photo, "-o", "-", "--format", "bmp"], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().endswith("\n") and "photo.png → -" in done.stderr.decode()
    piped = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    written = subprocess.run([convfilter_command, "sharpen", photo, "-o", tmp_path / "o.png", "-q"])
    assert written.returncode == 0
    np.testing.assert_array_equal(piped, cv2.imread(str(tmp_path / "o.png")))
