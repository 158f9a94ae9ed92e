"""Shared fixtures, and an obviously-correct reference convolution to test the engine against."""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DATA = Path(__file__).resolve().parent / "data"
CAT = str(SAMPLES / "cat.jpeg")
# the last line of a batch: "8 written, 1 failed, 0 skipped in 0.4 s"
SUMMARY = re.compile(r"(\d+) written, (\d+) failed, (\d+) skipped in [\d.]+ s$")


def run(*args, input: bytes | None = None):
    """The command line in this process, through Click's runner."""
    from click.testing import CliRunner

    from convfilter.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def pixels(path) -> np.ndarray:
    """The pixels of an image file, as Pillow (not convfilter) decodes them."""
    from PIL import Image

    return np.asarray(Image.open(path))


def assert_matches_golden(path) -> None:
    """The classic example's output: the original's pixels (within JPEG-decoder rounding)."""
    ours, golden = pixels(path).astype(int), pixels(DATA / "edge-cat.seed.png").astype(int)
    assert ours.shape == golden.shape == (300, 451, 3)
    diff = np.abs(ours - golden)
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size


def assert_one_line_error(stderr: str, text: str) -> None:
    """Exactly one line, ``convfilter: error: …``, containing ``text``, and no traceback."""
    assert stderr.startswith("convfilter: error: ") and text in stderr, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, so that every run sees the same numbers."""
    return np.random.default_rng(20261125)


@pytest.fixture
def convfilter_command() -> Path:
    """The installed ``convfilter`` script of the environment running the tests."""
    script = Path(sys.executable).parent / "convfilter"
    assert script.exists(), f"convfilter is not installed next to {sys.executable}"
    return script


def _source(i: int, n: int, mode: str) -> int | None:
    """Where padded position ``i`` (0 = first real sample) reads from, or None for a zero."""
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    if mode == "circular":
        return i % n
    if n == 1:
        return 0
    while not 0 <= i < n:  # reflect about the edge samples, again and again
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def reference_conv(
    x: np.ndarray,
    weight: np.ndarray,
    bias=None,
    stride=(1, 1),
    dilation=(1, 1),
    groups: int = 1,
    padding_mode: str = "zeros",
    pads=None,
    flip: bool = False,
) -> np.ndarray:
    """Cross-correlation by explicit loops over every output value and every tap, in float64.

    ``pads`` is (top, bottom, left, right); None means PyTorch's "same" (extra at bottom/right).
    """
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    if flip:
        weight = weight[:, :, ::-1, ::-1]
    h, w, _ = x.shape
    o, cg, kh, kw = weight.shape
    sy, sx = stride
    dy, dx = dilation
    if pads is None:
        ty, tx = dy * (kh - 1), dx * (kw - 1)
        pads = (ty // 2, ty - ty // 2, tx // 2, tx - tx // 2)
    top, bottom, left, right = pads
    out_h = (h + top + bottom - dy * (kh - 1) - 1) // sy + 1
    out_w = (w + left + right - dx * (kw - 1) - 1) // sx + 1
    og = o // groups
    out = np.zeros((out_h, out_w, o))
    for oc, r, q in itertools.product(range(o), range(out_h), range(out_w)):
        g = oc // og
        total = 0.0
        for ci, i, j in itertools.product(range(cg), range(kh), range(kw)):
            yy = _source(r * sy + i * dy - top, h, padding_mode)
            xx = _source(q * sx + j * dx - left, w, padding_mode)
            if yy is not None and xx is not None:
                total += weight[oc, ci, i, j] * x[yy, xx, g * cg + ci]
        out[r, q, oc] = total + (0.0 if bias is None else bias[oc])
    return out


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding: relative 1e-4 per value, and an absolute slack of 1e-5 of
    the result's largest magnitude for values that cancel to near zero."""
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def copies_of_a_photo(folder: Path, count: int) -> None:
    """``count`` copies of astronaut.png, 00.png, 01.png, … in a new ``folder``: a batch that takes a while."""
    import shutil

    folder.mkdir()
    for i in range(count):
        shutil.copy(SAMPLES / "astronaut.png", folder / f"{i:02}.png")


def wait_for_outputs(folder: Path, count: int, timeout: float = 60) -> None:
    """Wait until ``folder`` holds ``count`` finished PNG outputs (temporary files are hidden)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (folder.exists() and len(list(folder.glob("*.png"))) >= count):
        time.sleep(0.02)


_CAP = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_AS, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


def capped(command: list, limit: int) -> list:
    """``command`` under an address-space limit of ``limit`` bytes: a small Python sets the limit
    and execs the command (a limit set in ``preexec_fn`` runs Python code between fork and exec,
    which is unsafe in a test process that has threads)."""
    return [sys.executable, "-c", _CAP, str(limit), *map(str, command)]
