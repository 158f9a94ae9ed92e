"""OpenCV's filters inside strips against the pure NumPy methods they stand in for: on random
configurations, on each route alone, and where they must not be used; and how the engine is
chosen (``engine=`` and ``CONVFILTER_ENGINE``)."""

from __future__ import annotations

import numpy as np
import pytest
from differential import Config, draw, plan_name, run

from convfilter import ArgumentError, convolve
from convfilter.engine import Convolution, native
from convfilter.engine.native import NativeBox, NativeDirect, NativeSeparable
from convfilter.engine.spatial import Direct, Scratch, low_rank

NATIVE = ("NativeBox", "NativeSeparable", "NativeDirect")
EDGES = {
    np.uint8: (0, 255),
    np.uint16: (0, 65535),
    np.float32: (-3e4, 3e4),
    np.float64: (-1e-30, 1e6),
}


def _native_draw(rng: np.random.Generator) -> Config:
    """A configuration aimed at the OpenCV routes: depthwise, one kernel (box, separable, random,
    1×N, N×1, even sizes), 8/16-bit and float inputs with their edge values, weights from 1e-6
    to 1e6, strides and dilations now and then."""
    dtype = (np.uint8, np.uint16, np.float32, np.float64)[rng.integers(4)]
    channels = int(rng.choice([1, 2, 3, 4, 5]))
    shape = [(1, int(rng.integers(2, 40))), (int(rng.integers(2, 40)), 1), tuple(rng.integers(1, 34, 2))][
        rng.integers(3)
    ]
    kh, kw = (int(v) for v in shape)
    kind = rng.integers(3)
    if kind == 0:
        kernel = np.full((kh, kw), rng.standard_normal())
    elif kind == 1:
        kernel = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
    else:
        kernel = rng.standard_normal((kh, kw))
    kernel *= 10.0 ** rng.uniform(-6, 6)
    height, width = int(rng.integers(kh, kh + 90)), int(rng.integers(kw, kw + 90))
    low, high = EDGES[dtype]
    if rng.random() < 0.3:  # the extremes only
        x = rng.choice(np.array([low, high], dtype), (height, width, channels))
    else:
        x = rng.uniform(low, high, (height, width, channels)).astype(dtype)
    step = (1, 1) if rng.random() < 0.7 else tuple(int(v) for v in rng.integers(1, 3, 2))
    dilation = (1, 1) if rng.random() < 0.8 else tuple(int(v) for v in rng.integers(1, 3, 2))
    return Config(
        x=x,
        weight=np.broadcast_to(kernel, (channels, 1, kh, kw)).copy(),
        bias=None if rng.random() < 0.5 else rng.standard_normal(channels),
        stride=step,
        padding="same",
        dilation=dilation,
        groups=channels,
        mode=("zeros", "reflect", "replicate", "circular")[rng.integers(4)],
        flip=bool(rng.integers(2)),
        threads=int(rng.integers(1, 3)),
        strip_rows=None if rng.random() < 0.6 else int(rng.integers(1, 40)),
        form="native",
    )


def _compare(cfg: Config) -> tuple[str | None, str]:
    """Run ``cfg`` with both engines; return what disagrees (or None) and the plan used."""
    cfg.engine = "auto"
    fast = cfg.convolution()
    got = run(cfg, fast)
    cfg.engine = "numpy"
    reference = cfg.convolution()
    assert not plan_name(reference).startswith("Native")
    expected = run(cfg, reference)
    # float32 rounding of each sum: a few parts in a million of the largest value it could reach
    reach = np.abs(cfg.weight).sum(axis=(1, 2, 3)) * float(np.abs(cfg.x.astype(np.float64)).max(initial=0))
    allowed = 2e-6 * reach + 1e-6 * np.abs(expected).max(axis=(0, 1), initial=0)
    error = np.abs(got.astype(np.float64) - expected).max(axis=(0, 1), initial=0)
    if not np.all(error <= allowed):
        o = int(np.argmax(~(error <= allowed)))
        return f"channel {o} off by {error[o]:.3g} (allowed {allowed[o]:.3g})", plan_name(fast)
    return None, plan_name(fast)


