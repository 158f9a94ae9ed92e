"""The benchmark suite keeps working: it runs end to end on a tiny photo. No time is asserted."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_suite_runs_on_a_tiny_photo():
    done = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "run.py", "--size", "96x64", "--repeat", "1", "--batch", "4x64x48"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("Machine: ") and "Test photo: samples/astronaut.png resized to 96×64" in out
    for case in ("depthwise 3×3 (sharpen)", "dense 3→3 3×3 (edge)", "depthwise 31×31 random"):
        assert f"| {case} |" in out
    for case in ("layer 256→256 3×3, 4×4 image", "Gaussian σ=42, 255×255", "sharpen 3×3, dilation 10000"):
        assert f"| {case} |" in out
    assert "| edge, 96×64 JPG | convfilter edge |" in out
    for job in ("sharpen, 192×128 JPG | convfilter sharpen", "gaussian, 192×128 JPG | convfilter gaussian -p sigma=2",
                "identity, 192×128 TIF | convfilter identity"):  # fmt: skip
        assert f"| {job} |" in out
    assert "| convfilter edge DIR -o OUT |" in out and "(4 photos, 64×48 JPEG)" in out
    # every engine row names a relative difference from OpenCV, and it is float32 rounding
    rows = [line for line in out.splitlines() if line.startswith("| depthwise") or line.startswith("| dense")]
    assert len(rows) == 6
    assert all(float(row.rstrip(" |").rsplit("|", 1)[1]) < 1e-4 for row in rows)
