"""The other commands — show and gallery — user kernel folders, and weight files (.npy kernels,
banks), through Click's runner."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
from conftest import CAT, SAMPLES, assert_matches_golden, assert_one_line_error, pixels, run
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from convfilter import KernelError


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


@pytest.mark.parametrize(("kernel", "size"), [("sharpen", (34 + 3 * 64 + 2 * 8, 3 * 64 + 2 * 8)),
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


def test_gallery_and_plot_never_write_over_their_input(tmp_path):
    photo = tmp_path / "in.jpg"
    photo.write_bytes((SAMPLES / "cat.jpeg").read_bytes())
    (tmp_path / "link.jpg").symlink_to(photo)
    np.save(tmp_path / "k.npy", np.ones((3, 3), np.float32))
    before = photo.read_bytes(), (tmp_path / "k.npy").read_bytes()
    for args in (["gallery", photo, "-o", photo], ["gallery", photo, "-o", tmp_path / "link.jpg"],
                 ["show", tmp_path / "k.npy", "--plot", tmp_path / "k.npy"]):  # fmt: skip
        result = run(*args)
        assert result.exit_code == 2
        assert_one_line_error(result.stderr, "is the input; writing over an input is refused")
    assert (photo.read_bytes(), (tmp_path / "k.npy").read_bytes()) == before


# --- hostile kernel files, through the installed command under a memory cap and a time limit

ADDRESS_SPACE = 4 << 30  # bytes: a kernel that allocated what its header claims would fail here


def run_installed(command, args, cwd, env=None, as_nobody=False):
    """The installed command under a 4 GiB address-space cap and a timeout; ``as_nobody`` runs it
    as an unprivileged user (through ``setpriv``, which keeps root's rights for the exec itself:
    the interpreter may live in a folder only root can enter)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    environment = {**os.environ, **(env or {})}
    return subprocess.run([*drop, command, *map(str, args)], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)  # fmt: skip