def test_opencv_routes_match_the_numpy_methods_on_random_configurations():
    failures, used = [], set()
    count = 0
    for i in range(600):
        rng = np.random.default_rng([77, i])
        # half from the whole argument space, half aimed at the OpenCV routes
        cfg = draw(rng) if i % 2 else _native_draw(rng)
        try:
            problem, name = _compare(cfg)
        except ValueError:  # a configuration both engines refuse (the PyTorch tests cover those)
            continue
        count += name in NATIVE
        used.add(name)
        if problem:
            failures.append(f"draw {i}: {name}: {problem}\n    {cfg.describe()}")
    assert not failures, "\n".join(failures[:10])
    assert used >= set(NATIVE) and count > 150, (count, used)


def _corrupt_box(monkeypatch):
    real = NativeBox.finish
    monkeypatch.setattr(NativeBox, "finish", lambda self, valid, out: real(self, valid * np.float32(1.0001), out))


def test_the_comparison_catches_a_route_off_by_a_ten_thousandth(monkeypatch):
    _corrupt_box(monkeypatch)
    cfg = _native_draw(np.random.default_rng(3))
    cfg.x = np.random.default_rng(4).integers(0, 256, (60, 50, 3)).astype(np.uint8)
    cfg.weight = np.full((3, 1, 9, 9), 0.5)
    cfg.groups, cfg.stride, cfg.dilation, cfg.bias = 3, (1, 1), (1, 1), None
    problem, name = _compare(cfg)
    assert name == "NativeBox" and problem is not None


@pytest.mark.parametrize("row_step", [1, 2, 3])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 1), (1, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_each_route_equals_direct_taps_on_a_strip(row_step, dilation, dtype, rng):
    # a strip whose halo holds the largest values: any border OpenCV invented instead of reading
    # them, or any output cropped one row or column off, is far outside the tolerance
    kernel = rng.standard_normal((7, 4))
    separable = np.outer(rng.standard_normal(7), rng.standard_normal(4))
    n, width, channels = 13, 41, 3
    rows = (n - 1) * row_step + dilation[0] * 6 + 1
    high = 255 if dtype == np.uint8 else 1000
    strip = rng.integers(0, high // 4, (rows, width + dilation[1] * 3, channels)).astype(dtype)
    strip[:2], strip[-2:], strip[:, :2], strip[:, -2:] = high, high, high, high
    routes = [
        (NativeDirect(kernel, dilation, row_step), kernel),
        (NativeSeparable(low_rank(separable, 1), dilation, np.dtype(dtype), row_step), separable),
    ]
    if dilation == (1, 1):
        routes.append((NativeBox((7, 4), 0.25, np.dtype(dtype), row_step), np.full((7, 4), 0.25)))
    for route, reference_kernel in routes:
        expected = np.empty((n, width, channels), np.float32)
        Direct(reference_kernel)(strip.astype(np.float32), expected, row_step, dilation, Scratch())
        got = np.full_like(expected, np.nan)
        route(strip.astype(route.strip_dtype), got, row_step, dilation, Scratch())
        scale = np.abs(reference_kernel).sum() * high
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * scale, err_msg=type(route).__name__)


def _spatial(x, kernel, **kwargs):
    """The depthwise convolution of ``kernel`` on ``x`` (engine "auto" unless given), and its plan."""
    kwargs.setdefault("engine", "auto")
    conv = Convolution(x, np.broadcast_to(kernel, (x.shape[2], 1, *kernel.shape)), groups=x.shape[2], **kwargs)
    return conv, plan_name(conv)


def test_each_route_is_chosen_where_it_wins(rng):
    x = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    g = np.exp(-((np.arange(13) - 6) ** 2) / 8.0)
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float64)
    assert _spatial(x, np.outer(g, g) / np.outer(g, g).sum())[1] == "NativeSeparable"
    assert _spatial(x, np.full((31, 31), 1 / 961))[1] == "NativeBox"
    assert _spatial(x, rng.standard_normal((5, 5)))[1] == "NativeDirect"
    assert _spatial(x, rng.standard_normal((31, 31)))[1] == "NativeDirect"
    assert _spatial(x, sharpen)[1] == "IntegerDirect"  # 16-bit integer taps beat filter2D here
    # the box and separable routes read 8-bit strips as they are; filter2D wants float32
    assert _spatial(x, np.full((31, 31), 1 / 961))[0].plan.strip_dtype == np.uint8
    assert _spatial(x, rng.standard_normal((5, 5)))[0].plan.strip_dtype == np.float32


