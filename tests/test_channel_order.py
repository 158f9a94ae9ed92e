"""Pixels kept in OpenCV's B, G, R order from decoding to encoding: the layer applied to the
channels in that order (weights reordered) gives the result that turning the pixels to R, G, B,
filtering and turning them back gives; and OpenCV's rounding of a strip to pixels is NumPy's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLES

from convfilter import UsageError
from convfilter.imageio import decode_image, encode_pieces, opencv_order
from convfilter.kernel import Kernel
from convfilter.options import COMBINES, RANGES
from convfilter.pipeline import filter_pixels
from convfilter.pixels import to_pixels

MODES = ("zeros", "reflect", "replicate", "circular")


def _kernel(rng: np.random.Generator, channels: int) -> Kernel:
    """A random kernel for an image of ``channels`` colour channels: one 2-D kernel (depthwise,
    dense or grouped), a bank with each way of combining it, or a 4-D weight of any groups."""
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    form = rng.choice(["2d", "bank", "4d"])
    combine = "none"
    if form == "2d":
        weights = rng.standard_normal((kh, kw)).astype(np.float32)
        mix = rng.choice(["depthwise", "dense", *map(str, [g for g in (1, 2, 4) if channels % g == 0])])
        mix = int(mix) if mix.isdigit() else str(mix)
    elif form == "bank":
        weights = rng.standard_normal((int(rng.integers(1, 4)), kh, kw)).astype(np.float32)
        mix, combine = "depthwise", str(rng.choice(COMBINES))
    else:
        groups = int(rng.choice([g for g in (1, 2, 3, 4) if channels % g == 0]))
        out = groups * int(rng.choice([1, 2, 3] if groups < 3 else [1, 2]))
        if rng.random() < 0.5 and 3 % groups == 0:
            out = 3  # a colour result, so that its order matters
        out -= out % groups
        weights = rng.standard_normal((out, channels // groups, kh, kw)).astype(np.float32)
        mix = groups
    bias = tuple(float(b) for b in rng.normal(0, 5, 1 if rng.random() < 0.5 else len(weights)))
    if form != "4d" and len(bias) > 1:
        bias = bias[:1]
    return Kernel(
        name="k", source="kernel k", weights=weights, mix=mix, bias=bias if rng.random() < 0.5 else (),
        padding_mode=str(rng.choice(MODES)), stride=tuple(int(v) for v in rng.integers(1, 3, 2)),
        combine=combine, range=str(rng.choice(RANGES)), alpha=str(rng.choice(["keep", "filter"])),
    )  # fmt: skip


def _swapped(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., opencv_order(pixels.shape[2])]


@pytest.mark.parametrize("seed", range(4))
def test_a_layer_on_opencvs_order_gives_the_same_result(seed):
    rng = np.random.default_rng([20261203, seed])
    tried = 0
    while tried < 150:
        channels = int(rng.choice([3, 4]))
        kernel = _kernel(rng, channels - (1 if rng.random() < 0.5 else 0))
        height, width = (int(v) for v in rng.integers(6, 30, 2))
        floats = rng.random() < 0.5  # float pixels into a .tif stay float: the sums compared as floats
        rgb = (rng.random((height, width, channels)) * 255).astype(np.float32 if floats else np.uint8)
        fmt = str(rng.choice(["tiff", "npy"])) if floats else str(rng.choice(["png", "npy", "tiff"]))
        try:
            want, layer = filter_pixels(rgb.copy(), kernel, fmt)
        except UsageError as error:  # a kernel that does not fit this image: refused alike in both orders
            with pytest.raises(type(error)):
                filter_pixels(_swapped(rgb), kernel, fmt, bgr=True)
            continue
        tried += 1
        bgr = np.ascontiguousarray(_swapped(rgb))
        got, _ = filter_pixels(bgr, kernel, fmt, bgr=True)
        if fmt != "npy" and got.shape[2] in (3, 4):
            want = _swapped(want)  # a colour result comes back in OpenCV's order
        assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
        if got.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * max(1.0, float(np.abs(want).max())))
        else:  # sums in another order may round a value at x.5 the other way
            differ = got != want
            assert np.abs(got.astype(int) - want).max() <= 1 and differ.mean() <= 0.01, (layer, differ.sum())


def test_groups_that_the_order_splits_turn_the_pixels_instead():
    # groups=2 on B, G, R, A: {B, G} and {R, A} are not groups of R, G, B, A
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    kernel = Kernel(name="k", source="kernel k", weights=weights, mix=2, alpha="filter")
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    want, _ = filter_pixels(rgba.copy(), kernel, "png")
    bgra = np.ascontiguousarray(_swapped(rgba))
    got, _ = filter_pixels(bgra, kernel, "png", bgr=True)
    np.testing.assert_array_equal(got, _swapped(want))
    np.testing.assert_array_equal(bgra, _swapped(rgba))  # the caller's pixels, not given up, are as they were
    got, _ = filter_pixels(bgra, kernel, "png", bgr=True, reuse=True)
    np.testing.assert_array_equal(got, _swapped(want))


def test_a_decoded_photo_filtered_in_opencvs_order_is_encoded_as_the_same_file():
    data = (SAMPLES / "cat.jpeg").read_bytes()
    for name, weights, mix in (("sepia-like", np.eye(3, dtype=np.float32)[::-1, :, None, None], "dense"),
                               ("blur", np.full((3, 3), 1 / 9, np.float32), "depthwise")):  # fmt: skip
        kernel = Kernel(name=name, source=f"kernel {name}", weights=weights, mix=mix)
        rgb = decode_image(data, "cat")
        want, _ = filter_pixels(rgb.pixels, kernel, "png")
        got, _ = filter_pixels(decode_image(data, "cat", bgr=True).pixels, kernel, "png", bgr=True)
        assert bytes(encode_pieces(got, "png", bgr=True)) == bytes(encode_pieces(want, "png"))


def _rounded(values: np.ndarray, dtype) -> tuple[np.ndarray, int]:
    """The reference: NumPy's round half to even, saturated, and how many saturate."""
    top = np.iinfo(dtype).max
    rounded = np.rint(np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=top + 1, neginf=-1))
    return np.clip(rounded, 0, top).astype(dtype), int(np.count_nonzero((rounded < 0) | (rounded > top)))


