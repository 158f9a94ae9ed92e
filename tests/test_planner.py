"""Planning is bounded: no weight makes the installed command hang or take more memory than
its output plus a working set, and every large kernel has a fast exact route. Each case runs
the installed command under an address-space limit, with a deadline that only catches a hang,
and reads the child's own peak resident memory from ``wait4``; results are checked against
independent references (PyTorch, SciPy)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SAMPLES, capped
from PIL import Image
from scipy.signal import fftconvolve

from convfilter import load_kernel
from convfilter.engine import Convolution

MEMORY_LIMIT = 3 << 30
MiB = 1 << 20


def run_measured(command: Path, args: list, cwd: Path, deadline: float = 600) -> tuple[int, str, int]:
    """Run the command; return its exit status, standard error and peak resident bytes."""
    with open(cwd / ".stderr", "w+b") as err:
        child = subprocess.Popen(
            capped([command, *args], MEMORY_LIMIT),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        end = time.monotonic() + deadline
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > end:
                os.kill(child.pid, signal.SIGKILL)
                os.wait4(child.pid, 0)
                pytest.fail(f"convfilter {' '.join(map(str, args))} still ran after {deadline} s")
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    (cwd / ".stderr").unlink()
    return child.returncode, stderr, usage.ru_maxrss * 1024


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> int:
    """Peak memory of the command on a tiny image: the interpreter and its libraries."""
    folder = tmp_path_factory.mktemp("baseline")
    Image.new("RGB", (8, 8)).save(folder / "tiny.png")
    command = Path(sys.executable).parent / "convfilter"
    code, stderr, peak = run_measured(command, ["identity", "tiny.png", "-o", "out.png", "-q"], folder)
    assert code == 0, stderr
    return peak


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_dense_128_channel_layer_plans_within_its_output(convfilter_command, tmp_path, baseline, rng):
    # a [128, 128, 3, 3] layer (590 KB) on a 32×32×128 array peaked at 4.25 GB in its SVD
    weight = rng.standard_normal((128, 128, 3, 3)).astype(np.float32)
    x = rng.standard_normal((32, 32, 128)).astype(np.float32)
    np.save(tmp_path / "layer.npy", weight)
    np.save(tmp_path / "x.npy", x)
    code, stderr, peak = run_measured(convfilter_command, ["layer.npy", "x.npy", "-o", "out.npy", "-q"], tmp_path)
    assert code == 0, stderr
    out = np.load(tmp_path / "out.npy")
    assert peak <= baseline + out.nbytes + 100 * MiB, f"{peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"
    # the layer's default padding for a weight file is reflect, "same"
    t = F.pad(torch.from_numpy(x).permute(2, 0, 1)[None].double(), (1, 1, 1, 1), mode="reflect")
    expected = F.conv2d(t, torch.from_numpy(weight).double())[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_a_256_channel_layer_plans_within_100_mib(rng):
    import tracemalloc

    weight = rng.standard_normal((256, 256, 3, 3))
    tracemalloc.start()
    conv = Convolution(np.zeros((4, 4, 256), np.float32), weight, padding=1)
    conv.run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 100 * MiB, f"{peak / MiB:.0f} MiB"


def test_a_bank_of_8000_kernels_takes_no_more_than_a_working_set(convfilter_command, tmp_path, baseline, rng):
    # 8000 1×1 kernels combined by max: 9 GB for a full SVD of a 24000×1 matrix
    values = rng.uniform(-2, 2, 8000).round(3)
    (tmp_path / "bank.yaml").write_text(
        "weights: [" + ", ".join(f"[[{v}]]" for v in values) + "]\ncombine: max\npadding: zeros\n"
    )
    Image.open(SAMPLES / "cat.jpeg").save(tmp_path / "cat.png")
    code, stderr, peak = run_measured(convfilter_command, ["bank.yaml", "cat.png", "-o", "out.png", "-q"], tmp_path)
    assert code == 0, stderr
    assert peak <= baseline + 100 * MiB, f"{peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"
    x = pixels(tmp_path / "cat.png").astype(np.float64)
    expected = np.clip(np.rint(np.maximum(x * values.max(), x * values.min())), 0, 255)
    np.testing.assert_array_equal(pixels(tmp_path / "out.png"), expected)


@pytest.mark.parametrize(
    "text",
    [
        "weights: [[1.0e+39, 0, 0], [0, 1, 0], [0, 0, 1]]\n",
        "weights: [[1.0e+300, -1.0e+300, 1.0e-10]]\nnormalize: true\n",
        "weights: [[1.0e+30]]\nscale: 1.0e+30\n",
    ],
    ids=["beyond-float32", "normalized-to-infinity", "scaled-to-infinity"],
)
def test_weights_beyond_float32_are_a_kernel_error(convfilter_command, tmp_path, text):
    (tmp_path / "k.yaml").write_text(text)
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    code, stderr, _ = run_measured(convfilter_command, ["k.yaml", "in.png", "-o", "out.png"], tmp_path, deadline=60)
    assert code == 2
    message = "kernel file k.yaml: the weights must be finite numbers within float32's range (±3.4e38)"
    assert stderr == f"convfilter: error: {message}\n"
    assert not (tmp_path / "out.png").exists()


def _reflect_reference(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with reflect padding, in float64 by SciPy's FFT, rounded and saturated."""
    ky, kx = (k // 2 for k in kernel.shape)
    padded = np.pad(x.astype(np.float64), ((ky, ky), (kx, kx), (0, 0)), mode="reflect")
    out = np.stack([fftconvolve(padded[..., c], kernel[::-1, ::-1], mode="valid") for c in range(3)], -1)
    return np.clip(np.rint(out), 0, 255)


@pytest.mark.parametrize(
    "args",
    [["gaussian", "-p", "sigma=42", "-p", "size=255"], ["box", "-p", "size=255"], ["disk", "-p", "radius=127"]],
    ids=["gaussian-255", "box-255", "disk-255"],
)
def test_a_255_kernel_has_a_fast_exact_route(convfilter_command, tmp_path, baseline, args):
    # these fell back to 65,025 taps per pixel: 29 s on the cat, ~45 min on 12 MP
    Image.open(SAMPLES / "cat.jpeg").save(tmp_path / "cat.png")
    code, stderr, peak = run_measured(convfilter_command, [*args, "cat.png", "-o", "out.png", "-q"], tmp_path)
    assert code == 0, stderr
    assert peak <= baseline + 100 * MiB, f"{peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"
    params = dict(a.split("=") for a in args[2::2])
    kernel = load_kernel(args[0], params).weights.astype(np.float64)
    expected = _reflect_reference(pixels(tmp_path / "cat.png"), kernel)
    # float32 rounding may move a value that sits on .5 by one level
    assert np.abs(pixels(tmp_path / "out.png") - expected).max() <= 1


def _reflect(i: int, n: int) -> int:
    while not 0 <= i < n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_a_dilation_of_10000_needs_only_the_taps_inside(convfilter_command, tmp_path, baseline, padding):
    # over 120 s and 2.2 GiB a strip: a padded strip 20,000 samples wide for a 300-wide image
    Image.open(SAMPLES / "cat.jpeg").save(tmp_path / "cat.png")
    command = ["sharpen", "cat.png", "-o", "out.png", "--dilation", "10000", "--padding", padding, "-q"]
    code, stderr, peak = run_measured(convfilter_command, command, tmp_path)
    assert code == 0, stderr
    assert peak <= baseline + 100 * MiB, f"{peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"
    x = pixels(tmp_path / "cat.png").astype(np.float64)
    height, width, _ = x.shape
    expected = np.zeros_like(x)
    sharpen = {(0, 0): 5, (-1, 0): -1, (1, 0): -1, (0, -1): -1, (0, 1): -1}
    for (i, j), w in sharpen.items():
        if padding == "zeros":
            if (i, j) == (0, 0):  # every other tap reads only padding
                expected += w * x
            continue
        rows = [_reflect(r + 10000 * i, height) for r in range(height)]
        cols = [_reflect(c + 10000 * j, width) for c in range(width)]
        expected += w * x[rows][:, cols]
    np.testing.assert_array_equal(pixels(tmp_path / "out.png"), np.clip(expected, 0, 255))


def test_params_with_a_trillion_channels_lists_few_divisors(convfilter_command, tmp_path):
    args = ["params", "--in-channels", "1000000000000", "--out-channels", "1000000000000", "--kernel-size", "3"]
    done = subprocess.run([convfilter_command, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "for g in 1, 2, 4, 5, 8, 10, 16, 20, 25, …, 1000000000000 (169 in all)" in done.stdout
    too_many = subprocess.run([convfilter_command, *args[:1], "--in-channels", str(2**40 + 1), *args[3:]],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert too_many.returncode == 2
    assert "1<=x<=1099511627776" in too_many.stderr


@pytest.mark.parametrize(
    "args",
    [["gaussian", "-p", "sigma=42", "--dilation", "60"], ["w31.npy", "--dilation", "200"]],
    ids=["gaussian-255-dilated-60", "random-31-dilated-200"],
)
def test_a_dilated_large_kernel_on_a_wide_image_stays_bounded(convfilter_command, tmp_path, baseline, args, rng):
    # both ended in "unexpected MemoryError": a halo of thousands of rows on a strip as wide as the reach
    Image.fromarray(rng.integers(0, 256, (64, 3000, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    np.save(tmp_path / "w31.npy", rng.standard_normal((31, 31)).astype(np.float32))
    code, stderr, peak = run_measured(convfilter_command, [args[0], "wide.png", "-o", "out.png", "-q", *args[1:]],
                                      tmp_path)  # fmt: skip
    assert code == 0, stderr
    assert peak <= baseline + 100 * MiB, f"{peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"