def test_the_numpy_engine_never_calls_opencv(rng, monkeypatch):
    x = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    kernels = [np.full((31, 31), 1 / 961), rng.standard_normal((5, 5)), np.outer(np.ones(9), np.arange(9.0))]
    assert all(_spatial(x, k, engine="numpy")[1] in ("Separable", "RowMatmul", "FFT") for k in kernels)
    monkeypatch.setenv("CONVFILTER_ENGINE", "numpy")
    assert not any(_spatial(x, k, engine=None)[1].startswith("Native") for k in kernels)
    assert _spatial(x, kernels[0], engine="auto")[1] == "NativeBox"  # the argument wins over the environment
    monkeypatch.setenv("CONVFILTER_ENGINE", "auto")
    assert _spatial(x, kernels[0], engine=None)[1] == "NativeBox"
    monkeypatch.delenv("CONVFILTER_ENGINE")
    assert _spatial(x, kernels[0], engine=None)[1] == "NativeBox"  # "auto" by default


def test_an_unknown_engine_is_refused(monkeypatch):
    x = np.zeros((5, 5, 1), np.uint8)
    with pytest.raises(ValueError, match=r"engine must be one of auto, numpy, got 'opencv'"):
        convolve(x, np.ones((1, 1, 3, 3)), engine="opencv")
    monkeypatch.setenv("CONVFILTER_ENGINE", "fast")
    with pytest.raises(ValueError, match=r"CONVFILTER_ENGINE must be one of auto, numpy, got 'fast'"):
        convolve(x, np.ones((1, 1, 3, 3)))


def test_non_finite_input_takes_the_finite_plan_and_no_opencv_route_for_sums_beyond_float32(rng):
    x = rng.standard_normal((40, 40, 3)).astype(np.float32)
    finite_plan = _spatial(x, rng.standard_normal((5, 5)))[1]
    x[5, 5, 0] = np.nan
    kernel = rng.standard_normal((5, 5))
    conv, name = _spatial(x, kernel)
    assert type(conv.plan).__name__ == "NonFinite" and name == finite_plan == "NativeDirect"
    assert not _spatial(x, kernel, engine="numpy")[1].startswith("Native")
    huge = np.full((40, 40, 3), 3e37, np.float32)
    assert not _spatial(huge, kernel * 1e3)[1].startswith("Native")
    assert _spatial(huge / 1e20, kernel)[1] == "NativeDirect"


def test_a_box_on_sixteen_bit_input_whose_sums_pass_32_bits_is_exact(rng):
    # 65535 · 255² > 2³¹: integer window sums would wrap; the strip is loaded as float32 instead
    x = np.full((300, 290, 1), 65535, np.uint16)
    conv, name = _spatial(x, np.ones((255, 255)), padding="valid")
    assert name == "NativeBox" and conv.plan.strip_dtype == np.float32
    np.testing.assert_array_equal(conv.run(), np.float32(65535 * 255 * 255))
    small, _ = _spatial(x, np.ones((31, 31)), padding="valid")
    assert small.plan.strip_dtype == np.uint16


