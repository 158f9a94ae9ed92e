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
import numpy as np
import pytest
import scipy.ndimage as ndi
from click.testing import CliRunner
from conftest import DATA, SAMPLES
from PIL import Image as PILImage
from test_kernel import BAD_FILES

from convfilter.cli import cli

CAT = str(SAMPLES / "cat.jpeg")


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def pixels(path) -> np.ndarray:
    return np.asarray(PILImage.open(path))


def assert_matches_golden(path) -> None:
    ours, golden = pixels(path).astype(int), pixels(DATA / "edge-cat.seed.png").astype(int)
    assert ours.shape == golden.shape == (300, 451, 3)
    diff = np.abs(ours - golden)
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size


def assert_one_line_error(stderr: str, text: str) -> None:
    assert stderr.startswith("convfilter: error: ") and text in stderr, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


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


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nosuch", CAT, "-o", "{tmp}/x.png"], 2, "unknown kernel 'nosuch'"),
        (["edge", "{tmp}/missing.png", "-o", "{tmp}/x.png"], 1, "input {tmp}/missing.png: no such file"),
        (["edge", "{tmp}", "-o", "{tmp}/x.png"], 2, "several inputs, or a folder, need -o FOLDER; {tmp}/x.png names"),
        (["edge", CAT, "-o", "{tmp}/x.gif"], 2, "unknown extension .gif"),
        (["gaussian", "-p", "sigma", CAT, "-o", "{tmp}/x.png"], 2, "option -p: expected NAME=VALUE, got 'sigma'"),
        (
            ["gaussian", "-p", "sigma=-1", CAT, "-o", "{tmp}/x.png"],
            2,
            "parameter sigma must be > 0 and ≤ 42.3333, got -1.0",
        ),
        (["gaussian", "-p", "radius=1", CAT, "-o", "{tmp}/x.png"], 2, "takes no parameter 'radius'; it takes sigma"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--dense", "--groups", "3"], 2, "exclude each other"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--groups", "0"], 2, "'-g' / '--groups': 0 is not in the range x>=1"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--padding", "mirror"], 2, "'mirror' is not one of 'zeros'"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--quality", "101"], 2, "101 is not in the range 0<=x<=100"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--stride", "0"], 2, "0 is not in the range x>=1"),
        (["edge", CAT, "-o", "{tmp}/no/such/dir/x.png"], 2, "the folder {tmp}/no/such/dir does not exist"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--bogus"], 2, "No such option '--bogus'"),
        (["edge", CAT, "-o", "{tmp}/x.png", "--format", "gif"], 2, "option --format: unknown format 'gif'"),
        (["{tmp}/bad.yaml", CAT, "-o", "{tmp}/x.png"], 2, "bad.yaml: 'weights' row 2 has 1 numbers, row 1 has 2"),
        (["edge", "{tmp}/fake.jpg", "-o", "{tmp}/x.png"], 1, "fake.jpg: not an image that can be decoded"),
        (["edge", "{tmp}/empty.png", "-o", "{tmp}/x.png"], 1, "empty.png: is empty, no image data"),
        (["edge", CAT, "{tmp}/fake.jpg", "-o", "{tmp}/x.png"], 2, "need -o FOLDER; {tmp}/x.png names a file"),
    ],
)
def test_bad_input_gets_one_line_and_its_exit_status(tmp_path, args, code, message):
    (tmp_path / "bad.yaml").write_text("weights: [[1, 2], [3]]\n")
    (tmp_path / "fake.jpg").write_text("not a jpeg at all")
    (tmp_path / "empty.png").write_bytes(b"")
    before = sorted(os.listdir(tmp_path))
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code
    assert_one_line_error(result.stderr, message.format(tmp=tmp_path))
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temporary file left


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


def test_show_prints_weights_and_counts():
    result = run("show", "sobel")
    assert result.exit_code == 0
    out = result.stdout
    assert "weights 2×3×3, mix depthwise" in out and "combine magnitude" in out
    assert "depthwise conv 3→6 channels" in out and "parameters: 54 weights" in out
    assert "multiply-adds per output pixel: 54" in out
    assert "  kernel 2 of 2:\n    -1  -2  -1\n     0   0   0\n     1   2   1" in out


