"""Every bad input and fault ends in one clear line, the documented exit status, no traceback, the
inputs untouched and nothing left behind — through real runs of the installed command, under a
memory limit and a time limit; plus property tests and a replayed corpus of nasty files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convfilter import ImageError, KernelError, convolve
from convfilter.imageio import decode_image
from convfilter.kernel import parse_kernel

CORPUS = Path(__file__).parent / "corpus"
CAT = SAMPLES / "cat.jpeg"
MEMORY_LIMIT = 3 << 30  # bytes of address space: a 60000×60000 decode or a window array would not fit


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_command(command: Path, args: list, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [command, *map(str, args)], cwd=cwd, input=stdin, capture_output=True, timeout=20, preexec_fn=_limit_memory
    )


def assert_clean_failure(done: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == code, stderr
    assert stderr.startswith("convfilter: error: ") and stderr.count("\n") == 1, stderr
    assert fragment in stderr, stderr
    assert "Traceback" not in stderr


@pytest.fixture
def workdir(tmp_path):
    """A folder with a copy of the samples and a few files to get wrong."""
    (tmp_path / "cat.jpeg").write_bytes(CAT.read_bytes())
    (tmp_path / "camera.png").write_bytes((SAMPLES / "camera.png").read_bytes())
    (tmp_path / "a-file").write_text("a file, not a folder")
    (tmp_path / "bank.yaml").write_text("weights: [[[1, 0, -1]], [[1, 2, 1]]]\ncombine: none\n")
    (tmp_path / "big.yaml").write_text("weights: [[1]]\n" + "#" * (1 << 20))
    (tmp_path / "huge.yaml").write_text("weights: [" + ", ".join(["[" + ", ".join(["0"] * 256) + "]"] * 2) + "]\n")
    (tmp_path / "zero-sum.yaml").write_text("weights: [[1, -1]]\nnormalize: true\n")
    (tmp_path / "divisor.yaml").write_text("weights: [[1]]\ndivisor: 0\n")
    (tmp_path / "unknown.yaml").write_text("wieghts: [[1]]\n")
    (tmp_path / "ragged.yaml").write_text("weights: [[1, 2], [3]]\n")
    (tmp_path / "strings.yaml").write_text("weights: [[a, b]]\n")
    (tmp_path / "bools.yaml").write_text("weights: [[true, false]]\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "out-existing.png").write_bytes(b"old output")
    for name in os.listdir(CORPUS):
        (tmp_path / name).write_bytes((CORPUS / name).read_bytes())
    return tmp_path


# (arguments, exit status, a fragment of the one line) — {c} is the cat in the work folder
BATTERY = [
    # images
    (["edge", "empty.png", "-o", "o.png"], 1, "is empty, no image data"),
    (["edge", "garbage.png", "-o", "o.png"], 1, "not an image that can be decoded"),
    (["edge", "text.jpg", "-o", "o.png"], 1, "not an image that can be decoded"),
    (["edge", "truncated.jpg", "-o", "o.png"], 1, "the JPEG file is cut off; --allow-truncated"),
    (["edge", "truncated.png", "-o", "o.png"], 1, "the PNG file is cut off"),
    (["edge", "truncated.webp", "-o", "o.png"], 1, "the WEBP file is cut off"),
    (["edge", "bomb-60000.png", "-o", "o.png"], 1, "60000×60000 is 3600 MP, over the limit of 256 MP"),
    (["edge", "bomb-sof.jpg", "-o", "o.png"], 1, "65500×65500 is 4290 MP"),
    (["edge", "bomb.gif", "-o", "o.png"], 1, "65535×65535"),
    (["edge", "bomb.bmp", "-o", "o.png"], 1, "40000×40000"),
    (["edge", "cat.jpeg", "-o", "o.png", "--max-pixels", "1000"], 1, "over the limit of 0.001 MP"),
    (["edge", "png-bad-crc.png", "-o", "o.png"], 1, "not an image that can be decoded"),
    (["edge", "missing.png", "-o", "o.png"], 1, "input missing.png: no such file"),
    (["edge", "a-file/x.png", "-o", "o.png"], 1, "a-file/x.png"),
    # kernel files
    (["syntax.yaml", "cat.jpeg", "-o", "o.png"], 2, "line 2, column 1"),
    (["not-a-mapping.yaml", "cat.jpeg", "-o", "o.png"], 2, "must be a mapping of fields"),
    (["empty.yaml", "cat.jpeg", "-o", "o.png"], 2, "the file is empty"),
    (["unknown.yaml", "cat.jpeg", "-o", "o.png"], 2, "unknown field 'wieghts'"),
    (["ragged.yaml", "cat.jpeg", "-o", "o.png"], 2, "'weights' row 2 has 1 numbers, row 1 has 2"),
    (["strings.yaml", "cat.jpeg", "-o", "o.png"], 2, "item 1 is 'a', not a finite number"),
    (["bools.yaml", "cat.jpeg", "-o", "o.png"], 2, "item 1 is True, not a finite number"),
    (["nan.yaml", "cat.jpeg", "-o", "o.png"], 2, "item 2 is nan, not a finite number"),
    (["divisor.yaml", "cat.jpeg", "-o", "o.png"], 2, "'divisor' must not be 0"),
    (["zero-sum.yaml", "cat.jpeg", "-o", "o.png"], 2, "'normalize' divides by the sum of the weights, which is 0"),
    (["alias-bomb.yaml", "cat.jpeg", "-o", "o.png"], 2, "anchors and aliases (&, *) are not allowed"),
    (["deep.yaml", "cat.jpeg", "-o", "o.png"], 2, "nested deeper than 16 levels"),
    (["duplicate-keys.yaml", "cat.jpeg", "-o", "o.png"], 2, "duplicate key 'weights'"),
    (["big.yaml", "cat.jpeg", "-o", "o.png"], 2, "larger than 1 MiB"),
    (["huge.yaml", "cat.jpeg", "-o", "o.png"], 2, "'weights' is 2×256, larger than 255×255"),
    (["python-tag.yaml", "cat.jpeg", "-o", "o.png"], 2, "could not determine a constructor"),
    (["binary.yaml", "cat.jpeg", "-o", "o.png"], 2, "kernel file binary.yaml"),
    (["corrupt.npy", "cat.jpeg", "-o", "o.png"], 2, "not a readable .npy array"),
    (["object.npy", "cat.jpeg", "-o", "o.png"], 2, "not a readable .npy array"),
    (["rank3.npy", "cat.jpeg", "-o", "o.png"], 2, "has shape (2, 3, 3)"),
    (["strings.npy", "cat.jpeg", "-o", "o.png"], 2, "holds <U1 values; a kernel holds integers or floats"),
    (["nosuch", "cat.jpeg", "-o", "o.png"], 2, "unknown kernel 'nosuch'"),
    # options
    (["edge", "cat.jpeg", "-o", "o.png", "--groups", "0"], 2, "0 is not in the range x>=1"),
    (["edge", "cat.jpeg", "-o", "o.png", "--groups", "2"], 2, "try one of 1, 3"),
    (["edge", "cat.jpeg", "-o", "o.png", "--stride", "0"], 2, "0 is not in the range x>=1"),
    (["edge", "cat.jpeg", "-o", "o.png", "--dilation", "-1"], 2, "-1 is not in the range x>=1"),
    (["edge", "cat.jpeg", "-o", "o.png", "--padding", "mirror"], 2, "'mirror' is not one of"),
    (["edge", "cat.jpeg", "-o", "o.png", "--range", "wrap"], 2, "'wrap' is not one of"),
    (["edge", "cat.jpeg", "-o", "o.png", "--quality", "101"], 2, "101 is not in the range 0<=x<=100"),
    (["edge", "cat.jpeg", "-o", "o.gif"], 2, "unknown extension .gif"),
    (["gaussian", "-p", "sigma", "cat.jpeg", "-o", "o.png"], 2, "expected NAME=VALUE, got 'sigma'"),
    (["gaussian", "-p", "radius=2", "cat.jpeg", "-o", "o.png"], 2, "takes no parameter 'radius'"),
    (["gaussian", "-p", "sigma=-1", "cat.jpeg", "-o", "o.png"], 2, "parameter sigma must be > 0"),
    (["bank.yaml", "cat.jpeg", "-o", "o.png"], 2, "a result with 6 channels cannot be written as PNG"),
    # outputs
    (["edge", "cat.jpeg", "-o", "no/such/folder/o.png"], 2, "the folder no/such/folder does not exist"),
    (["edge", "cat.jpeg", "-o", "a-file/o.png"], 2, "the folder a-file does not exist"),
    (["edge", "cat.jpeg", "-o", "cat.jpeg"], 2, "is the input; writing over an input is refused"),
    # streams
    (["edge", "-", "-o", "o.png"], 1, "input <stdin>: is empty"),
    (["edge", "-", "-o", "o.png", "STDIN:garbage"], 1, "input <stdin>: not an image that can be decoded"),
]


@pytest.mark.parametrize(("args", "code", "fragment"), BATTERY, ids=[" ".join(a[:3]) for a, _, _ in BATTERY])
def test_battery(workdir, convfilter_command, args, code, fragment):
    stdin = b""
    if args[-1].startswith("STDIN:"):
        stdin, args = args[-1][6:].encode(), args[:-1]
    before = digest(workdir)
    done = run_command(convfilter_command, args, workdir, stdin)
    assert_clean_failure(done, code, fragment)
    assert digest(workdir) == before  # inputs untouched, no output, no temporary file
    assert not Path("/tmp/convfilter-pwned").exists()


def test_battery_has_forty_cases_or_more():
    assert len(BATTERY) >= 40


def test_full_disk_keeps_the_old_output(workdir, convfilter_command):
    shell = f"ulimit -f 16; exec '{convfilter_command}' identity '{SAMPLES / 'astronaut.png'}' -o out-existing.png"
    done = subprocess.run(["bash", "-c", shell], cwd=workdir, capture_output=True, timeout=20)
    assert_clean_failure(done, 1, "cannot write (File too large)")
    assert (workdir / "out-existing.png").read_bytes() == b"old output"
    assert not [n for n in os.listdir(workdir) if n.endswith(".convfilter-tmp")]


def test_closed_pipe_is_quiet(workdir, convfilter_command):
    shell = f"'{convfilter_command}' sharpen '{SAMPLES / 'astronaut.png'}' --format png -q | head -c 100 > /dev/null"
    done = subprocess.run(["bash", "-c", shell], cwd=workdir, capture_output=True, timeout=20)
    assert done.stderr == b""


def test_allow_truncated_decodes_what_is_there(workdir, convfilter_command):
    for name in ("truncated.jpg", "truncated.png"):
        done = run_command(
            convfilter_command, ["identity", name, "-o", f"{name}.out.png", "--allow-truncated", "-q"], workdir
        )
        assert done.returncode == 0, done.stderr
        assert (workdir / f"{name}.out.png").stat().st_size > 0


def test_corpus_replay_in_process():
    """Every nasty file, as an image and as a kernel: only convfilter's own errors come out."""
    from convfilter.library import load_kernel

    for path in sorted(CORPUS.iterdir()):
        data = path.read_bytes()
        with contextlib.suppress(ImageError):
            decode_image(data, path.name)
        if path.suffix in (".yaml", ".npy"):
            # one line that names the file first, as the command prints it
            with pytest.raises(KernelError, match=rf"^kernel file {re.escape(str(path))}: [^\n]+$"):
                load_kernel(path)