def test_more_channels_than_one_opencv_array_holds(rng):
    x = rng.integers(0, 256, (30, 20, native.MAX_CHANNELS + 9), dtype=np.uint8)
    kernel = rng.standard_normal((5, 5))
    conv, name = _spatial(x, kernel)
    assert name == "NativeDirect"
    expected = _spatial(x, kernel, engine="numpy")[0].run()
    np.testing.assert_allclose(conv.run(), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize("shape", [(13, 13), (8, 6), (1, 9), (9, 1)])
@pytest.mark.parametrize("kind", ["box", "separable", "large"])
def test_straight_from_the_image_across_strip_cuts(mode, shape, kind, rng):
    # OpenCV's border stands for the padding and each cut is computed again from a band around
    # it: every strip height from the smallest allowed, threads or not, equals the NumPy engine
    from convfilter.engine.native import image_route

    x = rng.integers(0, 256, (97, 61, 3), dtype=np.uint8)
    kernel = np.full(shape, 0.3) if kind == "box" else np.outer(rng.standard_normal(shape[0]), rng.random(shape[1]))
    if kind == "large":  # random, past the taps where filter2D takes its transform
        shape = (shape[0] + 12, shape[1] + 12)
        kernel = rng.standard_normal(shape)
    conv, name = _spatial(x, kernel, padding_mode=mode)
    if kind == "separable" and min(shape) == 1:  # a 1-D kernel is one filter2D row or column
        assert name == "NativeDirect"
        return
    assert name == {"box": "NativeBox", "separable": "NativeSeparable", "large": "NativeDirect"}[kind]
    assert image_route(conv, conv.plan.spatial) is not None
    expected = _spatial(x, kernel, padding_mode=mode, engine="numpy")[0].run()
    for strip_rows in (shape[0] - 1, shape[0], 17, None):
        for threads in (1, 2):
            got = conv.run(threads, strip_rows or None)
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * np.abs(kernel).sum() * 255)


