"""The engine against an explicit-loop reference, PyTorch and SciPy, and its properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from conftest import assert_close, reference_conv

from convfilter import UsageError, convolve
from convfilter.engine import Convolution, geometry

MODES = ["zeros", "reflect", "replicate", "circular"]
SHAPES = [(1, 1), (3, 3), (2, 2), (4, 3), (2, 5)]  # 1×1, odd, even, rectangular
GROUPS = [1, 2, 4]  # with 4 input channels: dense, grouped, depthwise
STRIDE_DILATION = [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 1), (2, 2)), ((2, 1), (1, 3))]


def _image(rng, dtype, shape=(6, 7, 4)):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("kernel_size", SHAPES)
@pytest.mark.parametrize(("stride", "dilation"), STRIDE_DILATION)
def test_matches_loop_reference(padding_mode, groups, kernel_size, stride, dilation, rng):
    x = _image(rng, np.uint8)
    weight = rng.standard_normal((8, 4 // groups, *kernel_size)).astype(np.float32)
    expected = reference_conv(x, weight, stride=stride, dilation=dilation, groups=groups, padding_mode=padding_mode)
    got = convolve(x, weight, stride=stride, dilation=dilation, groups=groups, padding_mode=padding_mode)
    assert got.dtype == np.float32
    assert_close(got, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("padding_mode", MODES)
def test_dtypes_match_loop_reference(dtype, padding_mode, rng):
    x = _image(rng, dtype, (5, 6, 3))
    weight = rng.standard_normal((3, 1, 3, 3))
    expected = reference_conv(x, weight, groups=3, padding_mode=padding_mode)
    got = convolve(x, weight, groups=3, padding_mode=padding_mode)
    assert_close(got, expected)


@pytest.mark.parametrize("padding", ["valid", 0, 1, (2, 1)])
def test_explicit_padding_matches_loop_reference(padding, rng):
    x = _image(rng, np.float32, (7, 8, 2))
    weight = rng.standard_normal((2, 2, 3, 4))
    py, px = {"valid": (0, 0), 0: (0, 0), 1: (1, 1)}.get(padding, padding)
    expected = reference_conv(x, weight, padding_mode="reflect", pads=(py, py, px, px))
    got = convolve(x, weight, padding=padding, padding_mode="reflect")
    assert_close(got, expected)


def _torch_conv(x, weight, bias, stride, dilation, groups, padding_mode, flip=False):
    """PyTorch's result for our "same" padding: pad as PyTorch's padding='same' does, then
    convolve with the stride (PyTorch itself refuses 'same' with a stride)."""
    kh, kw = weight.shape[2:]
    ty, tx = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).permute(2, 0, 1)[None]
    mode = {"zeros": "constant"}.get(padding_mode, padding_mode)
    t = F.pad(t, (tx // 2, tx - tx // 2, ty // 2, ty - ty // 2), mode=mode)
    w = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
    if flip:
        w = torch.flip(w, dims=(2, 3))
    b = None if bias is None else torch.from_numpy(np.asarray(bias, np.float32))
    out = F.conv2d(t, w, b, stride=stride, dilation=dilation, groups=groups)
    return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize("groups", [1, 3, 6])
@pytest.mark.parametrize("kernel_size", [(3, 3), (4, 4), (5, 2), (1, 1), (7, 7)])
@pytest.mark.parametrize(("stride", "dilation"), STRIDE_DILATION)
def test_matches_torch(padding_mode, groups, kernel_size, stride, dilation, rng):
    x = rng.integers(0, 256, (29, 31, 6), dtype=np.uint8)
    weight = rng.standard_normal((12, 6 // groups, *kernel_size)).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32)
    expected = _torch_conv(x, weight, bias, stride, dilation, groups, padding_mode)
    got = convolve(x, weight, bias, stride=stride, dilation=dilation, groups=groups, padding_mode=padding_mode)
    assert_close(got, expected)


@pytest.mark.parametrize("padding_mode", MODES)
def test_same_padding_equals_torch_padding_same(padding_mode, rng):
    # the even kernel is the interesting case: PyTorch puts the extra padding at the bottom/right
    x = rng.random((9, 10, 2), dtype=np.float32)
    weight = rng.standard_normal((2, 2, 4, 2)).astype(np.float32)
    conv = torch.nn.Conv2d(2, 2, (4, 2), padding="same", padding_mode=padding_mode, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        expected = conv(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert_close(convolve(x, weight, padding_mode=padding_mode), expected)


def test_flip_bias_and_uint16_match_torch(rng):
    x = rng.integers(0, 65536, (20, 17, 3), dtype=np.uint16)
    weight = rng.standard_normal((6, 1, 3, 5)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32) * 100
    expected = _torch_conv(x, weight, bias, (1, 1), (1, 1), 3, "reflect", flip=True)
    got = convolve(x, weight, bias, groups=3, padding_mode="reflect", flip=True)
    assert_close(got, expected)
    assert not np.allclose(got, convolve(x, weight, bias, groups=3, padding_mode="reflect"), atol=1)


@pytest.mark.parametrize(("padding_mode", "scipy_mode"), [("zeros", "constant"), ("reflect", "mirror"),
                                                          ("replicate", "nearest"), ("circular", "wrap")])  # fmt: skip
def test_depthwise_matches_scipy(padding_mode, scipy_mode, rng):
    x = rng.random((40, 50, 3)).astype(np.float32)
    kernel = rng.standard_normal((5, 5))
    expected = np.stack([ndi.correlate(x[..., c].astype(np.float64), kernel, mode=scipy_mode) for c in range(3)], -1)
    got = convolve(x, np.broadcast_to(kernel, (3, 1, 5, 5)), groups=3, padding_mode=padding_mode)
    assert_close(got, expected)


def test_flip_is_mathematical_convolution(rng):
    x = rng.random((12, 13)).astype(np.float32)
    kernel = rng.standard_normal((3, 4))
    # scipy.ndimage.convolve centres an even kernel differently; odd-size check against it
    k3 = kernel[:, :3]
    expected = ndi.convolve(x.astype(np.float64), k3, mode="constant")
    assert_close(convolve(x, k3[None, None], flip=True)[..., 0], expected)


def test_linearity(rng):
    a, b = rng.random((11, 9, 3)), rng.random((11, 9, 3))
    w = rng.standard_normal((3, 3, 3, 3))
    left = convolve(2.5 * a - 1.5 * b, w, padding_mode="reflect")
    right = 2.5 * convolve(a, w, padding_mode="reflect") - 1.5 * convolve(b, w, padding_mode="reflect")
    assert_close(left, right)


@pytest.mark.parametrize("padding_mode", MODES)
def test_identity_kernel_returns_the_image(padding_mode, rng):
    x = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    for size in [(1, 1), (3, 3), (5, 3)]:
        w = np.zeros((3, 1, *size))
        w[:, 0, size[0] // 2, size[1] // 2] = 1
        np.testing.assert_array_equal(convolve(x, w, groups=3, padding_mode=padding_mode), x.astype(np.float32))


def test_groups_equal_separate_convolutions_concatenated(rng):
    x = rng.random((10, 12, 6)).astype(np.float32)
    w = rng.standard_normal((9, 2, 3, 3)).astype(np.float32)
    grouped = convolve(x, w, groups=3, padding_mode="circular")
    parts = [convolve(x[..., 2 * g : 2 * g + 2], w[3 * g : 3 * g + 3], padding_mode="circular") for g in range(3)]
    assert_close(grouped, np.concatenate(parts, axis=-1))


def test_dense_is_sum_of_depthwise_responses(rng):
    # every output channel of a dense layer sums the kernel's response over all inputs
    x = rng.random((8, 8, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    dense = convolve(x, np.broadcast_to(k, (3, 3, 3, 3)))
    depthwise = convolve(x, np.broadcast_to(k, (3, 1, 3, 3)), groups=3)
    for o in range(3):
        assert_close(dense[..., o], depthwise.sum(-1))


@pytest.mark.parametrize("strip_rows", [1, 2, 3, 7, 1000])
def test_strips_give_the_same_result(strip_rows, rng):
    x = rng.random((23, 11, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 3)).astype(np.float32)
    conv = Convolution(x, w, stride=2, padding_mode="reflect")
    whole = conv.run()
    pieces = np.concatenate([block.copy() for _, block in conv.strips(strip_rows)])
    np.testing.assert_array_equal(pieces, whole)


def test_many_input_channels_use_the_matrix_path(rng):
    x = rng.random((9, 10, 16)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    assert_close(convolve(x, w, padding_mode="replicate"), reference_conv(x, w, padding_mode="replicate"))


def test_two_dimensional_image_is_one_channel(rng):
    x = rng.random((6, 6)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3))
    assert_close(convolve(x, w), reference_conv(x[..., None], w))


@pytest.mark.parametrize(
    ("make_weight", "groups", "plan", "engine"),
    [
        (lambda rng: np.broadcast_to(rng.standard_normal((15, 15)), (3, 1, 15, 15)), 3, "RowMatmul", "numpy"),
        (lambda rng: np.broadcast_to(rng.standard_normal((31, 31)), (3, 1, 31, 31)), 3, "FFT", "numpy"),
        (lambda rng: np.broadcast_to(np.outer(*rng.standard_normal((2, 15))), (3, 1, 15, 15)), 3, "Separable",
         "numpy"),
        (lambda rng: rng.standard_normal((3, 3, 3, 3)), 1, "General", "numpy"),
        (lambda rng: rng.standard_normal((3, 3, 3, 3)), 1, "PerPair", "auto"),
        (lambda rng: rng.standard_normal((3, 1, 9, 9)), 3, "General", "numpy"),
        (lambda rng: np.broadcast_to(rng.standard_normal((31, 31)), (3, 1, 31, 31)), 3, "NativeDirect", "auto"),
        (lambda rng: np.broadcast_to(np.outer(*rng.standard_normal((2, 15))), (3, 1, 15, 15)), 3, "NativeSeparable",
         "auto"),
        (lambda rng: np.full((3, 1, 63, 63), 1 / 63**2), 3, "NativeBox", "auto"),
    ],
    ids=["rowmatmul-15x15", "fft-31x31", "separable-15x15", "general-dense-3x3", "per-pair-dense-3x3",
         "general-depthwise-9x9",
         "native-direct-31x31", "native-separable-15x15", "native-box-63x63"],
)  # fmt: skip
def test_memory_is_the_output_plus_64_mib_on_12_megapixels(make_weight, groups, plan, engine, rng):
    # an H·W·C·kh·kw window array would take 2.7 GB for 15×15 and 10 GB for 31×31
    import tracemalloc

    x = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    w = make_weight(rng).astype(np.float32)
    conv = Convolution(x, w, groups=groups, padding_mode="reflect", engine=engine)
    assert type(getattr(conv.plan, "spatial", conv.plan)).__name__ == plan
    tracemalloc.start()
    out = conv.run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= out.nbytes + 64 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {out.nbytes / 2**20:.1f} MiB result"


def test_geometry_same_even_kernel_pads_bottom_right():
    g = geometry(10, 10, (4, 2), dilation=(1, 3))
    assert (g.top, g.bottom, g.left, g.right) == (1, 2, 1, 2)
    assert (g.out_height, g.out_width) == (10, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": 2}, r"groups=2 must divide both the 3 input and 3 output channels; try one of 1, 3"),
        ({"groups": 0}, r"groups must be a positive integer, got 0"),
        ({"stride": 0}, r"stride must be from 1 to 2147483647, got 0"),
        ({"dilation": (1, 0)}, r"dilation must be from 1 to 2147483647, got \(1, 0\)"),
        ({"padding": "full"}, r"padding must be 'same', 'valid'"),
        ({"padding": -1}, r"padding must be from 0 to 2147483647, got -1"),
        ({"padding_mode": "mirror"}, r"padding_mode must be one of zeros, reflect, replicate, circular"),
        ({"bias": [1, 2]}, r"bias must hold 1 or 3 numbers"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message, rng):
    with pytest.raises(UsageError, match=message):
        convolve(np.zeros((5, 5, 3)), np.ones((3, 1 if kwargs.get("groups") == 3 else 3, 3, 3)), **kwargs)


def test_weight_channels_must_match_the_image():
    with pytest.raises(UsageError, match=r"takes 2 input channels per group, so 2 with groups=1, but the image has 3"):
        convolve(np.zeros((5, 5, 3)), np.ones((3, 2, 3, 3)))


def test_too_small_image_is_an_error():
    with pytest.raises(UsageError, match=r"a 2×2 image is too small for a 3×3 kernel"):
        convolve(np.zeros((2, 2, 1)), np.ones((1, 1, 3, 3)), padding="valid")


def test_rejects_non_numeric_images():
    with pytest.raises(UsageError, match=r"must hold integers or floats, got dtype complex128"):
        convolve(np.zeros((3, 3, 1), complex), np.ones((1, 1, 1, 1)))
    with pytest.raises(UsageError, match=r"must be 4-D"):
        convolve(np.zeros((3, 3, 1)), np.ones((3, 3)))


def test_strips_run_in_the_callers_thread_when_the_pool_cannot_start(rng, monkeypatch):
    # an address-space limit with no room for another thread's stack: no strip is lost or run twice
    import threading

    from convfilter.engine import pool

    start = threading.Thread.start

    def refuse(self):
        if self.name.startswith(pool.POOL_PREFIX):
            raise RuntimeError("can't start new thread")
        start(self)

    x = rng.standard_normal((97, 61, 3)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    expected = convolve(x, weight, padding_mode="reflect")
    monkeypatch.setattr(pool, "_pools", {})
    monkeypatch.setattr(threading.Thread, "start", refuse)
    got = Convolution(x, weight, padding_mode="reflect").run(threads=2, strip_rows=7)
    np.testing.assert_array_equal(got, expected)
    assert pool._pools == {}  # nothing half started is kept