def test_show_json_parses_and_follows_options():
    record = json.loads(run("show", "edge", "--json", "--channels", "4", "--groups", "4").stdout)
    assert record["name"] == "edge" and record["shape"] == [3, 3]
    assert record["weights"][1] == [-0.3333333, 2.666667, -0.3333333]
    assert record["layer"]["in_channels"] == 4 and record["layer"]["groups"] == 4
    assert record["layer"]["weights"] == 4 * 9 and record["layer"]["multiply_adds_per_pixel"] == 36
    gauss = json.loads(run("show", "gaussian", "-p", "sigma=2", "--json").stdout)
    assert gauss["shape"] == [13, 13] and gauss["parameters"] == {"sigma": 2.0, "size": 0}
    assert abs(sum(map(sum, gauss["weights"])) - 1) < 1e-5


def test_show_errors():
    result = run("show", "sobel", "--channels", "3", "--dense")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "a bank of 2 kernels is applied channel-wise")
    result = run("show", "gaussian", "-p", "sigma=0")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "parameter sigma must be > 0")


@pytest.mark.parametrize(("kernel", "size"), [("sharpen", (34 + 3 * 64 + 22 + 12 + 12, 3 * 64 + 24)),
                                              ("sepia", None), ("kirsch", None)])  # fmt: skip
def test_show_plot_draws_a_picture(tmp_path, kernel, size):
    path = tmp_path / "w.png"
    result = run("show", kernel, "--plot", str(path))
    assert result.exit_code == 0
    picture = np.asarray(PILImage.open(path))
    assert picture.ndim == 3 and picture.shape[2] == 3
    if size:
        assert picture.shape[:2] == size
    # positive weights are drawn red, negative blue
    r, b = picture[..., 0].astype(int), picture[..., 2].astype(int)
    reds, blues = r > b + 20, b > r + 20
    assert reds.any() and (blues.any() or kernel == "sepia")


def test_gallery_sheet_has_every_builtin(tmp_path):
    from convfilter.library import builtin_names

    result = run("gallery", CAT, "-o", str(tmp_path / "sheet.png"), "--width", "60", "--columns", "4")
    assert result.exit_code == 0, result.stderr
    sheet = np.asarray(PILImage.open(tmp_path / "sheet.png"))
    tiles = len(builtin_names()) + 1
    rows = -(-tiles // 4)
    tile_height = round(300 * 60 / 451)
    assert sheet.shape == (8 + rows * (tile_height + 24 + 8), 8 + 4 * (60 + 8), 3)
    # the first tile is the photo scaled down
    original = np.asarray(PILImage.open(CAT).resize((60, tile_height), PILImage.BOX)).astype(int)
    assert np.abs(sheet[8 + 24 : 8 + 24 + tile_height, 8:68].astype(int) - original).mean() < 8


def test_gallery_errors(tmp_path):
    result = run("gallery", str(tmp_path / "missing.png"), "-o", str(tmp_path / "s.png"))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "no such file")
    result = run("gallery", CAT, "-o", str(tmp_path / "s.gif"))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "unknown extension .gif")
    assert os.listdir(tmp_path) == []


@pytest.fixture
def user_folders(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "myblur.yaml").write_text("summary: my blur\nweights: [[1, 1], [1, 1]]\nnormalize: true\n")
    (first / "edge.yaml").write_text("summary: not the classic\nweights: [[1]]\n")
    (second / "myblur.yaml").write_text("summary: second one\nweights: [[1]]\n")
    (second / "broken.yaml").write_text("weights: [[1, 2], [3]]\n")
    np.save(second / "layer0.npy", np.ones((6, 1, 3, 3), np.float32))
    monkeypatch.setenv("CONVFILTER_KERNEL_PATH", f"{first}:{second}:{tmp_path / 'missing'}")
    return first, second


def test_user_kernels_appear_in_list_marked(user_folders):
    first, second = user_folders
    rows = {(r["name"], r["source"]): r for r in json.loads(run("list", "--json").stdout)}
    assert rows[("myblur", f"user: {first / 'myblur.yaml'}")]["shape"] == [2, 2]
    assert ("myblur", f"user: {second / 'myblur.yaml'}") not in rows  # the first folder wins, as in PATH
    assert rows[("edge", f"user: {first / 'edge.yaml'}")]["hidden_by"] == "built-in"
    assert rows[("edge", "built-in")]["shape"] == [3, 3]
    assert "row 2 has 1 numbers, row 1 has 2" in rows[("broken", f"user: {second / 'broken.yaml'}")]["error"]
    assert rows[("layer0", f"user: {second / 'layer0.npy'}")]["shape"] == [6, 1, 3, 3]
    text = run("list").stdout
    assert "hidden by the built-in of that name, use its path" in text and "does not load" in text


