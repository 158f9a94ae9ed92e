"""The engine against PyTorch on random configurations from the whole argument space.

The number of draws and the seed come from the environment, so that a long profile runs the
same test: ``CONVFILTER_DRAWS=20000 CONVFILTER_SEED=7 python -m pytest tests/test_differential.py``.
Each draw ``i`` uses the generator ``default_rng([seed, i])``, so a failure is reproduced by its
number alone; shrunk failures live on as plain tests in ``test_engine.py``. The main test runs the
engine as ``CONVFILTER_ENGINE`` says (run it once with ``CONVFILTER_ENGINE=numpy`` too); the tests
of single plans pick the engine that can reach each plan.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from differential import Config, check, draw, plan_name

from convfilter import UsageError
from convfilter.engine import native, plan, spatial, taps

DRAWS = int(os.environ.get("CONVFILTER_DRAWS", "4000"))
SEED = int(os.environ.get("CONVFILTER_SEED", "20261126"))
NUMPY_PLANS = (
    "Direct",
    "IntegerDirect",
    "Separable",
    "RowMatmul",
    "FFT",
    "General",
    "TapMatmul",
    "Gather",
    "SeparableGather",
    "PerPair",
)
NATIVE_PLANS = ("NativeBox", "NativeSeparable", "NativeDirect")
PLANS = NUMPY_PLANS + NATIVE_PLANS


def _draws(count: int, seed: int = SEED, engine: str | None = None):
    for i in range(count):
        cfg = draw(np.random.default_rng([seed, i]))
        cfg.engine = engine
        yield i, cfg


def test_engine_matches_pytorch_on_random_configurations():
    failures = []
    for i, cfg in _draws(DRAWS):
        problem = check(cfg)
        if problem:
            failures.append(f"draw {i} (seed {SEED}): {problem}\n    {cfg.describe()}")
    assert not failures, f"{len(failures)} of {DRAWS} draws disagree with PyTorch:\n" + "\n".join(failures[:20])


def _planned(cfg: Config):
    try:
        return cfg.convolution()
    except UsageError:
        return None


def test_every_plan_is_drawn():
    for engine, expected in (("numpy", set(NUMPY_PLANS)), ("auto", set(NATIVE_PLANS))):
        drawn = {plan_name(conv) for _, cfg in _draws(1500, engine=engine) if (conv := _planned(cfg)) is not None}
        assert drawn == expected if engine == "numpy" else drawn >= expected, (engine, drawn)


def _corrupt(method):
    """``method`` with its result off by one part in a thousand: subtle, but past the tolerance."""

    def corrupted(self, *args, **kwargs):
        method(self, *args, **kwargs)
        out = args[3] if method.__name__ == "compute" else args[1]
        out *= np.float32(1.001)

    corrupted.__name__ = method.__name__
    return corrupted


OWNERS = {
    "Direct": spatial.Direct,
    "IntegerDirect": spatial.IntegerDirect,
    "Separable": spatial.Separable,
    "RowMatmul": spatial.RowMatmul,
    "FFT": spatial.FFT,
    "General": taps.General,
    "TapMatmul": taps.TapMatmul,
    "Gather": taps.Gather,
    "SeparableGather": taps.Gather,
    "PerPair": plan.PerPair,
    "NativeBox": native.NativeBox,
    "NativeSeparable": native.NativeSeparable,
    "NativeDirect": native.NativeDirect,
}


def _first_caught(name: str, limit: int = 3000) -> int | None:
    engine = "auto" if name in NATIVE_PLANS else "numpy"
    for i, cfg in _draws(limit, engine=engine):
        conv = _planned(cfg)
        if conv is not None and plan_name(conv) == name and check(cfg, conv):
            return i
    return None


@pytest.mark.parametrize("name", PLANS)
def test_a_plan_off_by_a_thousandth_is_caught(name, monkeypatch):
    owner = OWNERS[name]
    attribute = "compute" if "Gather" in name else "filter" if name in NATIVE_PLANS else "__call__"
    monkeypatch.setattr(owner, attribute, _corrupt(owner.__dict__[attribute]))
    assert _first_caught(name) is not None, f"a broken {name} passed every draw"


def test_a_kernel_flipped_on_one_axis_in_one_plan_is_caught(monkeypatch):
    # the separable plan applying its horizontal pass mirrored
    real_init = spatial.Separable.__init__

    def mirrored(self, terms):
        real_init(self, [(u, v[::-1]) for u, v in terms])

    monkeypatch.setattr(spatial.Separable, "__init__", mirrored)
    assert _first_caught("Separable") is not None