# YAML-like values: what a kernel file can hold
_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)  # fmt: skip
_values = st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)  # fmt: skip
_fields = st.sampled_from(["weights", "generator", "mix", "padding", "stride", "divisor", "scale", "bias", "range"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_values, st.dictionaries(_fields, _values, max_size=5)))
def test_random_kernel_structures_raise_only_kernel_errors(data):
    try:
        kernel = parse_kernel(data, "k", "kernel file k.yaml")
    except KernelError:
        return
    kernel.layer(3)  # may raise KernelError only
    assert kernel.weights.dtype == np.float32


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_yaml_text_raises_only_kernel_errors(text):
    from convfilter.library import read_yaml

    try:
        data = read_yaml(text.encode(), "kernel file k.yaml")
        parse_kernel(data, "k", "kernel file k.yaml")
    except KernelError:
        pass


_REAL = [(SAMPLES / name).read_bytes() for name in ("cat.jpeg", "camera.png", "logo.png")]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(_REAL))), st.floats(0, 1), st.binary(max_size=64), st.integers(0, 2**31))
def test_truncated_and_corrupted_images_raise_only_image_errors(which, cut, noise, position):
    data = bytearray(_REAL[which][: max(0, int(len(_REAL[which]) * cut))])
    if data and noise:
        start = position % len(data)
        data[start : start + len(noise)] = noise
    try:
        image = decode_image(bytes(data), "x")
    except ImageError:
        return
    assert image.pixels.ndim == 3


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_image_errors(data):
    with contextlib.suppress(ImageError):
        decode_image(data, "x")