def test_user_kernels_load_by_name_and_builtins_win(user_folders, tmp_path):
    result = run("myblur", CAT, "-o", str(tmp_path / "b.png"))
    assert result.exit_code == 0 and "myblur: depthwise conv 3→3 channels, 2×2 kernel" in result.stderr
    assert run("edge", CAT, "-o", str(tmp_path / "e.png"), "-q").exit_code == 0
    assert_matches_golden(tmp_path / "e.png")  # the built-in, not the user's edge.yaml
    result = run("layer0", CAT, "-o", str(tmp_path / "l.npy"), "-q")
    assert result.exit_code == 0 and np.load(tmp_path / "l.npy").shape == (300, 451, 6)


def test_a_file_named_like_a_kernel_in_the_folder_is_not_taken_for_it(tmp_path, monkeypatch):
    (tmp_path / "edge").write_text("not a kernel")
    monkeypatch.chdir(tmp_path)
    assert run("edge", CAT, "-o", "e.png", "-q").exit_code == 0
    assert_matches_golden(tmp_path / "e.png")


def test_npy_weight_against_per_channel_references(tmp_path, rng):
    weight = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)  # groups inferred: 3 / 1 = 3
    np.save(tmp_path / "w.npy", weight)
    result = run(str(tmp_path / "w.npy"), CAT, "-o", str(tmp_path / "out.npy"))
    assert result.exit_code == 0 and "groups=3" in result.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32 and out.shape == (300, 451, 6)
    cat = pixels(CAT).astype(np.float64)
    for o in range(6):
        expected = ndi.correlate(cat[..., o // 2], weight[o, 0].astype(np.float64), mode="mirror")
        np.testing.assert_allclose(out[..., o], expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    assert out.min() < 0 or out.max() > 255  # raw float32, never clipped


def test_npy_two_d_kernel_is_depthwise(tmp_path):
    np.save(tmp_path / "k.npy", np.array([[0, 0, 0], [0, 2, 0], [0, 0, 0]], np.float64))
    assert run(str(tmp_path / "k.npy"), CAT, "-o", str(tmp_path / "o.png"), "-q").exit_code == 0
    np.testing.assert_array_equal(pixels(tmp_path / "o.png"), np.clip(pixels(CAT).astype(int) * 2, 0, 255))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x93NUMPY garbage", "not a readable .npy array"),
        (b"hello", "not a readable .npy array"),
        ("rank3", "has shape (2, 3, 3); give a 2-D [kh, kw] or 4-D [O, C/g, kh, kw] array"),
        ("object", "not a readable .npy array"),
        ("groups", "the weight takes 2 channels per group, which does not divide the image's 3 channels"),
        ("nan", "the weights must be finite numbers within float32's range"),
    ],
)
def test_bad_npy_kernels(tmp_path, content, message):
    path = tmp_path / "k.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "rank3":
        np.save(path, np.ones((2, 3, 3)))
    elif content == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content == "groups":
        np.save(path, np.ones((4, 2, 3, 3)))
    else:
        np.save(path, np.array([[1.0, np.nan]]))
    result = run(str(path), CAT, "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, message)
    assert not (tmp_path / "o.png").exists()


def test_bank_with_combine_none_writes_every_response(tmp_path):
    (tmp_path / "pair.yaml").write_text("weights: [[[1, 0, -1]], [[1, 2, 1]]]\ncombine: none\n")
    result = run(str(tmp_path / "pair.yaml"), CAT, "-o", str(tmp_path / "r.npy"), "-q")
    assert result.exit_code == 0 and np.load(tmp_path / "r.npy").shape == (300, 451, 6)
    result = run(str(tmp_path / "pair.yaml"), CAT, "-o", str(tmp_path / "r.png"))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "a result with 6 channels cannot be written as PNG")
    assert not (tmp_path / "r.png").exists()
