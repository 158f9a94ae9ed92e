"""The other commands — show and gallery — user kernel folders, and weight files (.npy kernels,
banks), through Click's runner."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.ndimage as ndi
from conftest import CAT, SAMPLES, assert_matches_golden, assert_one_line_error, pixels, run
from PIL import Image as PILImage


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
