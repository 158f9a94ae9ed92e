"""``convolve`` takes every argument form PyTorch takes, with the same meaning; goes further only
where the README says so; and refuses the rest in one line. Shrunk failures of the differential
test live here as plain regression tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

from convfilter import UsageError, convolve
from convfilter.engine import Convolution


def torch_conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """``nn.Conv2d`` in float64 on a channels-last image."""
    in_channels = x.shape[2]
    conv = torch.nn.Conv2d(
        in_channels, weight.shape[0], weight.shape[2:], stride=stride, padding=padding, dilation=dilation,
        groups=groups, bias=bias is not None, padding_mode=padding_mode, dtype=torch.float64,
    )  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.asarray(weight, np.float64)))
        if bias is not None:
            conv.bias.copy_(torch.from_numpy(np.asarray(bias, np.float64)))
        out = conv(torch.from_numpy(np.asarray(x, np.float64)).permute(2, 0, 1)[None])
    return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stride": (2,), "padding": (1,), "dilation": (1,)},
        {"stride": [3, 1], "padding": [0, 2], "dilation": [1, 2]},
        {"stride": np.int64(2), "padding": np.int32(1), "dilation": np.int16(2)},
        {"stride": (1, 3), "padding": (2,), "dilation": 3},
    ],
    ids=["one-element", "lists", "numpy-ints", "mixed"],
)
def test_argument_forms_pytorch_takes(kwargs, rng):
    x = rng.standard_normal((13, 17, 4))
    weight = rng.standard_normal((6, 2, 3, 2))
    bias = rng.standard_normal(6)
    got = convolve(x, weight, bias, groups=2, **kwargs)
    assert_close(got, torch_conv(x, weight, bias, groups=2, **kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": 1.5}, r"^padding must be an int or a pair of ints, got 1.5$"),
        ({"padding": None}, r"^padding must be 'same', 'valid', an int or a pair of ints, got None$"),
        ({"padding": (1, 2, 3)}, r"^padding must be an int or a pair of ints, got \(1, 2, 3\)$"),
        ({"padding": (1, 2.0)}, r"^padding must be an int or a pair of ints, got \(1, 2.0\)$"),
        ({"padding": True}, r"^padding must be an int or a pair of ints, got True$"),
        ({"stride": 1.5}, r"^stride must be an int or a pair of ints, got 1.5$"),
        ({"stride": ()}, r"^stride must be an int or a pair of ints, got \(\)$"),
        ({"stride": "2"}, r"^stride must be an int or a pair of ints, got '2'$"),
        ({"stride": 2**31}, r"^stride must be from 1 to 2147483647, got 2147483648$"),
        ({"dilation": 1.5}, r"^dilation must be an int or a pair of ints, got 1.5$"),
        ({"dilation": (0, 1)}, r"^dilation must be from 1 to 2147483647, got \(0, 1\)$"),
        ({"groups": 1.5}, r"^groups must be a positive integer, got 1.5$"),
        ({"bias": ["a", "b", "c"]}, r"^bias must hold numbers, got <U1$"),
        ({"padding_mode": "constant"}, r"^padding_mode must be one of zeros, reflect, replicate, circular"),
    ],
)
def test_refused_arguments_are_one_line_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        convolve(np.zeros((5, 5, 3)), np.ones((3, 3, 3, 3)), **kwargs)


@pytest.mark.parametrize(
    ("x", "weight", "message"),
    [
        (np.zeros((3, 3, 1), complex), np.ones((1, 1, 1, 1)), r"must hold integers or floats, got dtype complex128"),
        (np.zeros((3, 3, 1), object), np.ones((1, 1, 1, 1)), r"must hold integers or floats, got dtype object"),
        (np.zeros((0, 3, 1)), np.ones((1, 1, 1, 1)), r"the image is empty: shape \(0, 3, 1\)"),
        (np.zeros((3, 3, 1)), np.full((1, 1, 1, 1), np.nan), r"finite numbers within float32's range"),
        (np.zeros((3, 3, 1)), np.full((1, 1, 1, 1), 1e39), r"finite numbers within float32's range"),
        (np.zeros((3, 3, 1)), np.ones((0, 1, 1, 1)), r"the weight must be a non-empty array of numbers"),
        (np.zeros((3, 3, 1)), np.ones((1, 1, 0, 1)), r"the weight must be a non-empty array of numbers"),
    ],
    ids=["complex", "object", "no-rows", "nan-weight", "beyond-float32", "no-outputs", "no-taps"],
)
def test_refused_images_and_weights(x, weight, message):
    with pytest.raises(UsageError, match=message):
        convolve(x, weight)


def test_no_input_channels_give_an_empty_result_as_in_pytorch():
    got = convolve(np.zeros((5, 6, 0), np.float32), np.ones((4, 0, 3, 3)), padding="valid")
    expected = F.conv2d(torch.zeros(1, 0, 5, 6), torch.zeros(4, 0, 3, 3))
    assert got.shape == tuple(expected[0].permute(1, 2, 0).shape) == (3, 4, 0)
    assert got.dtype == np.float32


def test_extensions_bool_images_and_a_scalar_bias(rng):
    x = rng.random((9, 8, 2)) < 0.5
    weight = rng.standard_normal((2, 2, 3, 3))
    assert_close(convolve(x, weight, 1.5, padding=1), torch_conv(x.astype(float), weight, [1.5, 1.5], padding=1))


@pytest.mark.parametrize("padding_mode", ["reflect", "circular"])
def test_padding_wider_than_the_image_repeats_it_as_numpy_pad_does(padding_mode, rng):
    x = rng.standard_normal((3, 2, 1))
    weight = rng.standard_normal((1, 1, 3, 3))
    padded = np.pad(x[..., 0], 5, mode={"reflect": "reflect", "circular": "wrap"}[padding_mode])
    expected = torch_conv(padded[..., None], weight, dilation=2)
    assert_close(convolve(x, weight, padding=5, dilation=2, padding_mode=padding_mode), expected)


# regression tests: the crashes of a horizontal stride that does not tile the padded width


def test_the_smallest_stride_crash():
    got = convolve(np.zeros((1, 2, 1), np.float32), np.ones((1, 1, 1, 1)), stride=2, padding=0)
    assert got.shape == (1, 1, 1) and got[0, 0, 0] == 0


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding", "padding_mode"),
    [
        ((5, 7, 1), (2, 2), (1, 3), "same", "zeros"),
        ((7, 7, 1), (1, 3), (1, 4), 1, "circular"),  # the left padding reads a column the output skips
        ((4, 9, 2), (3, 1), (2, 4), (1, 3), "reflect"),
        ((6, 11, 3), (2, 3), (3, 2), "same", "replicate"),
    ],
)
def test_strides_that_do_not_tile_the_width(shape, kernel, stride, padding, padding_mode, rng):
    x = rng.integers(0, 256, shape).astype(np.uint8)
    weight = rng.standard_normal((shape[2], 1, *kernel))
    conv = Convolution(x, weight, stride=stride, padding=padding, groups=shape[2], padding_mode=padding_mode)
    if padding == "same":  # PyTorch refuses "same" with a stride: pad as its "same" would, then stride
        (ty, tx) = (k - 1 for k in kernel)
        pads = ((ty // 2, ty - ty // 2), (tx // 2, tx - tx // 2), (0, 0))
        mode = {"zeros": "constant", "replicate": "edge"}[padding_mode]
        expected = torch_conv(np.pad(x.astype(float), pads, mode=mode), weight, stride=stride, groups=shape[2])
    else:
        expected = torch_conv(x, weight, stride=stride, padding=padding, groups=shape[2], padding_mode=padding_mode)
    for strip_rows in (None, 1, 2):
        assert_close(conv.run(strip_rows=strip_rows), expected)


@pytest.mark.parametrize(
    "weight",
    [
        np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)[None, None].repeat(3, 0),  # direct taps
        np.outer(np.hanning(11), np.hanning(11))[None, None].repeat(3, 0),  # separable elsewhere
        np.pad(np.random.default_rng(1).standard_normal((13, 13)), 9)[None, None].repeat(3, 0),  # an FFT elsewhere
        np.random.default_rng(2).standard_normal((6, 3, 3, 3)) * (np.random.default_rng(3).random((6, 3, 3, 3)) < 0.5),
    ],
    ids=["sharpen", "separable", "large-zero-rimmed", "dense-sparse"],
)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_non_finite_pixels_reach_exactly_the_outputs_that_read_them(weight, padding_mode, rng):
    x = rng.standard_normal((40, 45, 3)).astype(np.float32)
    x[5, 7, 0], x[30, 40, 1], x[20, 2, 2] = np.nan, np.inf, -np.inf
    groups = 3 if weight.shape[1] == 1 else 1
    got = convolve(x, weight, groups=groups, padding_mode=padding_mode)
    # which outputs read a non-finite pixel through a non-zero weight: PyTorch on the masks
    mask = (~np.isfinite(x)).astype(np.float64)
    kh, kw = weight.shape[2:]
    pads = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    padded = np.pad(mask, (pads[:2], pads[2:], (0, 0)), mode={"zeros": "constant", "reflect": "reflect"}[padding_mode])
    reach = torch_conv(padded, (weight != 0).astype(np.float64), groups=groups)
    np.testing.assert_array_equal(~np.isfinite(got), reach > 0)


# regression tests: factoring that approximated weights (a weight a millionth off, or a channel
# a ten-millionth of another, came out as its neighbour's, or as 0)


@pytest.mark.parametrize(
    ("x", "weight"),
    [
        (np.ones((4, 4, 1), np.float32), np.array([[[[1, -1]]], [[[1, -1 + 9e-7]]]])),
        (np.full((4, 4, 1), 128, np.uint8), np.array([1, -1 + 5e-7]).reshape(1, 1, 1, 2)),  # the integer path
        (
            np.ones((5, 5, 1), np.float32),
            np.stack([np.outer([1, 2, 1], [1, 2, 1]), 1e-7 * np.outer([1, 2, 1], [1, 2, 1])])[:, None],
        ),
    ],
    ids=["near-copy", "near-whole", "tiny-channel"],
)
def test_no_weight_is_rounded_away(x, weight):
    got = convolve(x, weight, padding="valid")
    # the weights as the engine takes them, float32, as PyTorch's float32 layers hold them
    expected = torch_conv(x.astype(np.float64), weight.astype(np.float32))
    for o in range(weight.shape[0]):  # every channel to float32 rounding of its own size
        np.testing.assert_allclose(got[..., o], expected[..., o], rtol=1e-3)


def test_a_zero_weight_never_reads_a_nan():
    weight = np.array([[[[1, 1e-3]]], [[[5e-4, 0]]]])
    x = np.ones((3, 4, 1), np.float32)
    x[1, 2] = np.nan
    got = convolve(x, weight, padding="valid")
    np.testing.assert_array_equal(np.isnan(got[1, :, 1]), [False, False, True])  # column 2 by its 5e-4 only


# regression tests from an adversarial pass over the engine


def test_rows_no_output_reads_do_not_round_into_an_fft(rng):
    x = rng.standard_normal((64, 64, 1)).astype(np.float32)
    x[1::2] = 1e15  # a stride and a dilation of 2 read only the even rows
    weight = rng.standard_normal((1, 1, 21, 21))
    got = convolve(x, weight, stride=(2, 1), dilation=(2, 1), padding=0)
    expected = torch_conv(x, weight.astype(np.float32), stride=(2, 1), dilation=(2, 1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_a_large_kernel_dilated_far_beyond_the_image_stays_within_its_output(rng):
    import tracemalloc

    g = np.exp(-((np.arange(255) - 127) ** 2) / (2 * 42.0**2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    x = rng.random((64, 64, 3)).astype(np.float32)
    tracemalloc.start()
    got = convolve(x, np.broadcast_to(kernel, (3, 1, 255, 255)), groups=3, dilation=60)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= got.nbytes + (100 << 20), f"{peak >> 20} MiB"
    # with zero padding only the centre 3×3 taps, 60 apart, land on a 64×64 image
    centre = np.broadcast_to(kernel[126:129, 126:129], (3, 1, 3, 3))
    assert_close(got, torch_conv(x, centre.astype(np.float32), padding=60, dilation=60, groups=3))


def test_float16_images_with_infinity_are_not_finite_and_make_no_warning():
    import warnings

    kernel = np.random.default_rng(0).standard_normal((5, 5))
    kernel[0] = 0
    x = np.ones((8, 8, 1), np.float16)
    x[2, 4] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = convolve(x, kernel[None, None])
    np.testing.assert_array_equal(got, convolve(x.astype(np.float32), kernel[None, None]))


def test_a_convolution_inside_a_sink_does_not_deadlock(rng):
    import threading

    from convfilter.engine import Convolution

    outer = Convolution(rng.random((300, 300, 3)).astype(np.float32), rng.random((3, 3, 3, 3)))
    inner = rng.random((400, 400, 3)).astype(np.float32)
    done = threading.Event()

    def work():
        outer.run_into(lambda r0, block: Convolution(inner, np.ones((3, 3, 3, 3))).run(threads=2), threads=2)
        done.set()

    threading.Thread(target=work, daemon=True).start()
    assert done.wait(timeout=300), "a convolution in a sink waits for the pool it runs on"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: convolve(np.ones((4, 4, 1)), np.ones((1, 1, 1, 1)), padding=100000), r"larger than this machine"),
        (lambda: convolve(np.ones((4, 4, 1)), np.ones((1, 1, 1, 1)), bias=[1e39]), r"bias must hold finite numbers"),
        (lambda: Convolution(np.ones((4, 4, 1)), np.ones((1, 1, 1, 1))).run(strip_rows=-1), r"strip_rows must be"),
        (lambda: Convolution(np.ones((4, 4, 1)), np.ones((1, 1, 1, 1))).run(strip_rows=2.5), r"strip_rows must be"),
    ],
    ids=["huge-result", "bias-beyond-float32", "negative-strip-rows", "fractional-strip-rows"],
)
def test_more_refusals(call, message):
    with pytest.raises(UsageError, match=message):
        call()


def test_a_rank_two_split_keeps_small_weights():
    rng = np.random.default_rng(5)
    kernel = np.zeros((21, 21))
    kernel[0, 0], kernel[1, 1] = 1, 0.5
    s, t = rng.choice([-1.0, 1.0], (2, 19))
    kernel[2:, 2:] += 9e-7 * np.outer(s, t)
    x = np.sign(kernel)[..., None].astype(np.float32)
    x[:2, :2] = 0
    got = convolve(x, kernel[None, None], padding="valid")
    expected = torch_conv(x, kernel[None, None].astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-3)


def test_an_overflow_in_one_group_stays_in_that_group():
    # inf · 0 in a mixing product made the other group's outputs NaN
    x = np.ones((12, 12, 4), np.float32)
    x[..., 0] = 3e38
    weight = np.arange(1, 17, dtype=float).reshape(8, 2)[:, :, None, None] * np.ones((3, 3))
    for kwargs in ({}, {"stride": (1, 2)}, {"dilation": 4000}):
        got = convolve(x, weight, groups=2, **kwargs)
        assert np.all(np.isfinite(got[..., 4:])), kwargs
        assert np.all(np.isinf(got[..., :4]) | (np.abs(got[..., :4]) > 1e38)), kwargs


def test_columns_no_output_reads_do_not_round_into_an_fft(rng):
    x = (10 * rng.standard_normal((300, 340, 1))).astype(np.float32)
    x[:, 1::2] = 1e25  # a stride and a dilation of 2 read only the even columns
    kernel = rng.standard_normal((1, 1, 31, 31))
    got = convolve(x, kernel, stride=(1, 2), dilation=(1, 2), padding=0)
    expected = torch_conv(x, kernel.astype(np.float32), stride=(1, 2), dilation=(1, 2))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
