"""A result written over its own input: no strip ever reads a row another has already replaced,
whatever order strips finish in, and the pixels are those of a result written apart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convfilter.engine import core, plan, taps
from convfilter.kernel import Kernel
from convfilter.overwrite import Overwrite
from convfilter.pipeline import filter_pixels


def _copy(values: np.ndarray, destination: np.ndarray) -> None:
    destination[...] = values


@pytest.mark.parametrize("seed", range(20))
def test_no_strip_reads_a_row_already_replaced_in_any_order(seed):
    rng = np.random.default_rng([5, seed])
    height, reach = int(rng.integers(1, 120)), int(rng.integers(0, 12))
    image = np.arange(height, dtype=np.int64)[:, None, None] * np.ones((1, 3, 2), np.int64)
    original = image.copy()
    cuts = np.unique(np.concatenate([[0, height], rng.integers(0, height, int(rng.integers(0, 30)))]))
    strips = list(itertools.pairwise(cuts))
    over = Overwrite(image, reach)
    for first, end in (strips[i] for i in rng.permutation(len(strips))):
        rows = slice(max(0, first - reach), min(height, end + reach))
        np.testing.assert_array_equal(image[rows], original[rows])  # what this strip reads is intact
        over.write(int(first), -original[first:end, :, :1] - 1, _copy)  # one channel, broadcast to all
    over.finish()
    np.testing.assert_array_equal(image, -original - 1)


def test_a_row_never_computed_is_reported():
    over = Overwrite(np.zeros((10, 1, 1)), 2)
    over.write(0, np.ones((5, 1, 1)), _copy)
    with pytest.raises(RuntimeError, match="never placed"):
        over.finish()


@pytest.fixture
def small_strips(monkeypatch):
    """Strips of a few rows on every route, so that a small image has many seams."""
    for module, name in ((core, "STRIP_BYTES"), (taps, "STRIP_BYTES"), (plan, "NATIVE_STRIP_BYTES"),
                         (plan, "NATIVE_BLOCK_BYTES"), (plan, "NATIVE_TRANSFORM_BYTES")):  # fmt: skip
        monkeypatch.setattr(module, name, 6000)


@pytest.mark.parametrize("seed", range(6))
def test_a_result_written_over_its_input_is_the_result_written_apart(small_strips, seed):
    rng = np.random.default_rng([6, seed])
    for _ in range(40):
        kh, kw = (int(v) for v in rng.integers(1, 12, 2))
        channels = int(rng.choice([1, 3, 4]))
        form = rng.choice(["box", "random", "separable", "whole"])
        if form == "box":
            weights = np.ones((kh, kw), np.float32)
        elif form == "random":
            weights = rng.standard_normal((kh, kw)).astype(np.float32)
        elif form == "separable":
            weights = np.outer(rng.random(kh), rng.random(kw)).astype(np.float32)
        else:
            weights = rng.integers(-3, 4, (kh, kw)).astype(np.float32)
        weights /= max(1.0, float(np.abs(weights).sum()))
        kernel = Kernel(
            name="k", source="kernel k", weights=weights, mix=str(rng.choice(["depthwise", "dense"])),
            padding_mode=str(rng.choice(["zeros", "reflect", "replicate", "circular"])),
            dilation=tuple(int(v) for v in rng.integers(1, 3, 2)), alpha=str(rng.choice(["keep", "filter"])),
            range=str(rng.choice(["clip", "abs", "offset", "normalize"])),
        )  # fmt: skip
        dtype = np.uint8 if rng.random() < 0.7 else np.uint16
        shape = (int(rng.integers(24, 90)), int(rng.integers(8, 70)), channels)
        image = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
        fmt = "png"
        want, _ = filter_pixels(image.copy(), kernel, fmt, threads=2)
        given = image.copy()
        got, _ = filter_pixels(given, kernel, fmt, threads=2, reuse=True)
        np.testing.assert_array_equal(got, want)
        if got is given:  # written over: the caller's array holds the result
            assert kernel.padding_mode != "circular"


def test_the_caller_keeps_its_pixels_unless_it_gives_them_up():
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    kernel = Kernel(name="k", source="kernel k", weights=np.full((3, 3), 1 / 9, np.float32))
    before = image.copy()
    filter_pixels(image, kernel, "png")
    np.testing.assert_array_equal(image, before)
    assert filter_pixels(image, kernel, "png", reuse=True)[0] is image
