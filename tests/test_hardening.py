"""Every bad input and fault ends in one clear line, the documented exit status, no traceback, the
inputs untouched and nothing left behind — through real runs of the installed command, under a
memory limit and a time limit; plus property tests and a replayed corpus of nasty files."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from bad_inputs import BAD_INPUTS, CORPUS, digest, make_workdir
from conftest import ROOT, SAMPLES, assert_one_line_error, capped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convfilter import ImageError, KernelError, convolve
from convfilter.imageio import decode_image
from convfilter.kernel import parse_kernel

CAT = SAMPLES / "cat.jpeg"
MEMORY_LIMIT = 3 << 30  # bytes of address space: a 60000×60000 decode or a window array would not fit


def run_command(command: Path, args: list, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        capped([command, *args], MEMORY_LIMIT), cwd=cwd, input=stdin, capture_output=True, timeout=120
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
    return make_workdir(tmp_path)


@pytest.mark.parametrize(("args", "code", "fragment"), BAD_INPUTS, ids=[" ".join(a[:3]) for a, _, _ in BAD_INPUTS])
def test_battery(workdir, convfilter_command, args, code, fragment):
    stdin = b""
    if args[-1].startswith("STDIN:"):
        stdin, args = args[-1][6:].encode(), args[:-1]
    before = digest(workdir)
    done = run_command(convfilter_command, args, workdir, stdin)
    assert_clean_failure(done, code, fragment)
    assert digest(workdir) == before  # inputs untouched, no output, no temporary file
    assert not Path("/tmp/convfilter-pwned").exists()


def test_full_disk_keeps_the_old_output(workdir, convfilter_command):
    shell = f"ulimit -f 16; exec '{convfilter_command}' identity '{SAMPLES / 'astronaut.png'}' -o out-existing.png"
    done = subprocess.run(["bash", "-c", shell], cwd=workdir, capture_output=True, timeout=120)
    assert_clean_failure(done, 1, "cannot write (File too large)")
    assert (workdir / "out-existing.png").read_bytes() == b"old output"
    assert not [n for n in os.listdir(workdir) if n.endswith(".convfilter-tmp")]


def test_closed_pipe_is_quiet(workdir, convfilter_command):
    shell = f"'{convfilter_command}' sharpen '{SAMPLES / 'astronaut.png'}' --format png -q | head -c 100 > /dev/null"
    done = subprocess.run(["bash", "-c", shell], cwd=workdir, capture_output=True, timeout=120)
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


@pytest.mark.parametrize(
    ("shell", "fragment"),
    [
        ("'{c}' identity '{cat}' -o - > /dev/full", "output <stdout>: cannot write (No space left on device)"),
        ("'{c}' identity '{cat}' -o - >&-", "output <stdout>: cannot write (standard output is closed)"),
        ("'{c}' identity - -o out.png <&-", "input <stdin>: cannot read (standard input is closed)"),
        ("'{c}' identity -o out.png <&-", "input <stdin>: cannot read (standard input is closed)"),
    ],
)
def test_closed_and_full_standard_streams(workdir, convfilter_command, shell, fragment):
    before = digest(workdir)
    command = shell.format(c=convfilter_command, cat=CAT)
    done = subprocess.run(["bash", "-c", command], cwd=workdir, capture_output=True, timeout=120)
    assert_clean_failure(done, 1, fragment)
    assert digest(workdir) == before


def test_read_only_file_system(tmp_path, convfilter_command):
    """Outputs on a read-only mount: one line, exit 2 for a folder that cannot be made, 1 for a file."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "none", mount], capture_output=True).returncode:
        pytest.skip("mounting needs privileges this machine does not give")
    try:
        done = run_command(convfilter_command, ["identity", CAT, SAMPLES / "camera.png", "-o", "ro/new/"], tmp_path)
        assert_clean_failure(done, 2, "output ro/new: cannot make the folder (Read-only file system)")
        done = run_command(convfilter_command, ["identity", CAT, "-o", "ro/out.png"], tmp_path)
        assert_clean_failure(done, 1, "output ro/out.png: cannot write in ro (Read-only file system)")
    finally:
        subprocess.run(["umount", mount], check=True)


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory) -> Path:
    """A 48 MP JPEG: one that takes the decoder a good part of a second."""
    path = tmp_path_factory.mktemp("large") / "large.jpg"
    small = cv2.imread(str(SAMPLES / "astronaut.png"))
    cv2.imwrite(str(path), cv2.resize(small, (8000, 6000), interpolation=cv2.INTER_LINEAR))
    return path


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["no-such-kernel", "{in}", "-o", "{dir}/out.jpg"], "unknown kernel"),
        (["sharpen", "{in}", "-o", "{in}"], "is the input"),
        (["sharpen", "{in}", "-o", "{dir}/out.jpg", "--cluster", "local:1"], "runs a batch"),
        (["sharpen", "{in}", "-o", "{dir}/out.jpg", "--split", "--montage"], "exclude each other"),
    ],
    ids=["kernel", "same-file", "cluster", "options"],
)
def test_an_error_while_the_input_is_being_decoded_is_printed(large_photo, tmp_path, convfilter_command, args, text):
    # the input is decoded on a thread of its own that silences native stderr while it runs
    argv = [a.format(**{"in": large_photo, "dir": tmp_path}) for a in args]
    before = large_photo.read_bytes()
    done = subprocess.run([convfilter_command, *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, text)
    assert large_photo.read_bytes() == before and sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("megabytes", [500, 550, 600, 700])
def test_a_large_photo_without_the_memory_for_it_is_one_line(large_photo, tmp_path, convfilter_command, megabytes):
    # the input is decoded beside the kernel's loading: whatever runs out of memory, one line says so
    command = capped([convfilter_command, "sharpen", large_photo, "-o", tmp_path / "out.jpg"], megabytes << 20)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if done.returncode == 0:  # a machine whose libraries leave room for it
        assert done.stderr.count("\n") == 4 and (tmp_path / "out.jpg").exists()
        return
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "not enough memory")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize(("fmt", "rows", "fits"), [("jpg", 65500, True), ("jpg", 65501, False), ("webp", 16384, False)])
def test_a_result_taller_than_its_format_holds_is_one_line(tmp_path, convfilter_command, fmt, rows, fits):
    # 16 MiB and more of JPEG pixels are encoded in bands: the joined file must not claim more rows
    cv2.imwrite(str(tmp_path / "tall.png"), np.random.default_rng(3).integers(0, 256, (rows, 260), np.uint8))
    done = run_command(convfilter_command, ["identity", "tall.png", "-o", f"out.{fmt}", "-q"], tmp_path)
    if fits:
        assert done.returncode == 0, done.stderr
        assert cv2.imread(str(tmp_path / f"out.{fmt}"), cv2.IMREAD_UNCHANGED).shape == (rows, 260)
        return
    assert_clean_failure(done, 1, f"is larger than a {'JPEG' if fmt == 'jpg' else 'WEBP'} holds")
    assert sorted(os.listdir(tmp_path)) == ["tall.png"]


@pytest.mark.parametrize(
    ("shape", "dtype", "args"),
    [
        ((1, 1, 4), np.uint8, []),
        ((3, 3, 4), np.uint8, ["--padding", "valid"]),
        ((9, 1, 4), np.uint8, ["--stride", "9"]),
        ((1, 1, 4), np.uint16, []),
    ],
    ids=["1x1", "valid", "stride", "16-bit"],
)
def test_edge_to_a_single_pixel_beside_its_alpha(tmp_path, convfilter_command, shape, dtype, args):
    # one output pixel: NumPy calls a view of its colour channels contiguous, OpenCV does not
    pixels = np.random.default_rng(6).integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    cv2.imwrite(str(tmp_path / "in.png"), pixels)
    done = run_command(convfilter_command, ["edge", "in.png", "-o", "out.png", "-q", *args], tmp_path)
    assert done.returncode == 0, done.stderr
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == dtype and out.shape[2] == 4
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])  # edge: one value for all
