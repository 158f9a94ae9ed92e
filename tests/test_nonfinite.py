"""Images holding NaN and infinities: the finite plan with its corrections (``nonfinite.py``)
against the NumPy engine's tap-by-tap sums that skip zero weights, on random configurations
from the whole argument space with non-finite values strewn, in blocks and along borders."""

from __future__ import annotations

import numpy as np
import pytest
from differential import draw, plan_name, run

from convfilter.engine import Convolution
from convfilter.engine.nonfinite import NonFinite, finite_range


def _strew(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """``x`` as float with NaN, +inf and -inf (and float64 values beyond float32's range) put in:
    scattered, as a block, or along a border column."""
    x = x.astype(np.float64 if rng.random() < 0.3 else np.float32)
    kind = rng.integers(3)
    for value in (np.nan, np.inf, -np.inf, -1e300 if x.dtype == np.float64 else np.nan):
        if kind == 0:
            x[rng.random(x.shape) < rng.choice([0.002, 0.02, 0.2])] = value
        elif kind == 1:
            r, c = rng.integers(0, x.shape[0]), rng.integers(0, x.shape[1])
            x[r : r + int(rng.integers(1, 6)), c : c + int(rng.integers(1, 6)), rng.integers(x.shape[2])] = value
        else:
            x[:, int(rng.choice([0, -1])), rng.integers(x.shape[2])] = value
    return x


def _pattern_differs(a: np.ndarray, b: np.ndarray) -> str | None:
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        if (test(a) != test(b)).any():
            return f"{int((test(a) != test(b)).sum())} outputs differ in {name}"
    finite = np.isfinite(a)
    scale = max(1.0, float(np.abs(b[finite]).max(initial=0)))
    if not np.allclose(a[finite], b[finite], rtol=1e-4, atol=1e-4 * scale):
        return "finite outputs differ"
    return None


def _compare(cfg) -> tuple[str | None, str]:
    cfg.engine = "auto"
    fast = cfg.convolution()
    got = run(cfg, fast)
    cfg.engine = "numpy"
    expected = run(cfg, cfg.convolution())
    return _pattern_differs(got, expected), type(fast.plan).__name__ + "/" + plan_name(fast)


def test_non_finite_images_match_tap_by_tap_sums_on_random_configurations():
    failures, plans = [], set()
    for i in range(400):
        rng = np.random.default_rng([91, i])
        cfg = draw(rng)
        cfg.x = _strew(rng, cfg.x)
        cfg.bias = None if cfg.bias is None else np.nan_to_num(cfg.bias)
        # sums of finite values beyond float32's range overflow in an order-dependent way: keep them small
        cfg.x[np.isfinite(cfg.x)] %= 100
        try:
            problem, name = _compare(cfg)
        except ValueError:  # a configuration both engines refuse
            continue
        plans.add(name)
        if problem:
            failures.append(f"draw {i}: {name}: {problem}\n    {cfg.describe()}")
    assert not failures, "\n".join(failures[:10])
    assert sum(name.startswith("NonFinite") for name in plans) >= 5, plans


def test_the_comparison_catches_a_missed_infinity(monkeypatch, rng):
    x = rng.standard_normal((30, 30, 1)).astype(np.float32)
    x[10, 10, 0] = np.inf
    weight = rng.standard_normal((1, 1, 3, 3))
    expected = Convolution(x, weight, engine="numpy").run()
    assert _pattern_differs(Convolution(x, weight).run(), expected) is None
    monkeypatch.setattr(NonFinite, "_reached", lambda self, conv, indicator, weight, shape: np.zeros(shape, bool))
    assert _pattern_differs(Convolution(x, weight).run(), expected) is not None


@pytest.mark.parametrize("where", ["one pixel", "a border column", "a block"])
def test_a_large_kernel_keeps_its_finite_plan_whatever_the_pixels(where, rng):
    """The plan (and so the cost) is the one a finite image gets: no fall back to 961 taps a pixel."""
    x = rng.random((120, 90, 3)).astype(np.float32)
    weight = np.broadcast_to(rng.standard_normal((31, 31)), (3, 1, 31, 31))
    finite = plan_name(Convolution(x, weight, groups=3, padding_mode="reflect"))
    if where == "one pixel":
        x[60, 45, 1] = np.nan
    elif where == "a border column":
        x[:, 0] = np.nan
    else:
        x[20:40, 30:50] = -np.inf
    conv = Convolution(x, weight, groups=3, padding_mode="reflect")
    assert isinstance(conv.plan, NonFinite) and plan_name(conv) == finite != "Direct"
    expected = Convolution(x, weight, groups=3, padding_mode="reflect", engine="numpy").run()
    assert _pattern_differs(conv.run(), expected) is None


def test_the_finite_range_skips_non_finite_values_and_reads_broadcast_views_in_bands():
    x = np.array([[[np.nan], [3.0], [-np.inf]], [[-2.0], [1e300], [np.inf]]])
    assert finite_range(x) == (-2.0, 3.0)
    assert finite_range(np.full((2, 2, 1), np.nan)) == (0.0, 0.0)
    wide = np.broadcast_to(np.arange(4.0).reshape(1, 4, 1), (100_000, 4, 3))
    assert finite_range(wide) == (0.0, 3.0)