def npy_header_only(path, shape, descr="<f4"):
    """A ``.npy`` file whose header claims ``shape`` but that holds 16 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    path.write_bytes(header.getvalue() + bytes(16))


@pytest.fixture
def hostile_folder(tmp_path):
    """A user kernel folder holding one good kernel and every kind of file a kernel cannot be."""
    folder = tmp_path / "kernels"
    folder.mkdir()
    (folder / "good.yaml").write_text("summary: fine\nweights: [[1, 2], [3, 4]]\n")
    npy_header_only(folder / "giant.npy", (1 << 40, 1 << 40))
    npy_header_only(folder / "giant4.npy", (1 << 20, 1 << 20, 3, 3))
    (folder / "pagemap.yaml").symlink_to("/proc/self/pagemap")
    (folder / "mem.npy").symlink_to("/proc/self/mem")
    (folder / "folder.yaml").mkdir()
    os.mkfifo(folder / "fifo.yaml")
    (folder / "escape.yaml").write_text('summary: "\\e[2J"\nweights: [[1]]\n')
    (folder / "surrogate.yaml").write_text('summary: "\\ud800"\nweights: [[1]]\n')
    return folder


def test_list_describes_hostile_user_kernels_without_loading_them(hostile_folder, tmp_path, convfilter_command):
    too_long = tmp_path / ("x" * 300)  # is_dir() raises "File name too long" on it
    env = {"CONVFILTER_KERNEL_PATH": f"{tmp_path / 'missing'}:{too_long}:{hostile_folder}"}
    done = run_installed(convfilter_command, ["list", "--json"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    note = "convfilter: note: kernel folder " + str(too_long)[:21]
    assert done.stderr.startswith(note) and done.stderr.count("\n") == 1, done.stderr
    assert "in CONVFILTER_KERNEL_PATH cannot be read (File name too long)" in done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout) if row["source"] != "built-in"}
    assert set(rows) == {"good", "giant", "giant4", "pagemap", "mem", "escape", "surrogate"}  # no folder, no FIFO
    assert rows["good"]["shape"] == [2, 2] and "error" not in rows["good"]
    errors = {name: row["error"].split(": ", 1)[1] for name, row in rows.items() if name != "good"}
    assert errors == {
        "giant": "1099511627776×1099511627776 is larger than 255×255",
        "giant4": "not a readable .npy array (its header's shape (1048576, 1048576, 3, 3) of float32 needs more "
        "than the 16 bytes of data the file holds)",
        "pagemap": "larger than 1 MiB; a kernel file is small",
        "mem": "cannot read (Input/output error)",
        "escape": "'summary' must be one line of printable text; it holds '\\x1b'",
        "surrogate": "'summary' must be one line of printable text; it holds '\\ud800'",
    }
    text = run_installed(convfilter_command, ["list"], tmp_path, env)
    assert text.returncode == 0 and text.stderr == done.stderr
    assert "\x1b" not in text.stdout and len(text.stdout.splitlines()) == len(json.loads(done.stdout))


def test_a_fifo_or_a_folder_as_the_kernel_is_refused_without_waiting(hostile_folder, convfilter_command):
    for name in ("fifo.yaml", "folder.yaml"):
        done = run_installed(convfilter_command, [name, CAT, "-o", "o.png"], hostile_folder)
        assert done.returncode == 2
        assert_one_line_error(done.stderr, f"kernel file {name}: not a file")
    assert not (hostile_folder / "o.png").exists()


def test_a_fifo_put_in_place_after_the_check_does_not_block_the_open(tmp_path, monkeypatch):
    import stat
    import threading

    from convfilter import library

    fifo = tmp_path / "k.yaml"
    os.mkfifo(fifo)
    answers, is_regular = iter([True]), stat.S_ISREG  # the first check (the stat) sees a regular file
    monkeypatch.setattr(library.stat, "S_ISREG", lambda mode: next(answers, None) or is_regular(mode))
    outcome = []

    def load():
        try:
            library.load_kernel(fifo)
        except KernelError as error:
            outcome.append(str(error))

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert outcome == [f"kernel file {fifo}: not a file"]


def test_unreadable_folders_and_files(convfilter_command):
    # root reads anything: the commands then run as an unprivileged user, in a folder of their
    # own that they can enter (pytest's folders are private to their owner)
    as_nobody = os.geteuid() == 0
    if as_nobody and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to become another user")
    base = Path(tempfile.mkdtemp(prefix="convfilter-unreadable-"))
    base.chmod(0o755)
    locked, readable = base / "locked", base / "readable"
    locked.mkdir()
    readable.mkdir()
    (locked / "mine.yaml").write_text("weights: [[1]]\n")
    (readable / "theirs.yaml").write_text("weights: [[2]]\n")
    secret = readable / "secret.yaml"
    secret.write_text("weights: [[3]]\n")
    secret.chmod(0)
    locked.chmod(0)
    env = {"CONVFILTER_KERNEL_PATH": f"{locked}:{readable}"}
    unread = f"kernel folder {locked} in CONVFILTER_KERNEL_PATH cannot be read (Permission denied)"
    try:
        listed = run_installed(convfilter_command, ["list"], base, env, as_nobody)
        assert listed.returncode == 0 and listed.stderr == f"convfilter: note: {unread}\n"
        assert "theirs " in listed.stdout and "mine" not in listed.stdout
        assert f"({'user: ' + str(secret)}; does not load: kernel file {secret}: cannot read" in listed.stdout
        shown = run_installed(convfilter_command, ["show", "theirs"], base, env, as_nobody)
        assert shown.returncode == 0 and "weights 1×1" in shown.stdout  # the other folders still serve
        for args, message in (
            (["mine"], f"unknown kernel 'mine': give a built-in name (see 'convfilter list') or a path to a .yaml "
                       f"or .npy file ({unread})"),
            (["secret"], f"kernel file {secret}: cannot read (Permission denied)"),
            ([locked / "mine.yaml"], f"kernel file {locked / 'mine.yaml'}: cannot read (Permission denied)"),
        ):  # fmt: skip
            done = run_installed(convfilter_command, [*args, CAT, "-o", "o.png"], base, env, as_nobody)
            assert done.returncode == 2
            assert_one_line_error(done.stderr, message)
        assert not (base / "o.png").exists()
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize(
    "variant",
    ["fortran", "big-endian", "float16", "int16", "uint8", "version-2", "trailing-bytes", "float64"],
)
def test_npy_kernels_of_every_numeric_layout_load_as_numpy_reads_them(tmp_path, rng, variant):
    from convfilter import load_kernel

    weights = rng.standard_normal((2, 3, 4, 5)) * 10
    array = {"fortran": np.asfortranarray(weights.astype(np.float32)), "big-endian": weights.astype(">f4"),
             "float16": weights.astype(np.float16), "int16": weights.astype(np.int16),
             "uint8": np.abs(weights).astype(np.uint8)}.get(variant, weights)  # fmt: skip
    path = tmp_path / "k.npy"
    with open(path, "wb") as stream:
        np.lib.format.write_array(stream, array, version=(2, 0) if variant == "version-2" else None)
        if variant == "trailing-bytes":
            stream.write(b"more")
    kernel = load_kernel(path)
    assert kernel.weights.dtype == np.float32 and kernel.weights.flags.c_contiguous
    np.testing.assert_array_equal(kernel.weights, np.load(path).astype(np.float32))


def test_show_refuses_a_layer_too_large_and_prints_a_large_depthwise_one(tmp_path):
    result = run("show", "edge", "--channels", "100000", "--plot", str(tmp_path / "w.png"))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "for 100000 channels the layer would hold 90000000000 weights")
    assert not (tmp_path / "w.png").exists()  # refused before the picture is drawn
    result = run("show", "edge", "--channels", "100000", "--depthwise")
    assert result.exit_code == 0 and "depthwise conv 100000→100000 channels" in result.stdout
    result = run("show", "sobel", "--channels", "10000000")  # a bank of 2: 2·C kernels
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "for 10000000 channels the layer would hold 180000000 weights")


_dims = st.one_of(st.integers(-3, 300), st.integers(0, 2**80), st.booleans(), st.floats(0, 9), st.text(max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    descr=st.sampled_from(["<f4", ">f8", "<f2", "|u1", "<i8", "|b1", "<c8", "|O", "<U3", "|V4", "<M8[s]", "f4", 3]),
    shape=st.one_of(st.lists(_dims, max_size=6).map(tuple), _dims),
    fortran_order=st.sampled_from([False, True, 0, None]),
    data=st.binary(max_size=300),
)
def test_any_npy_header_is_judged_before_its_data_is_allocated(descr, shape, fortran_order, data):
    from convfilter.kernel import Kernel
    from convfilter.library import read_npy

    header = repr({"descr": descr, "fortran_order": fortran_order, "shape": shape}).encode("latin-1", "replace")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    blob = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data
    try:
        array = read_npy(blob, "kernel file k.npy")
    except KernelError as error:
        assert str(error).startswith("kernel file k.npy: ") and "\n" not in str(error)
        return
    assert array.nbytes <= len(data) and isinstance(shape, tuple) and len(shape) in (2, 4)
    assert isinstance(kernel_or_error(array), (Kernel, KernelError))


def kernel_or_error(array):
    from convfilter.kernel import kernel_from_array

    try:
        return kernel_from_array(array, "k", "kernel file k.npy")
    except KernelError as error:
        return error


@pytest.mark.parametrize(
    "write",
    [
        lambda path: np.save(path.with_suffix(".npy"), np.ones((64, 3, 7, 7), np.float32)),
        lambda path: path.with_suffix(".yaml").write_text("generator: {type: gaussian, params: {size: 255}}\n"),
    ],
    ids=["64x3x7x7", "255x255"],
)
def test_show_plot_of_a_big_bank_stays_a_picture_viewers_open(tmp_path, write):
    """A [64, 3, 7, 7] layer or a 255×255 kernel: a grid of at most 4000 px a side."""
    write(tmp_path / "k")
    kernel = next(tmp_path.glob("k.*"))
    result = run("show", kernel, "--plot", tmp_path / "w.png")
    assert result.exit_code == 0, result.stderr
    with PILImage.open(tmp_path / "w.png") as picture:
        assert max(picture.size) <= 4000 and min(picture.size) >= 200


# --- kernels written out and model files, as show prints them


def test_show_prints_a_matrix_literal_and_an_imagemagick_string():
    result = run("show", "[[0,-1,0],[-1,5,-1],[0,-1,0]]")
    assert result.exit_code == 0, result.output
    assert "source: matrix '[[0,-1,0],[-1,5,-1],[0,-1,0]]'" in result.stdout
    result = run("show", "3x3: 1,2,1 2,4,2 1,2,1", "--json")
    assert json.loads(result.stdout)["weights"] == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]


def test_show_of_a_model_without_a_layer_lists_its_layers(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"stem.weight": torch.zeros(4, 3, 3, 3), "stem.bias": torch.zeros(4), "dw.weight": torch.zeros(4, 1, 5, 5)}
    torch.save(state, tmp_path / "net.pt")
    result = run("show", tmp_path / "net.pt")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "net.pt: 2 convolution layers"
    assert lines[2].split() == ["→*", "stem.weight", "4×3×3×3", "-", "-", "-", "-", "yes", "112"]
    # groups are not stored: one channel per group may be a gray image's
    assert lines[3].split() == ["*", "dw.weight", "4×1×5×5", "-", "-", "-", "-", "no", "100"]
    result = run("show", f"{tmp_path / 'net.pt'}:dw", "--channels", "4")
    assert result.exit_code == 0, result.output
    assert "dw.weight: depthwise conv 4→4 channels, 5×5 kernel, groups=4, padding=zeros" in result.stdout


def test_show_of_a_missing_model_layer_is_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"stem.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "net.pt")
    result = run("show", f"{tmp_path / 'net.pt'}:head")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "no tensor 'head'; the convolution weights are stem.weight")


def test_params_output_size_is_pytorchs_for_random_layers():
    """``params --size`` with stride, padding and dilation: the output shape F.conv2d gives."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(20261126)
    for _ in range(150):
        kh, kw, sy, sx, dy, dx = (int(v) for v in rng.integers(1, 5, 6))
        py, px = (int(v) for v in rng.integers(0, 4, 2))
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        args = ["params", "--in-channels", "2", "--out-channels", "3", "--kernel-size", f"{kh}x{kw}"]
        args += ["--size", f"{width}x{height}", "--stride", f"{sy},{sx}", "--padding", f"{py},{px}"]
        result = run(*args, "--dilation", f"{dy},{dx}", "--json")
        try:
            shape = F.conv2d(
                torch.zeros(1, 2, height, width), torch.zeros(3, 2, kh, kw), None, (sy, sx), (py, px), (dy, dx)
            ).shape
        except RuntimeError:  # the kernel does not fit: one line, exit 2
            assert result.exit_code == 2 and "does not fit" in result.stderr, result.stderr
            continue
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["size"] == [shape[3], shape[2]]


def test_show_plot_of_a_first_layer_draws_rgb_patches(tmp_path):
    """[O, 3, kh, kw]: one RGB patch per filter, each stretched on its own (the classic picture)."""
    weight = np.zeros((4, 3, 2, 2), np.float32)
    weight[0, 0] = 1.0  # filter 0 sees red only: a red patch
    weight[1, 2] = 5.0  # filter 1 blue, however strong
    weight[2] = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    np.save(tmp_path / "first.npy", weight)
    result = run("show", tmp_path / "first.npy", "--plot", tmp_path / "w.png")
    assert result.exit_code == 0, result.stderr
    picture = np.asarray(PILImage.open(tmp_path / "w.png").convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in picture}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours  # pure red and pure blue patches