def test_no_image_route_where_opencv_has_no_such_border_or_the_output_is_not_the_input_size(rng):
    from convfilter.engine.native import image_route

    x = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    box = np.full((5, 5), 0.04)
    assert image_route(*(lambda c: (c, c.plan.spatial))(_spatial(x, box, padding_mode="reflect")[0])) is not None
    for kwargs in ({"padding_mode": "circular"}, {"stride": 2}, {"padding": "valid"}):
        conv = _spatial(x, box, **kwargs)[0]
        assert plan_name(conv) == "NativeBox" and image_route(conv, conv.plan.spatial) is None, kwargs
        expected = _spatial(x, box, engine="numpy", **kwargs)[0].run()
        np.testing.assert_allclose(conv.run(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_mean_box_takes_opencvs_own_mean(mode, dtype, rng):
    # the weight 1/49 in float32 is OpenCV's normalised box; any other weight multiplies the sums
    x = rng.integers(0, 256, (80, 70, 2)).astype(dtype)
    for weight, mean in ((1 / 49, True), (2 / 49, False)):
        conv, name = _spatial(x, np.full((7, 7), weight), padding_mode=mode)
        assert name == "NativeBox" and conv.plan.spatial.mean is mean
        expected = _spatial(x, np.full((7, 7), weight), padding_mode=mode, engine="numpy")[0].run()
        np.testing.assert_allclose(conv.run(), expected, rtol=0, atol=2e-6 * 255 * 49 * weight)


def test_opencvs_channel_mix_matches_the_numpy_sums(rng):
    from convfilter.engine.mixing import mix

    for _ in range(300):
        channels, outputs = (int(v) for v in rng.integers(1, 6, 2))
        shape = (int(rng.integers(1, 9)), int(rng.integers(1, 40)))
        integer = rng.random() < 0.3  # 8-bit pixels and whole-number weights: every sum exact
        if integer:
            source = rng.integers(0, 256, (*shape, channels)).astype(np.float32)
            matrix = rng.integers(-4, 5, (outputs, channels)).astype(np.float32)
        else:
            source = (rng.standard_normal((*shape, channels)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
            matrix = rng.standard_normal((outputs, channels)).astype(np.float32)
        if rng.random() < 0.2:
            matrix[rng.integers(outputs), rng.integers(channels)] = 0
        got, expected = (np.full((*shape, outputs), np.nan, np.float32) for _ in range(2))
        mix(source, matrix, got, np.empty(shape, np.float32), True, native=True)
        mix(source, matrix, expected, np.empty(shape, np.float32), True, native=False)
        if integer:
            np.testing.assert_array_equal(got, expected)
        else:  # float32 sums in another order: a few roundings of the largest term apart
            bound = np.abs(source) @ np.abs(matrix).T.astype(np.float64)
            assert np.all(np.abs(got.astype(np.float64) - expected) <= 4 * np.finfo(np.float32).eps * bound)


def test_a_mix_with_a_zero_weight_keeps_an_infinity_from_the_outputs_that_do_not_read_it():
    from convfilter.engine.mixing import mix

    source = np.array([[[np.inf, 1.0, 2.0]]], np.float32)  # an overflow of an earlier pass
    matrix = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]], np.float32)
    got = np.empty((1, 1, 2), np.float32)
    mix(source, matrix, got, np.empty((1, 1), np.float32), True, native=True)
    assert got.tolist() == [[[3.0, np.inf]]]


def _blur(rng: np.random.Generator) -> np.ndarray:
    """A random blur: a Gaussian or a random separable kernel of non-negative weights summing to 1."""
    kh, kw = (int(v) * 2 + 1 for v in rng.integers(0, 9, 2))
    if rng.random() < 0.5:
        import cv2

        u = cv2.getGaussianKernel(kh, float(rng.uniform(0.3, 6)), cv2.CV_64F).ravel()
        v = cv2.getGaussianKernel(kw, float(rng.uniform(0.3, 6)), cv2.CV_64F).ravel()
    else:
        u, v = rng.random(kh) + 0.01, rng.random(kw) + 0.01
        u, v = u / u.sum(), v / v.sum()
    return np.outer(u, v).astype(np.float32)


def test_blurs_handed_over_as_pixels_are_the_float_sums_rounded(rng):
    drawn = 0
    for _ in range(150):
        kernel = _blur(rng)
        dtype = np.dtype(rng.choice([np.uint8, np.uint16]))
        top = np.iinfo(dtype).max
        shape = (int(rng.integers(2, 160)), int(rng.integers(2, 160)), int(rng.integers(1, 5)))
        x = rng.integers(0, top, shape, endpoint=True).astype(dtype)
        if rng.random() < 0.3:  # flat areas at the extremes
            x[: shape[0] // 2] = top if rng.random() < 0.5 else 0
        weight = np.broadcast_to(kernel, (shape[2], 1, *kernel.shape))
        mode = str(rng.choice(["zeros", "reflect", "replicate"]))
        conv = Convolution(x, weight, groups=shape[2], padding_mode=mode)
        if conv.block_dtype(dtype) != dtype:
            assert min(shape[:2]) <= max(kernel.shape) or plan_name(conv) != "Factored/NativeSeparable"
            continue
        drawn += 1
        got = np.empty(conv.shape, dtype)
        rows = int(rng.integers(1, shape[0] + 1)) if rng.random() < 0.5 else None

        def sink(r0, block, got=got, dtype=dtype):
            assert block.dtype == dtype
            got[r0 : r0 + len(block)] = block

        conv.run_into(sink, threads=int(rng.integers(1, 4)), dtype=dtype, strip_rows=rows)
        # the sums in float64: only a sum within float32's rounding of a half may round either way
        kh, kw = kernel.shape
        pad = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
        padded = np.pad(x.astype(np.float64), ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode=pad)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(0, 1))
        sums = np.einsum("hwcij,ij->hwc", windows, kernel.astype(np.float64))
        expected = np.clip(np.rint(sums), 0, top)
        differ = got != expected
        assert np.all(np.abs(got - expected) <= 1), shape
        window = (kh + kw) * np.finfo(np.float32).eps * (sums[differ] + 1)
        assert np.all(np.abs(sums[differ] - np.floor(sums[differ]) - 0.5) <= window), (shape, kernel.shape)
    assert drawn > 50  # most draws: the others are images no larger than the kernel


def test_only_blurs_of_eight_and_sixteen_bit_images_are_handed_over_as_pixels(rng):
    x = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    blur = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256  # a separable pair's plan

    def blocks(image=x, kernel=blur, dtype=np.uint8, **kwargs):
        weight = np.broadcast_to(kernel, (image.shape[2], 1, *kernel.shape))
        return Convolution(image, weight, groups=image.shape[2], **kwargs).block_dtype(dtype) == dtype

    assert blocks() and blocks(padding_mode="reflect") and blocks(x.astype(np.uint16), dtype=np.uint16)
    assert not blocks(dtype=np.uint16)  # pixels of the image's own dtype only
    assert not blocks(x.astype(np.float32), dtype=np.uint8)
    assert not blocks(kernel=blur * 1.01)  # sums beyond the range: values to clip and count
    assert not blocks(kernel=np.outer([-1, 1, 3, 1, -1], [1, 4, 6, 4, 1]).astype(np.float32) / 48)  # below zero
    assert not blocks(padding_mode="circular") and not blocks(stride=2) and not blocks(padding=0)
    assert not blocks(kernel=np.full((5, 5), 1 / 25, np.float32))  # a box: OpenCV's box filter, in floats
    assert Convolution(x, np.broadcast_to(blur, (3, 1, 5, 5)), np.ones(3), groups=3).block_dtype(np.uint8) == np.float32
    with pytest.raises(ValueError, match="cannot hand over"):
        Convolution(x, np.broadcast_to(blur * 2, (3, 1, 5, 5)), groups=3).run_into(print, dtype=np.uint8)


def test_strips_of_at_least_the_kernels_reach_leave_no_shorter_last_strip(rng):
    for _ in range(200):
        height, kh = int(rng.integers(1, 80)), int(rng.integers(1, 12)) * 2 + 1
        x = np.zeros((height, 5, 1), np.float32)
        conv = Convolution(x, np.ones((1, 1, kh, 1), np.float32))
        starts = conv._starts(int(rng.integers(kh - 1, 40)))
        assert [r0 for r0, _ in starts] == [0, *np.cumsum([n for _, n in starts])[:-1].tolist()]
        assert sum(n for _, n in starts) == height
        assert all(n >= conv.geometry.reach[0] for _, n in starts) or len(starts) == 1


def test_whole_number_kernels_on_eight_bit_images_hand_over_their_exact_sums(rng):
    drawn = 0
    for _ in range(250):
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        kernel = rng.integers(-4, 5, (kh, kw)).astype(np.float32)
        if not kernel.any() or (np.abs(kernel).min() == 0 and rng.random() < 0.5):
            kernel[kh // 2, kw // 2] = 5
        shape = (int(rng.integers(1, 90)), int(rng.integers(1, 90)), int(rng.integers(1, 5)))
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        kwargs = {
            "padding_mode": str(rng.choice(["zeros", "reflect", "replicate", "circular"])),
            "stride": (int(rng.integers(1, 3)), 1),
            "dilation": (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
        }
        weight = np.broadcast_to(kernel, (shape[2], 1, kh, kw))
        try:
            conv = Convolution(x, weight, groups=shape[2], **kwargs)
        except ArgumentError:  # a reflection wider than the image, or no output
            continue
        if conv.block_dtype(np.uint8) != np.int16:
            continue
        drawn += 1
        got = np.empty(conv.shape, np.int16)

        def sink(r0, block, got=got):
            assert block.dtype == np.int16
            got[r0 : r0 + len(block)] = block

        rows = int(rng.integers(1, 40)) if rng.random() < 0.5 else None
        conv.run_into(sink, threads=int(rng.integers(1, 4)), dtype=np.int16, strip_rows=rows)
        expected = Convolution(x, weight, groups=shape[2], engine="numpy", **kwargs).run()
        np.testing.assert_array_equal(got, expected)  # whole numbers: exact on both
    assert drawn > 40  # the planner picks 16-bit taps for about one kernel in five


def test_only_whole_number_kernels_of_scale_one_hand_over_int16_sums(rng):
    x = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)

    def sums(image=x, kernel=sharpen, pixels=np.uint8, bias=None, **kwargs):
        weight = np.broadcast_to(kernel, (image.shape[2], 1, *kernel.shape))
        return Convolution(image, weight, bias, groups=image.shape[2], **kwargs).block_dtype(pixels) == np.int16

    assert sums() and sums(stride=(2, 1)) and sums(pixels=np.uint16)
    assert not sums(kernel=sharpen / 2)  # a whole-number kernel times a scale: float32 sums
    assert not sums(image=x.astype(np.uint16), pixels=np.uint16)  # 16-bit sums need not fit
    assert not sums(stride=(1, 2)) and not sums(bias=np.ones(3)) and not sums(pixels=np.float32)
    dense = Convolution(x, rng.integers(-2, 3, (3, 3, 3, 3)).astype(np.float32))
    assert dense.block_dtype(np.uint8) == np.float32
