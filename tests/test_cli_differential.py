"""Pixels out of the command line are PyTorch's result rounded and saturated: random layers
through ``filter_pixels``, and the installed command on real images of odd sizes with strides,
dilations and no padding."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import SAMPLES
from differential import Config, reference
from PIL import Image

from convfilter import UsageError, load_kernel
from convfilter.channels import common_divisors
from convfilter.kernel import Kernel
from convfilter.pipeline import filter_pixels

MODES = ("zeros", "reflect", "replicate", "circular", "valid")


def _pixels_from(expected: np.ndarray, dtype) -> np.ndarray:
    return np.clip(np.rint(expected), 0, np.iinfo(dtype).max)


def assert_rounded_equal(got: np.ndarray, expected: np.ndarray, dtype) -> None:
    """``got`` equals ``expected`` rounded and saturated; a value within float32 rounding of a
    half (x.5) may go either way."""
    want = _pixels_from(expected, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = np.abs(got.astype(np.float64) - want)
    near_half = np.abs(np.abs(expected - np.floor(expected)) - 0.5) <= 1e-4 * max(1.0, np.abs(expected).max())
    assert diff.max(initial=0) <= 1
    assert np.all((diff == 0) | near_half), f"{int((diff > 0).sum())} pixels differ"


def _draw(rng: np.random.Generator) -> tuple[Config, Kernel]:
    channels, out_channels = (int(v) for v in rng.choice([1, 3], 2))
    groups = int(rng.choice(common_divisors(channels, out_channels)))
    kh, kw = (int(v) for v in rng.integers(1, 8, 2))
    weight = rng.standard_normal((out_channels, channels // groups, kh, kw)).astype(np.float32) / (kh * kw) ** 0.5
    if rng.random() < 0.3:  # one kernel for every channel pair: the factored plans
        weight[:] = weight[0, 0]
    bias = tuple(float(b) for b in rng.normal(0, 20, out_channels)) if rng.random() < 0.5 else ()
    mode = MODES[rng.integers(len(MODES))]
    stride, dilation = (tuple(int(v) for v in rng.integers(1, 4, 2)) for _ in range(2))
    dtype = np.uint8 if rng.random() < 0.7 else np.uint16
    top = np.iinfo(dtype).max
    shape = (int(rng.integers(1, 41)), int(rng.integers(1, 41)), channels)
    x = rng.integers(0, top + 1, shape, dtype=dtype)
    flip = bool(rng.integers(2))
    kernel = Kernel(
        name="k", source="kernel k", weights=weight, mix=groups, bias=bias, stride=stride, dilation=dilation,
        flip=flip, padding="valid" if mode == "valid" else "same", padding_mode="zeros" if mode == "valid" else mode,
    )  # fmt: skip
    cfg = Config(
        x=x, weight=weight.astype(np.float64), bias=np.array(bias) if bias else None, stride=stride,
        padding="valid" if mode == "valid" else "same", dilation=dilation, groups=groups,
        mode="zeros" if mode == "valid" else mode, flip=flip, threads=2, strip_rows=None, form="random",
    )  # fmt: skip
    return cfg, kernel


@pytest.mark.parametrize("seed", range(6))
def test_filter_pixels_gives_pytorchs_pixels(seed):
    rng = np.random.default_rng([20261126, seed])
    for _ in range(60):
        cfg, kernel = _draw(rng)
        try:
            expected = reference(cfg)
        except RuntimeError:  # PyTorch refuses (the image is smaller than the kernel's reach)
            with pytest.raises(UsageError, match="too small for a"):
                filter_pixels(cfg.x, kernel, "png", has_alpha=False)
            continue
        got, _ = filter_pixels(cfg.x, kernel, "png", has_alpha=False)
        assert got.dtype == cfg.x.dtype
        assert_rounded_equal(got, expected, cfg.x.dtype)


@pytest.mark.parametrize(
    ("args", "image"),
    [(["box", "-p", "size=2", "--stride", "3"], "coffee.png"), (["identity", "--stride", "2"], "camera.png")],
    ids=["box-2-stride-3", "identity-stride-2"],
)
def test_the_commands_that_crashed_give_pytorchs_pixels(convfilter_command, tmp_path, args, image):
    done = subprocess.run(
        [convfilter_command, args[0], SAMPLES / image, "-o", tmp_path / "out.png", "-q", *args[1:]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    x = np.asarray(Image.open(SAMPLES / image))
    x = x[..., None] if x.ndim == 2 else x
    params = dict(a.split("=") for a in args[2:3]) if args[1] == "-p" else {}
    kernel = load_kernel(args[0], params)
    layer = kernel.layer(x.shape[2])
    cfg = Config(
        x=x, weight=layer.weight.astype(np.float64), bias=layer.bias, stride=int(args[-1]), padding="same",
        dilation=1, groups=layer.groups, mode=kernel.padding_mode, flip=False, threads=2, strip_rows=None,
        form="random",
    )  # fmt: skip
    got = np.asarray(Image.open(tmp_path / "out.png"))
    assert_rounded_equal(got.reshape(*got.shape[:2], -1), reference(cfg), np.uint8)


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    """The cat as PNG (451×300 upright: 300 wide, 451 high), a 37×1 column and a 1×53 row."""
    folder = tmp_path_factory.mktemp("odd")
    cat = np.asarray(Image.open(SAMPLES / "cat.jpeg").convert("RGB"))
    images = {"cat.png": cat, "column.png": cat[100:137, 150:151], "row.png": cat[200:201, 10:63]}
    for name, pixels in images.items():
        Image.fromarray(np.ascontiguousarray(pixels)).save(folder / name)
    return folder


OPTIONS = [
    ["--stride", "2"],
    ["--stride", "3"],
    ["--dilation", "2"],
    ["--dilation", "3", "--stride", "2"],
    ["--padding", "valid"],
    ["--padding", "valid", "--stride", "2", "--dilation", "2"],
    ["--padding", "circular", "--stride", "4"],
]


@pytest.mark.parametrize("image", ["cat.png", "column.png", "row.png"])
@pytest.mark.parametrize("kernel_name", ["sharpen", "edge", "box"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "".join(o).replace("--", "-"))
def test_installed_command_gives_pytorchs_pixels(convfilter_command, odd_images, tmp_path, image, kernel_name, options):
    x = np.asarray(Image.open(odd_images / image).convert("RGB"))
    layer = load_kernel(kernel_name).layer(3)
    padding = options[options.index("--padding") + 1] if "--padding" in options else load_kernel(kernel_name).border
    stride = int(options[options.index("--stride") + 1]) if "--stride" in options else 1
    dilation = int(options[options.index("--dilation") + 1]) if "--dilation" in options else 1
    cfg = Config(
        x=x, weight=layer.weight.astype(np.float64), bias=layer.bias, stride=stride,
        padding="valid" if padding == "valid" else "same", dilation=dilation, groups=layer.groups,
        mode="zeros" if padding == "valid" else padding, flip=False, threads=2, strip_rows=None, form="random",
    )  # fmt: skip
    out = tmp_path / "out.png"
    done = subprocess.run(
        [convfilter_command, kernel_name, odd_images / image, "-o", out, "-q", *options],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    try:
        expected = reference(cfg)
    except RuntimeError:  # the kernel does not fit: one line, exit 2, nothing written
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("convfilter: error: ") and done.stderr.count("\n") == 1, done.stderr
        assert not out.exists()
        return
    assert done.returncode == 0, done.stderr
    assert_rounded_equal(np.asarray(Image.open(out).convert("RGB")), expected, np.uint8)


def test_non_finite_pixels_become_pixels_quietly(convfilter_command, tmp_path):
    # NaN has no pixel value: 0; infinities saturate; no warning reaches standard error
    x = np.full((9, 10, 3), 100.0, np.float32)
    x[2, 2, 0], x[6, 6, 1], x[4, 8, 2] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [convfilter_command, "identity", tmp_path / "x.npy", "-o", tmp_path / "out.png", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    expected = np.full((9, 10, 3), 100, np.uint8)
    expected[2, 2, 0], expected[6, 6, 1], expected[4, 8, 2] = 0, 255, 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)
