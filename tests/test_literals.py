"""Kernels written out — a matrix literal, an ImageMagick kernel string (or @file), a libvips
matrix file — give the same pixels as the equivalent YAML file, and anything else is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CAT, pixels
from hypothesis import given, settings
from hypothesis import strategies as st

from convfilter import KernelError, load_kernel
from convfilter.literals import imagemagick_kernel, parse_literal, vips_matrix

SCRIPT = Path(sys.executable).parent / "convfilter"
SHARPEN_YAML = "weights:\n  - [0, -1, 0]\n  - [-1, 5, -1]\n  - [0, -1, 0]\n"


def filtered(tmp_path: Path, kernel: str, out: str) -> np.ndarray:
    """The pixels the installed command writes for ``kernel`` on cat.jpeg."""
    done = subprocess.run(
        [SCRIPT, kernel, CAT, "-o", out, "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return pixels(tmp_path / out)


@pytest.mark.parametrize(
    ("kernel", "yaml"),
    [
        ("[[0,-1,0],[-1,5,-1],[0,-1,0]]", SHARPEN_YAML),
        ("3x3: 0,-1,0 -1,5,-1 0,-1,0", SHARPEN_YAML),
        ("0 -1 0, -1 5 -1, 0 -1 0", SHARPEN_YAML),  # ImageMagick's old form: N² numbers
        ("@sharpen.txt", SHARPEN_YAML),
        ("3x3: nan,-1,nan -1,5,-1 nan,-1,nan", SHARPEN_YAML),  # nan: not part of the kernel, a 0 weight
        ("3x1+0+0: 2 -1 0", "weights: [[0, 0, 2, -1, 0]]\n"),  # the origin kept as the centre
        ("blur.mat", "weights: [[1, 2, 1], [2, 4, 2], [1, 2, 1]]\ndivisor: 16\nbias: 20\n"),
        ("[[[[0.2]], [[0.7]], [[0.1]]]]", "weights: [[[[0.2]], [[0.7]], [[0.1]]]]\n"),  # 4-D: a 1×1 mix to gray
    ],
)
def test_written_kernels_give_the_pixels_of_the_equivalent_yaml_file(tmp_path, kernel, yaml):
    (tmp_path / "sharpen.txt").write_text("3x3:\n 0,-1,0\n -1,5,-1\n 0,-1,0\n")
    (tmp_path / "blur.mat").write_text('3 3 16 20\n1 2 1\n2,4,2\n"1"\t2 1\n\n')
    (tmp_path / "same.yaml").write_text(yaml)
    expected = filtered(tmp_path, "same.yaml", "yaml.png")
    got = filtered(tmp_path, kernel, "written.png")
    np.testing.assert_array_equal(got, expected)
    original = pixels(CAT)
    assert got.shape != original.shape or not np.array_equal(got, original)  # it did filter


def test_a_libvips_matrix_divides_by_its_scale_and_adds_its_offset():
    kernel = vips_matrix(b"2 2 4 -3\n1 1\n1 1\n", "box", "kernel file box.mat")
    assert kernel.weights.tolist() == [[0.25, 0.25], [0.25, 0.25]] and kernel.bias == (-3.0,)
    assert vips_matrix(b"1 1\n7\n", "one", "one").weights.tolist() == [[7.0]]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[1, 2], [3]]", r"matrix '\[\[1, 2\], \[3\]\]': 'weights' row 2 has 1 numbers, row 1 has 2"),
        ("[[1, .nan]]", r"'weights' row 1 item 2 is nan, not a finite number"),
        ("[[true]]", r"item 1 is True, not a finite number"),
        ("[1, 2, 3]", r"'weights' must be a non-empty 2-D list of rows of numbers"),
        ("[[1, 2]", r"line 1, column 8: .*expected ',' or ']'"),
        ("[&a [1], *a]", r"anchors and aliases"),
        ("[[" + "1," * 300 + "1]]", r"is 1×301, larger than 255×255"),
        ("3x3: 1 2 3", r"a 3×3 kernel takes 9 numbers, got 3"),
        ("3x3: 1 2 3 4 x 6 7 8 9", r"'x' is not a number"),
        ("3x3@: 1 2 3 4 5 6 7 8 9", r"the flags '@' .* are not read"),
        ("3x3+5+0: 1 2 3 4 5 6 7 8 9", r"the origin \+5\+0 lies outside the 3×3 kernel"),
        ("0x3: 1", r"0×3 is not from 1×1 to 255×255"),
        ("3x3: nan nan nan nan nan nan nan nan nan", r"every tap is nan"),
        ("1 2 3", r"a list without WxH: must hold N×N numbers; it holds 3"),
        ("2x1: 1e999 1", r"item 1 is inf, not a finite number"),
        ("1x1: 1; 1x1: 2", r"holds several kernels"),
        ("@no-such-file.txt", r"kernel file no-such-file.txt: no such file"),
    ],
)
def test_bad_written_kernels_are_one_line(text, match):
    with pytest.raises(KernelError, match=match) as error:
        load_kernel(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"is empty; a matrix file starts with a line 'width height \[scale \[offset\]\]'"),
        (b"3\n1 2 3\n", r"line 1 must be 'width height \[scale \[offset\]\]', it holds 1 numbers"),
        (b"3 1 0\n1 2 3\n", r"line 1: the scale must not be 0"),
        (b"2.5 1\n1 2\n", r"line 1: width and height must be whole numbers from 1 to 255"),
        (b"3 2\n1 2 3\n", r"line 1 says 2 rows, the file holds 1"),
        (b"3 1\n1 2\n", r"row 1 has 2 numbers, line 1 says 3"),
        (b"2 1\n1 two\n", r"line 2: 'two' is not a number"),
        (b"1 1\n1e400\n", r"line 2: 1e400 is beyond float's range"),
        (b"\xff\xfe1 1\n", r"not text \(it is not UTF-8\)"),
    ],
)
def test_bad_libvips_matrix_files_are_one_line(tmp_path, data, match):
    (tmp_path / "bad.mat").write_bytes(data)
    with pytest.raises(KernelError, match=rf"kernel file .*bad\.mat: {match}"):
        load_kernel(str(tmp_path / "bad.mat"))


def test_a_bad_mat_file_is_one_line_through_the_installed_command(tmp_path):
    (tmp_path / "bad.mat").write_text("3 3\n1 2 3\n")
    done = subprocess.run([SCRIPT, "bad.mat", CAT, "-o", "out.png"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr == "convfilter: error: kernel file bad.mat: line 1 says 3 rows, the file holds 1\n"
    assert not (tmp_path / "out.png").exists()


def test_names_and_paths_are_not_literals():
    assert parse_literal("edge") is None and parse_literal("kernels/blur.yaml") is None
    assert parse_literal("net.onnx:Conv@0") is None


def test_written_kernels_take_no_parameters():
    with pytest.raises(KernelError, match=r"has fixed weights and takes no parameters, got -p sigma"):
        load_kernel("[[1]]", {"sigma": "2"})


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.text(alphabet="[]0123456789.,-+eExnan :;@&*{}\"'\n\t!", max_size=60),
        st.builds(lambda a, b: f"{a}x{b}:" + " 1" * 3, st.integers(-3, 300), st.integers(-3, 300)),
        st.builds(lambda s: "[" + s, st.text(max_size=40)),
    )
)
def test_any_text_is_a_kernel_or_a_kernel_error(text):
    try:
        kernel = parse_literal(text)
    except KernelError as error:
        assert "\n" not in str(error)
        return
    assert kernel is None or np.isfinite(kernel.weights).all()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet='0123456789 .,"\n-e', max_size=80).map(str.encode))
def test_any_matrix_file_is_a_kernel_or_a_kernel_error(data):
    try:
        kernel = vips_matrix(data, "m", "kernel file m.mat")
    except KernelError as error:
        assert "\n" not in str(error)
        return
    assert np.isfinite(kernel.weights).all()


def test_imagemagick_even_sizes_centre_before_the_middle_as_same_padding_does():
    assert imagemagick_kernel("4x1: 1 2 3 4", "k", "k").weights.shape == (1, 4)
    # the default origin of a 4-wide kernel is column 1: +1+0 changes nothing
    np.testing.assert_array_equal(
        imagemagick_kernel("4x1+1+0: 1 2 3 4", "k", "k").weights, imagemagick_kernel("4x1: 1 2 3 4", "k", "k").weights
    )
