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
from convfilter.engine.plan import Factored
from convfilter.engine.spatial import FFT, Direct, RowMatmul, Scratch, Separable
from convfilter.engine.taps import General, TapMatmul

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
    ("make_weight", "groups", "plan"),
    [
        (lambda rng: np.broadcast_to(rng.standard_normal((15, 15)), (3, 1, 15, 15)), 3, "RowMatmul"),
        (lambda rng: np.broadcast_to(rng.standard_normal((31, 31)), (3, 1, 31, 31)), 3, "FFT"),
        (lambda rng: np.broadcast_to(np.outer(*rng.standard_normal((2, 15))), (3, 1, 15, 15)), 3, "Separable"),
        (lambda rng: rng.standard_normal((3, 3, 3, 3)), 1, "General"),
        (lambda rng: rng.standard_normal((3, 1, 9, 9)), 3, "General"),
    ],
    ids=["rowmatmul-15x15", "fft-31x31", "separable-15x15", "general-dense-3x3", "general-depthwise-9x9"],
)
def test_memory_is_the_output_plus_64_mib_on_12_megapixels(make_weight, groups, plan, rng):
    # an H·W·C·kh·kw window array would take 2.7 GB for 15×15 and 10 GB for 31×31
    import tracemalloc

    x = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    w = make_weight(rng).astype(np.float32)
    conv = Convolution(x, w, groups=groups, padding_mode="reflect")
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


def _kernels(rng):
    """One weight per fast path, with the plan each should get."""
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    g = np.exp(-((np.arange(7) - 3) ** 2) / 4.0)
    gauss = np.outer(g, g) / np.outer(g, g).sum()
    rank2 = np.outer(rng.standard_normal(9), rng.standard_normal(9)) + np.outer(rng.standard_normal(9), np.ones(9))
    mix = rng.standard_normal((3, 3))
    return {
        "depthwise-direct": (np.broadcast_to(sharpen, (3, 1, 3, 3)), 3, 3, ("factored", None, None, Direct)),
        "depthwise-scaled": (
            sharpen * np.array([1, 2, -3])[:, None, None, None],
            3,
            3,
            ("factored", None, "post", None),
        ),
        "dense-edge": (np.broadcast_to(sharpen, (3, 3, 3, 3)), 1, 3, ("factored", "pre", "post", Direct)),
        "mix-after": (mix[:, :, None, None] * sharpen, 1, 3, ("factored", None, "post", None)),
        "mix-before": (
            rng.standard_normal((2, 4))[:, :, None, None] * sharpen,
            1,
            4,
            ("factored", "pre", None, None),
        ),
        "gray-1x1": (np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1), 1, 3, ("factored", "pre", None, Direct)),
        "separable-1": (np.broadcast_to(gauss, (3, 1, 7, 7)), 3, 3, ("factored", None, None, Separable)),
        "separable-2": (np.broadcast_to(rank2, (2, 1, 9, 9)), 2, 2, ("factored", None, None, None)),
        "rowmatmul": (
            np.broadcast_to(rng.standard_normal((5, 4)), (3, 1, 5, 4)),
            3,
            3,
            ("factored", None, None, RowMatmul),
        ),
        "fft": (np.broadcast_to(rng.standard_normal((25, 23)), (3, 1, 25, 23)), 3, 3, ("factored", None, None, FFT)),
        "general": (rng.standard_normal((6, 3, 3, 3)), 1, 3, ("taps",)),
        "bank": (np.tile(rng.standard_normal((2, 1, 3, 3)), (3, 1, 1, 1)), 3, 3, ("taps",)),
    }


PATHS = list(_kernels(np.random.default_rng(0)))