_small = st.integers(1, 4)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), _small, st.sampled_from([1, 3]), st.sampled_from(["zeros", "reflect", "circular"]))
def test_engine_is_linear_and_splits_into_its_groups(seed, k, groups, mode):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, 9, 8, 3))
    w = rng.standard_normal((6, 3 // groups, k, k + 1))
    lhs = convolve(2 * a - 3 * b, w, groups=groups, padding_mode=mode)
    rhs = 2 * convolve(a, w, groups=groups, padding_mode=mode) - 3 * convolve(b, w, groups=groups, padding_mode=mode)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-4)
    if groups == 3:
        parts = [convolve(a[..., g : g + 1], w[2 * g : 2 * g + 2], padding_mode=mode) for g in range(3)]
        np.testing.assert_allclose(convolve(a, w, groups=3, padding_mode=mode), np.concatenate(parts, -1), atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), _small, st.integers(-3, 3), st.integers(-3, 3))
def test_engine_is_shift_equivariant_away_from_borders(seed, k, dy, dx):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((24, 26, 2))
    w = rng.standard_normal((2, 2, k, k))
    shifted = np.roll(x, (dy, dx), axis=(0, 1))
    # with circular padding a shift is exact everywhere; with zeros it holds away from the borders
    np.testing.assert_allclose(
        convolve(shifted, w, padding_mode="circular"),
        np.roll(convolve(x, w, padding_mode="circular"), (dy, dx), axis=(0, 1)),
        rtol=1e-4,
        atol=1e-4,
    )
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(
        convolve(shifted, w)[inner], np.roll(convolve(x, w), (dy, dx), axis=(0, 1))[inner], rtol=1e-4, atol=1e-4
    )


def test_readme_error_table_matches_the_code():
    """The README's table of error classes is the code's: each class and its exit status."""
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+Error)` \| (\d+) \|", text, flags=re.MULTILINE)
    import convfilter.errors

    classes = {name: value for name, value in vars(convfilter.errors).items() if name.endswith("Error")}
    assert {"ConvFilterError", "UsageError", "KernelError", "ImageError", "ArgumentError"} <= set(classes)
    assert {name for name, _ in rows} == set(classes)
    for name, code in rows:
        assert classes[name].exit_code == int(code), name
    assert all(issubclass(c, ValueError) for c in classes.values())


def test_python_runs_no_yaml_code(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "k.yaml").write_text(f"weights: !!python/object/apply:os.system ['touch {marker}']\n")
    done = subprocess.run([sys.executable, "-m", "convfilter", str(tmp_path / "k.yaml"), str(CAT), "-o",
                           str(tmp_path / "o.png")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and not marker.exists()
