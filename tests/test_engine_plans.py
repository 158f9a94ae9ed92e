"""Each plan of the engine: chosen where it should be, equal to direct taps, to PyTorch and to the
loop reference; strips handed over once; the shared-channel and integer paths."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, reference_conv
from test_engine import MODES, _torch_conv

from convfilter import convolve
from convfilter.engine import Convolution
from convfilter.engine.plan import Factored
from convfilter.engine.spatial import FFT, Direct, RowMatmul, Scratch, Separable
from convfilter.engine.taps import General, TapMatmul


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
    # the NumPy methods (test_engine_native.py: where OpenCV's filters take over from them)
    weight, groups, channels, expected = _kernels(rng)[path]
    conv = Convolution(np.zeros((40, 40, channels), np.uint8), weight, groups=groups, engine="numpy")
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
        conv = Convolution(x8, np.broadcast_to(kernel, (3, 1, 3, 3)), groups=3, padding_mode="replicate",
                           engine="numpy")  # fmt: skip
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


@pytest.mark.parametrize("stride", [1, (1, 2), 3])
def test_large_kernels_never_run_tap_by_tap(stride, rng):
    # a 41×41 kernel per channel (a bank), and a shared one with a horizontal stride: once 1,681
    # taps per pixel; now each pair by its own fast method, or the factored one every stride-th column
    from convfilter.engine.plan import PerPair

    x = rng.integers(0, 256, (120, 130, 3), dtype=np.uint8)
    bank = rng.standard_normal((3, 1, 41, 41)).astype(np.float32)
    shared = np.broadcast_to(bank[0], (3, 1, 41, 41))
    steps = (stride, stride) if isinstance(stride, int) else stride
    for weight in (bank, shared):
        conv = Convolution(x, weight, stride=stride, groups=3, padding_mode="reflect")
        assert isinstance(conv.plan, (PerPair, Factored))
        spatial = [m for *_, m in conv.plan.pairs] if isinstance(conv.plan, PerPair) else [conv.plan.spatial]
        assert not any(isinstance(m, Direct) for m in spatial)  # FFT, or row products for a small output
        assert_close(conv.run(), _torch_conv(x, weight, None, steps, (1, 1), 3, "reflect"))