@pytest.mark.parametrize("seed", range(3))
def test_rounding_strips_to_pixels_matches_numpy(seed):
    rng = np.random.default_rng([31, seed])
    for _ in range(120):
        dtype = np.uint8 if rng.random() < 0.5 else np.uint16
        top = float(np.iinfo(dtype).max)
        shape = (int(rng.integers(1, 80)), int(rng.integers(1, 300)), int(rng.choice([1, 3, 4])))
        values = (rng.random(shape) * top * rng.choice([1.0, 1.5, 3.0]) - top * rng.choice([0.0, 0.3])).astype(
            np.float32
        )
        flat = values.reshape(-1)
        halves = rng.integers(0, flat.size, flat.size // 5 + 1)
        flat[halves] = np.floor(flat[halves]) + 0.5  # exact halves, both sides of each whole number
        edges = [-0.5, -0.50001, top + 0.5, top + 0.49, -0.0, 0.49999, top, 2.0**31 - 2**8, -(2.0**31) + 2**8]
        beyond = ([], [2.0**31], [-(2.0**31)], [3e38, -3e38], [np.inf, -np.inf])  # an int32's reach, float32's
        edges += beyond[0 if rng.random() < 0.6 else int(rng.integers(1, len(beyond)))]
        spots = rng.integers(0, flat.size, len(edges))
        flat[spots] = np.array(edges, np.float32)
        finite = bool(np.isfinite(values).all())
        want, saturated = _rounded(values, dtype)
        strided = rng.random() < 0.3  # the result's channels of a wider array (room for alpha)
        room = np.zeros((*shape[:2], shape[2] + 1), dtype)
        out = room[..., : shape[2]] if strided else np.empty(shape, dtype)
        tally: list[int] = []
        got = to_pixels(values.copy(), dtype, "clip", out=out, finite=finite, tally=tally)
        assert got is out
        np.testing.assert_array_equal(out, want)
        assert sum(tally) == saturated
        if strided:
            assert not room[..., -1].any()  # nothing written beside the result


def test_nan_in_a_large_strip_becomes_zero_and_infinities_saturate():
    values = np.full((64, 64, 3), 7.5, np.float32)
    values[0, 0, 0], values[1, 1, 1], values[2, 2, 2] = np.nan, np.inf, -np.inf
    pixels = to_pixels(values, np.uint8, "clip", out=np.empty(values.shape, np.uint8), finite=False)
    assert (pixels[0, 0, 0], pixels[1, 1, 1], pixels[2, 2, 2], pixels[5, 5, 0]) == (0, 255, 0, 8)


@pytest.mark.parametrize("size", [(8, 8, 3), (64, 64, 3)], ids=["numpy", "opencv"])
def test_a_nan_sum_of_a_finite_image_is_rounded_alike_on_both_paths(size):
    # finite pixels whose sums overflow to inf - inf: NaN in the result, not counted as clipped
    values = np.full(size, 300.0, np.float32)
    values[1, :, 0] = np.nan
    values[2, 2, 1] = -7.0
    tally: list[int] = []
    pixels = to_pixels(values.copy(), np.uint8, "clip", out=np.empty(size, np.uint8), finite=True, tally=tally)
    want = np.full(size, 255, np.uint8)
    want[1, :, 0], want[2, 2, 1] = 0, 0
    np.testing.assert_array_equal(pixels, want)
    assert sum(tally) == values.size - size[1]  # every value but the NaN ones saturates


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int32, np.float64])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_one_channel_spread_to_every_channel(dtype, channels, rng):
    from convfilter.pixels import spread

    one = rng.integers(0, 200, (5, 7, 1)).astype(dtype)
    for wide in (channels, channels + 1):  # contiguous, and the first channels of a wider array
        whole = np.zeros((5, 7, wide), dtype)
        destination = whole[:, :, :channels]
        spread(one, destination)
        np.testing.assert_array_equal(destination, np.repeat(one, channels, axis=2))
        assert not whole[:, :, channels:].any()