@pytest.mark.parametrize("path", PATHS)
def test_each_fast_path_is_chosen_where_expected(path, rng):
    weight, groups, channels, expected = _kernels(rng)[path]
    conv = Convolution(np.zeros((40, 40, channels), np.uint8), weight, groups=groups)
    if expected[0] == "taps":
        assert isinstance(conv.plan, (General, TapMatmul))
        return
    assert isinstance(conv.plan, Factored)
    assert (conv.plan.pre is not None, conv.plan.post is not None) == (expected[1] == "pre", expected[2] == "post")
    if expected[3] is not None:
        assert isinstance(conv.plan.spatial, expected[3])


@pytest.mark.parametrize("method", ["separable-1", "separable-2", "rowmatmul", "fft"])
@pytest.mark.parametrize(("row_step", "dilation"), [(1, (1, 1)), (2, (2, 3))])
def test_every_spatial_method_equals_direct_taps(method, row_step, dilation, rng):
    # each method on its own, whichever the planner would pick for this kernel
    kernel = rng.standard_normal((9, 7))
    if method == "separable-1":
        spatial = Separable([(rng.standard_normal(9), rng.standard_normal(7))])
    elif method == "separable-2":
        spatial = Separable([(rng.standard_normal(9), rng.standard_normal(7)) for _ in range(2)])
    elif method == "rowmatmul":
        spatial = RowMatmul(kernel)
    else:
        spatial = FFT(kernel, dilation)
    if isinstance(spatial, Separable):
        kernel = sum(np.outer(u, v) for u, v in spatial.terms).astype(np.float64)
    n, width, channels = 11, 37, 3
    rows = (n - 1) * row_step + dilation[0] * (kernel.shape[0] - 1) + 1
    strip = rng.standard_normal((rows, width + dilation[1] * (kernel.shape[1] - 1), channels)).astype(np.float32)
    expected = np.empty((n, width, channels), np.float32)
    Direct(kernel)(strip, expected, row_step, dilation, Scratch())
    got = np.empty_like(expected)
    spatial(strip, got, row_step, dilation, Scratch())
    assert_close(got, expected)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("padding_mode", MODES)
@pytest.mark.parametrize(("stride", "dilation"), [((1, 1), (1, 1)), ((2, 1), (2, 3)), ((1, 2), (1, 1))])
def test_each_fast_path_matches_torch(path, padding_mode, stride, dilation, rng):
    weight, groups, channels, _ = _kernels(rng)[path]
    x = rng.integers(0, 256, (53, 47, channels), dtype=np.uint8)
    bias = rng.standard_normal(weight.shape[0]).astype(np.float32)
    expected = _torch_conv(x, weight, bias, stride, dilation, groups, padding_mode)
    conv = Convolution(x, weight, bias, stride=stride, dilation=dilation, groups=groups, padding_mode=padding_mode)
    assert_close(conv.run(), expected)
    assert_close(conv.run(threads=1), expected)


@pytest.mark.parametrize("path", ["depthwise-direct", "rowmatmul", "fft", "general"])
def test_each_fast_path_matches_the_loop_reference(path, rng):
    weight, groups, channels, _ = _kernels(rng)[path]
    x = rng.standard_normal((17, 19, channels)).astype(np.float32)
    assert_close(convolve(x, weight, groups=groups, padding_mode="reflect"),
                 reference_conv(x, weight, groups=groups, padding_mode="reflect"))  # fmt: skip


