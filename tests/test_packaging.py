"""The wheel carries the built-in kernels: build it, install it into a fresh virtual
environment, and run the installed command from a folder far from the source tree."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile

from conftest import ROOT, SAMPLES

from convfilter.library import builtin_names


def test_wheel_in_a_fresh_venv_finds_the_kernels(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("convfilter-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("convfilter/kernels/")}
    assert {f"convfilter/kernels/{name}.yaml" for name in builtin_names()} <= shipped

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    install = subprocess.run(
        [env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    listed = subprocess.run(
        [env_dir / "bin" / "convfilter", "list"], cwd=work, capture_output=True, text=True, check=True
    )
    assert [line.split()[0] for line in listed.stdout.splitlines()] == builtin_names()
    filtered = subprocess.run(
        [env_dir / "bin" / "convfilter", "edge", SAMPLES / "cat.jpeg", "-o", "e.png", "-q"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert filtered.returncode == 0, filtered.stderr
    assert (work / "e.png").stat().st_size > 0