@pytest.fixture
def handed(monkeypatch) -> list:
    """The block dtype of every convolution's ``run_into`` while the test runs."""
    from convfilter.engine import Convolution

    dtypes: list = []
    run_into = Convolution.run_into

    def spy(self, *args, **kwargs):
        dtypes.append(np.dtype(kwargs.get("dtype", np.float32)))
        return run_into(self, *args, **kwargs)

    monkeypatch.setattr(Convolution, "run_into", spy)
    return dtypes


@pytest.mark.parametrize("seed", range(2))
def test_a_blur_written_by_opencv_as_pixels_is_the_float_result_rounded(seed, monkeypatch, handed):
    from convfilter.engine import Convolution

    rng = np.random.default_rng([47, seed])
    for _ in range(40):
        kh, kw = (int(v) * 2 + 1 for v in rng.integers(2, 8, 2))
        u, v = rng.random(kh) + 0.05, rng.random(kw) + 0.05
        weights = np.outer(u / u.sum(), v / v.sum()).astype(np.float32)
        dtype = np.dtype(rng.choice([np.uint8, np.uint16]))
        shape = (int(rng.integers(20, 140)), int(rng.integers(20, 140)), int(rng.choice([1, 2, 3, 4])))
        pixels = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
        mode = str(rng.choice(["zeros", "reflect", "replicate"]))
        kernel = Kernel(name="blur", source="kernel blur", weights=weights, padding_mode=mode,
                        alpha=str(rng.choice(["keep", "filter"])))  # fmt: skip
        fmt = "png" if dtype == np.uint16 else str(rng.choice(["png", "jpeg"]))
        bgr, tally = bool(rng.random() < 0.5), []
        direct, _ = filter_pixels(pixels.copy(), kernel, fmt, True, None, tally, bgr, True)
        with monkeypatch.context() as patched:
            patched.setattr(Convolution, "block_dtype", lambda self, pixels: np.dtype(np.float32))
            floats, _ = filter_pixels(pixels.copy(), kernel, fmt, True, None, [], bgr, True)
        assert direct.dtype == floats.dtype and direct.shape == floats.shape
        differ = direct != floats
        assert np.abs(direct.astype(int) - floats).max() <= 1 and differ.mean() < 0.01
        assert sum(tally) == 0  # nothing clips: nothing to count
    assert sum(dtype in (np.uint8, np.uint16) for dtype in handed) > 20  # most drawn blurs took the route


@pytest.mark.parametrize("seed", range(2))
def test_pixels_from_exact_integer_sums_are_those_from_float_sums(seed, monkeypatch, handed):
    from convfilter.engine import Convolution

    rng = np.random.default_rng([53, seed])
    for _ in range(40):
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        weights = rng.integers(-3, 4, (kh, kw)).astype(np.float32)
        weights[kh // 2, kw // 2] = 4
        shape = (int(rng.integers(8, 120)), int(rng.integers(8, 120)), int(rng.choice([1, 2, 3, 4])))
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        kernel = Kernel(name="k", source="kernel k", weights=weights, alpha=str(rng.choice(["keep", "filter"])),
                        padding_mode=str(rng.choice(MODES)), stride=(int(rng.integers(1, 3)), 1))  # fmt: skip
        fmt, bgr = str(rng.choice(["png", "jpeg", "bmp"])), bool(rng.random() < 0.5)
        sums_tally: list[int] = []
        sums, _ = filter_pixels(pixels.copy(), kernel, fmt, True, None, sums_tally, bgr, True)
        floats_tally: list[int] = []
        with monkeypatch.context() as patched:
            patched.setattr(Convolution, "block_dtype", lambda self, pixels: np.dtype(np.float32))
            floats, _ = filter_pixels(pixels.copy(), kernel, fmt, True, None, floats_tally, bgr, True)
        np.testing.assert_array_equal(sums, floats)
        assert sum(sums_tally) == sum(floats_tally)
    assert sum(dtype == np.int16 for dtype in handed) > 8  # the planner picks 16-bit taps for some kernels