def test_fft_of_a_huge_kernel_is_as_exact_as_float64_taps(rng):
    # a 255×255 Gaussian (σ 42) on a photo-like image: float32 transforms were off by 1e-4 of
    # the result and fell back to 65,025 taps per pixel; float64 ones are exact to float32
    g = np.exp(-((np.arange(255) - 127) ** 2) / (2 * 42.0**2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    x = rng.integers(0, 256, (300, 280, 1), dtype=np.uint8)
    conv = Convolution(x, kernel[None, None], padding_mode="reflect")
    assert isinstance(conv.plan.spatial, FFT)
    padded = np.pad(x[..., 0].astype(np.float64), 127, mode="reflect")
    # the separable float64 reference: rows, then columns
    rows = np.stack([np.convolve(padded[:, c], g[::-1], mode="valid") for c in range(padded.shape[1])], 1)
    expected = np.stack([np.convolve(rows[r], g[::-1], mode="valid") for r in range(rows.shape[0])]) / g.sum() ** 2
    np.testing.assert_allclose(conv.run()[..., 0], expected, rtol=0, atol=2e-5 * np.abs(expected).max())


def test_run_into_hands_every_row_once(rng):
    x = rng.integers(0, 256, (300, 64, 3), dtype=np.uint8)
    weight = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    conv = Convolution(x, weight)
    seen = np.zeros(300, int)
    out = np.empty(conv.shape, np.float32)

    def sink(r0, block):
        seen[r0 : r0 + len(block)] += 1
        out[r0 : r0 + len(block)] = block

    conv.run_into(sink)
    assert np.all(seen == 1)
    np.testing.assert_array_equal(out, conv.run())


def test_collapse_hands_over_the_one_shared_channel(rng):
    edge = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32) / 3
    x = rng.integers(0, 256, (70, 30, 3), dtype=np.uint8)
    conv = Convolution(x, np.broadcast_to(edge, (3, 3, 3, 3)), bias=[2.0, 2.0, 2.0])
    assert conv.replicated
    whole = conv.run()
    shared = np.empty((70, 30, 1), np.float32)
    conv.run_into(lambda r0, block: shared.__setitem__(slice(r0, r0 + len(block)), block), collapse=True)
    for c in range(3):
        np.testing.assert_array_equal(shared[..., 0], whole[..., c])
    unequal = Convolution(x, np.broadcast_to(edge, (3, 3, 3, 3)), bias=[1.0, 2.0, 3.0])
    assert not unequal.replicated
    with pytest.raises(ValueError, match="collapse=True needs a convolution whose output channels are all equal"):
        unequal.run_into(lambda r0, block: None, collapse=True)


def test_integer_path_for_eight_bit_images_and_whole_number_kernels(rng):
    from convfilter.engine.spatial import IntegerDirect

    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    box = np.full((3, 3), 1 / 9, np.float32)
    x8 = rng.integers(0, 256, (45, 38, 3), dtype=np.uint8)
    for kernel in (sharpen, box, sharpen * 7):
        conv = Convolution(x8, np.broadcast_to(kernel, (3, 1, 3, 3)), groups=3, padding_mode="replicate")
        assert isinstance(conv.plan.spatial, IntegerDirect)
        expected = _torch_conv(x8, np.broadcast_to(kernel, (3, 1, 3, 3)), None, (1, 1), (1, 1), 3, "replicate")
        assert_close(conv.run(), expected)
    # not for 16-bit or float images, nor for kernels whose sums could overflow 16 bits
    x16 = x8.astype(np.uint16) * 257
    assert not isinstance(Convolution(x16, np.broadcast_to(sharpen, (3, 1, 3, 3)), groups=3).plan.spatial,
                          IntegerDirect)  # fmt: skip
    assert IntegerDirect.for_kernel(np.array([[1.0, 200.0]])) is None  # 255 · 201 > 32767
    assert IntegerDirect.for_kernel(np.full((3, 3), 20.0)).scale == 20  # a common factor is taken out
    assert IntegerDirect.for_kernel(np.array([[1.0, 0.5], [1 / 3, 1.0]])) is None  # no common whole-number form


def test_integer_path_sums_exactly_at_the_overflow_bound(rng):
    # Σ|w| = 128: the largest sum 255 · 128 = 32640 still fits in int16
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 1] = 128
    x = np.full((6, 6, 1), 255, np.uint8)
    conv = Convolution(x, kernel[None, None], padding_mode="reflect")
    assert type(conv.plan.spatial).__name__ == "IntegerDirect"
    assert np.all(conv.run() == 255 * 128)
