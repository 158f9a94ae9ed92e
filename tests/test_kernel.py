"""Kernel files: parsing, validation messages, and how a kernel spreads over channels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, SAMPLES, reference_conv

from convfilter import KernelError, convolve, load_kernel
from convfilter.imageio import read_image
from convfilter.kernel import parse_kernel
from convfilter.library import builtin_names
from convfilter.pipeline import filter_pixels

KERNEL_FILES = sorted((ROOT / "kernels").glob("*.yaml"))
BUILTINS = [
    "identity",
    "edge",
    "laplacian4",
    "laplacian8",
    "sobel-x",
    "sobel-y",
    "sobel",
    "scharr",
    "prewitt",
    "roberts",
    "kirsch",
    "box",
    "gaussian",
    "sharpen",
    "unsharp",
    "emboss",
    "outline",
    "motion-blur",
    "disk",
    "log",
    "dog",
    "high-pass",
    "gray",
    "sepia",
    "swap-rb",
]


def write(tmp_path: Path, text: str, name: str = "k.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtins_are_the_files_in_kernels():
    assert builtin_names() == sorted(p.stem for p in KERNEL_FILES)
    assert set(BUILTINS) <= set(builtin_names())


def expected_pixels(image: np.ndarray, kernel) -> np.ndarray:
    """What a kernel file should give, computed independently: the loop reference on the
    resolved layer, the bank folded by plain NumPy, then the range policy by its formula."""
    layer = kernel.layer(image.shape[2])
    result = reference_conv(image, layer.weight, groups=layer.groups, padding_mode=kernel.padding_mode)
    if kernel.weights.ndim == 3 and kernel.combine != "none":
        responses = result.reshape(*result.shape[:2], image.shape[2], len(kernel.weights))
        result = {"magnitude": lambda r: np.sqrt((r**2).sum(-1)), "max": lambda r: r.max(-1),
                  "sum": lambda r: r.sum(-1)}[kernel.combine](responses)  # fmt: skip
    if kernel.range == "abs":
        result = np.abs(result)
    elif kernel.range == "offset":
        result = result + 128
    elif kernel.range == "normalize":
        result = (result - result.min()) * 255 / (result.max() - result.min())
    return np.clip(np.rint(result), 0, 255)


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.stem)
def test_every_kernel_file_loads_and_runs(path, rng):
    data = yaml.safe_load(path.read_text())
    assert data["name"] == path.stem and data["summary"] and "\n" not in data["summary"]
    kernel = load_kernel(path.stem)
    image = np.ascontiguousarray(read_image(SAMPLES / "cat.jpeg").pixels[120:140, 200:224])  # eye and fur
    out, _ = filter_pixels(image, kernel)
    assert out.dtype == np.uint8 and out.shape[:2] == (20, 24)
    # at most 1 grey level from float32 rounding against the float64 reference
    assert np.abs(out.astype(int) - expected_pixels(image, kernel)).max() <= 1


def test_edge_is_the_classic_dense_kernel():
    kernel = load_kernel("edge")
    layer = kernel.layer(3)
    expected = np.broadcast_to(np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 3, (3, 3, 3, 3))
    np.testing.assert_allclose(layer.weight, expected, rtol=1e-7)
    assert (layer.groups, kernel.padding_mode, layer.mix) == (1, "zeros", "dense")


def test_gray_uses_rec601_weights_in_rgb_order():
    layer = load_kernel("gray").layer(3)
    np.testing.assert_allclose(layer.weight.ravel(), [0.299, 0.587, 0.114], rtol=1e-6)
    assert layer.weight.shape == (1, 3, 1, 1)


def test_box_is_the_3x3_mean_and_takes_a_size():
    np.testing.assert_allclose(load_kernel("box").weights, np.full((3, 3), 1 / 9), rtol=1e-6)
    np.testing.assert_allclose(load_kernel("box", {"size": "5"}).weights, np.full((5, 5), 1 / 25), rtol=1e-6)


def test_gaussian_matches_opencv_kernel():
    import cv2

    g = load_kernel("gaussian", {"sigma": "2"}).weights
    one = cv2.getGaussianKernel(13, 2.0, cv2.CV_64F)
    np.testing.assert_allclose(g, one @ one.T, rtol=1e-5)


@pytest.mark.parametrize(
    ("mix", "groups", "shape", "weights"),
    [("depthwise", 3, (3, 1, 2, 2), 12), ("dense", 1, (3, 3, 2, 2), 36), ({"groups": 3}, 3, (3, 1, 2, 2), 12),
     ({"groups": 1}, 1, (3, 3, 2, 2), 36)],
)  # fmt: skip
def test_two_d_mix(mix, groups, shape, weights):
    kernel = parse_kernel({"weights": [[1, 2], [3, 4]], "mix": mix}, "k", "kernel file k.yaml")
    layer = kernel.layer(3)
    assert (layer.groups, layer.weight.shape, layer.weight.size) == (groups, shape, weights)
    assert np.all(layer.weight[:, :] == np.array([[1, 2], [3, 4]], np.float32))


def test_groups_on_four_channels(rng):
    kernel = parse_kernel({"weights": [[0, 1], [2, 3]], "mix": {"groups": 2}}, "k", "kernel file k.yaml")
    layer = kernel.layer(4)
    assert layer.weight.shape == (4, 2, 2, 2) and layer.mix == "grouped"


def test_bank_is_depthwise_with_channel_multiplier(rng):
    bank = [[[1, 0], [0, 0]], [[0, 0], [0, 1]]]
    kernel = parse_kernel({"weights": bank}, "k", "kernel file k.yaml")
    layer = kernel.layer(3)
    assert layer.weight.shape == (6, 1, 2, 2) and layer.groups == 3
    # PyTorch's order: output channel c·k + j is kernel j on input channel c
    np.testing.assert_array_equal(layer.weight[3, 0], bank[1])
    np.testing.assert_array_equal(layer.weight[4, 0], bank[0])


@pytest.mark.parametrize(("combine", "fold"), [("magnitude", lambda a, b: np.hypot(a, b)), ("max", np.maximum),
                                               ("sum", np.add)])  # fmt: skip
def test_bank_combine(combine, fold, rng):
    bank = [[[-1, 0, 1]], [[1, 2, 1]]]
    kernel = parse_kernel({"weights": bank, "combine": combine, "padding": "replicate"}, "k", "kernel file k.yaml")
    x = rng.integers(0, 256, (6, 7, 1), dtype=np.uint8)
    out, layer = filter_pixels(x, kernel, fmt="npy")
    a = convolve(x, np.array(bank[0], float)[None, None], padding_mode="replicate")
    b = convolve(x, np.array(bank[1], float)[None, None], padding_mode="replicate")
    np.testing.assert_allclose(out, fold(a, b), rtol=1e-5)
    assert layer.result_channels == 1


def test_four_d_weight_with_groups():
    w = np.arange(2 * 1 * 1 * 1).reshape(2, 1, 1, 1).tolist()
    kernel = parse_kernel({"weights": w, "mix": {"groups": 2}}, "k", "kernel file k.yaml")
    assert kernel.layer(2).groups == 2


def test_rgb_weight_on_gray_image_repeats_the_gray():
    layer = load_kernel("gray").layer(1)
    assert layer.repeat_gray and layer.in_channels == 3
    out, _ = filter_pixels(np.full((4, 4, 1), 100, np.uint8), load_kernel("gray"))
    assert np.all(out == 100)


def test_scale_divisor_normalize_bias():
    k = parse_kernel({"weights": [[1, 3]], "scale": 2, "divisor": 4}, "k", "kernel file k.yaml")
    np.testing.assert_allclose(k.weights, [[0.5, 1.5]])
    k = parse_kernel({"weights": [[1, 3]], "normalize": True, "bias": [1, 2, 3]}, "k", "kernel file k.yaml")
    np.testing.assert_allclose(k.weights, [[0.25, 0.75]])
    np.testing.assert_allclose(k.layer(3).bias, [1, 2, 3])


def test_options_override_the_file():
    k = load_kernel("edge").with_options(mix=3, padding="reflect", stride=2, dilation=2, flip=True, range="abs")
    assert (k.mix, k.padding_mode, k.stride, k.dilation, k.flip, k.range) == (3, "reflect", (2, 2), (2, 2), True, "abs")
    assert k.layer(3).mix == "depthwise"
    # --padding valid is no padding at all, whatever the mode; a mode after it pads again
    valid = k.with_options(padding="valid")
    assert (valid.padding, valid.padding_mode, valid.border) == ("valid", "reflect", "valid")
    again = valid.with_options(padding="circular")
    assert (again.padding, again.padding_mode, again.border) == ("same", "circular", "circular")


def test_npy_kernels(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((6, 1, 3, 3), np.float32))
    layer = load_kernel(tmp_path / "w.npy").layer(3)
    assert layer.groups == 3 and layer.weight.shape == (6, 1, 3, 3)
    np.save(tmp_path / "k2.npy", np.ones((3, 3)))
    assert load_kernel(tmp_path / "k2.npy").layer(3).groups == 3
    np.save(tmp_path / "bad.npy", np.ones((4, 2, 3, 3)))
    with pytest.raises(KernelError, match=r"takes 2 channels per group, which does not divide the image's 3"):
        load_kernel(tmp_path / "bad.npy").layer(3)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(KernelError, match=r"not a readable \.npy array"):
        load_kernel(tmp_path / "obj.npy")
    np.save(tmp_path / "r3.npy", np.ones((2, 3, 3)))
    with pytest.raises(KernelError, match=r"has shape \(2, 3, 3\); give a 2-D"):
        load_kernel(tmp_path / "r3.npy")


BAD_FILES = [
    ("weights: [[1, 2]\n", r"line 2, column 1: expected ',' or ']'"),
    ("- 1\n- 2\n", r"must be a mapping of fields"),
    ("", r"the file is empty"),
    ("weights: [[1]]\nwieghts: [[2]]\n", r"unknown field 'wieghts'; the fields are name, summary, weights"),
    ("weights: [[1, 2], [3]]\n", r"'weights' row 2 has 1 numbers, row 1 has 2"),
    ("weights: [[[1, 2]], [[3, 4], [5, 6]]]\n", r"'weights' kernel 2 has shape \[2, 2\], kernel 1 has \[1, 2\]"),
    ("weights: []\n", r"'weights' must be a non-empty 2-D list"),
    ("weights: [[]]\n", r"'weights' must be a non-empty 2-D list"),
    ("weights: [1, 2]\n", r"'weights' must be a non-empty 2-D list"),
    ("weights: [[1, a]]\n", r"'weights' row 1 item 2 is 'a', not a finite number"),
    ("weights: [[1, true]]\n", r"'weights' row 1 item 2 is True, not a finite number"),
    ("weights: [[1, .nan]]\n", r"'weights' row 1 item 2 is nan, not a finite number"),
    ("weights: [[1, .inf]]\n", r"'weights' row 1 item 2 is inf, not a finite number"),
    ("weights: [[1]]\ndivisor: 0\n", r"'divisor' must not be 0"),
    ("weights: [[1, -1]]\nnormalize: true\n", r"'normalize' divides by the sum of the weights, which is 0"),
    ("weights: [[1]]\nmix: {groups: 2}\n", None),
    (
        "weights: [[[[1, 2]], [[3]]]]\n",
        r"'weights' output 1 input 2 has shape \[1, 1\], input 1 has \[1, 2\]",
    ),  # valid file; the groups error comes with the image
    ("a: &x [1]\nweights: *x\n", r"line 1, column 4: anchors and aliases .* are not allowed"),
    ("weights: [[1]]\nweights: [[2]]\n", r"line 2, column 1: duplicate key 'weights'"),
    (
        "weights: !!python/object/apply:os.system ['echo hacked']\n",
        r"line 1, column 10: could not determine a constructor",
    ),
    ("weights: [[1]]\nmix: diagonal\n", r"'mix' is 'diagonal'; use depthwise, dense or \{groups: N\}"),
    ("weights: [[1]]\npadding: mirror\n", r"'padding' is 'mirror'; use one of zeros, reflect, replicate, circular"),
    ("weights: [[1]]\nrange: wrap\n", r"'range' is 'wrap'; use one of clip, abs, normalize, offset"),
    ("weights: [[1]]\nstride: 0\n", r"'stride' must be a whole number ≥ 1"),
    ("weights: [[1]]\ndilation: [1, 2, 3]\n", r"'dilation' must be a whole number ≥ 1"),
    ("weights: [[1]]\nflip: yes please\n", r"'flip' must be true or false"),
    ("weights: [[1]]\ngenerator: {type: box}\n", r"give exactly one of 'weights' or 'generator'"),
    ("summary: nothing\n", r"give exactly one of 'weights' or 'generator'"),
    (
        "generator: {type: sinc}\n",
        r"generator type 'sinc' is unknown; use one of gaussian, box, disk, motion, laplacian_of_gaussian",
    ),
    ("generator: {type: gaussian, params: {sigma: 0}}\n", r"parameter sigma must be > 0 and ≤ 42.3333, got 0"),
    ("generator: {type: gaussian, params: {size: 4}}\n", r"parameter size must be odd, or 0 to choose from sigma"),
    ("weights: [[1]]\nbias: [a]\n", r"'bias' must be a number or a list of numbers"),
    ("weights: [[1]]\nscale: x\n", r"'scale' must be a finite number"),
    ("weights: " + "[" * 3000 + "]" * 3000 + "\n", r"line 1, column 25: nested deeper than 16 levels"),
    # numbers YAML would make past float's range, past Python's int conversion limit, or slowly (base 60)
    ("weights: [[" + "9" * 400 + "]]\n", r"line 1, column 12: the number 9{12}…9{12} \(400 characters\) is beyond"),
    ("weights: [[1]]\nbias: [1, -" + "9" * 5000 + "]\n", r"line 2, column 11: a number written with 5001 characters"),
    ("weights: [[1]]\nscale: 0x" + "f" * 300 + "\n", r"line 2, column 8: the number 0xf{10}…f{12} \(302 characters\)"),
    ("weights: [[1" + ":59" * 400 + "]]\n", r"line 1, column 12: a number written with 1201 characters is too long"),
    ("weights: [[1]]\ndivisor: 1.0e+400\n", r"line 2, column 10: the number 1.0e\+400 is beyond float's range"),
    ("weights: [[1]]\nmix: {groups: 1" + "0" * 400 + "}\n", r"line 2, column 15: the number 10{11}…"),
    ("weights: [[1]]\nstride: [1, " + "9" * 400 + "]\n", r"line 2, column 13: the number 9{12}…"),
    ("generator: {type: gaussian, params: {size: " + "9" * 400 + "}}\n", r"line 1, column 44: the number 9{12}…"),
    ("generator: {type: gaussian, params: {sigma: .inf}}\n", r"parameter sigma must be a number > 0 .*, got inf$"),
    ("weights: [[1]]\nbias: 1.0e+39\n", r"'bias' must be finite numbers within float32's range"),
    # values of the wrong type where a name is expected, and keys that are not names
    ("generator: {type: {name: gaussian}}\n", r"generator type \{'name': 'gaussian'\} is unknown; use one of"),
    ("generator: {type: 3}\n", r"generator type 3 is unknown; use one of gaussian"),
    ("? [weights]\n: [[1]]\n", r"line 1, column 3: a list cannot be a key; keys are names"),
    ("weights: [[1]]\n? !!set {a}\n: 1\n", r"line 2, column 3: a set cannot be a key; keys are names"),
    ("generator: {type: gaussian, params: {sigma: 1, 2: 3, null: 4}}\n", r"generator gaussian takes no parameter 2;"),
    # text that is printed: one line, no control characters, no lone surrogates; long values cut short
    ('weights: [[1]]\nsummary: "two\\nlines"\n', r"'summary' must be one line of printable text; it holds '\\n'$"),
    ('weights: [[1]]\nname: "\\ud800"\n', r"'name' must be one line of printable text; it holds '\\ud800'$"),
    ("weights: [[1]]\nscale: " + "x" * 2000 + "\n", r"'scale' must be a finite number, got 'x{11}…x{11}' \(2002 char"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_files_get_one_clear_line(tmp_path, text, message):
    path = write(tmp_path, text)
    if message is None:
        load_kernel(path)
        return
    with pytest.raises(KernelError, match=rf"^kernel file {re.escape(str(path))}: {message}") as info:
        load_kernel(path)
    assert "\n" not in str(info.value)


def test_python_tags_run_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = write(tmp_path, f"weights: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(KernelError, match="could not determine a constructor"):
        load_kernel(path)
    assert not marker.exists()


def test_file_over_1_mib_is_refused(tmp_path):
    path = write(tmp_path, "weights: [[1]]\n" + "#" * (1 << 20))
    with pytest.raises(KernelError, match=r"larger than 1 MiB"):
        load_kernel(path)


def test_kernel_over_255_is_refused(tmp_path):
    path = write(tmp_path, "weights: [" + ", ".join(["[" + ", ".join(["0"] * 256) + "]"]) + "]\n")
    with pytest.raises(KernelError, match=r"'weights' is 1×256, larger than 255×255"):
        load_kernel(path)


def test_unknown_kernel_suggests_a_close_name():
    with pytest.raises(KernelError, match=r"unknown kernel 'edg': did you mean 'edge'\?"):
        load_kernel("edg")


def test_missing_kernel_file():
    with pytest.raises(KernelError, match=r"kernel file nope/blur\.yaml: no such file"):
        load_kernel("nope/blur.yaml")


def test_params_on_fixed_weights_are_refused():
    with pytest.raises(KernelError, match=r"kernel edge has fixed weights and takes no parameters, got -p sigma"):
        load_kernel("edge", {"sigma": "2"})


def test_param_errors_list_what_is_accepted():
    with pytest.raises(
        KernelError, match=r"takes no parameter 'radius'; it takes sigma \(> 0 and ≤ 42.3333, default 1\), size"
    ):
        load_kernel("gaussian", {"radius": "2"})
    with pytest.raises(KernelError, match=r"parameter sigma must be a number > 0 and ≤ 42.3333, got 'abc'"):
        load_kernel("gaussian", {"sigma": "abc"})
    with pytest.raises(KernelError, match=r"parameter size must be a whole number"):
        load_kernel("box", {"size": "2.5"})


def test_groups_that_do_not_divide_list_the_ones_that_do():
    with pytest.raises(
        KernelError, match=r"groups=2 must divide both the 3 input and 3 output channels; try one of 1, 3"
    ):
        load_kernel("edge").with_options(mix=2).layer(3)
    with pytest.raises(KernelError, match=r"try one of 1, 2, 4"):
        load_kernel("edge").with_options(mix=3).layer(4)


def test_bank_refuses_dense(tmp_path):
    path = write(tmp_path, "weights: [[[1]], [[2]]]\n")
    with pytest.raises(KernelError, match=r"a bank of 2 kernels is applied channel-wise"):
        load_kernel(path).with_options(mix="dense").layer(3)


def test_rgb_weight_on_two_channels_is_an_error():
    with pytest.raises(KernelError, match=r"takes 3 input channels, the image has 2"):
        load_kernel("gray").layer(2)


def test_builtin_name_must_match_stem():
    with pytest.raises(KernelError, match=r"'name' is 'blur' but a built-in's name must be its file stem 'box'"):
        parse_kernel({"name": "blur", "summary": "x", "weights": [[1]]}, "box", "kernel file box.yaml", builtin=True)
    with pytest.raises(KernelError, match=r"'summary' is required for a built-in kernel"):
        parse_kernel({"weights": [[1]]}, "box", "kernel file box.yaml", builtin=True)


def test_list_rows_describe_the_loaded_kernels():
    from convfilter.library import kernel_table

    rows, problems = kernel_table()
    assert problems == []
    for row in rows:
        kernel = load_kernel(row["name"])
        assert row["shape"] == list(kernel.weights.shape), row["name"]
        assert row["summary"] == kernel.summary and row["parameters"] == dict(kernel.params)
        assert row["mix"] == (f"groups={kernel.mix}" if isinstance(kernel.mix, int) else kernel.mix)


def test_one_channel_reports_the_kernels_own_mix():
    assert load_kernel("edge").layer(1).mix == "dense"
    assert load_kernel("sharpen").layer(1).mix == "depthwise"


def test_no_builtin_kernel_is_named_like_a_command():
    # `convfilter list` must run the command: a kernel of that name could never be reached by name
    from convfilter.cli import cli

    builtins = {path.stem for path in (ROOT / "kernels").glob("*.yaml")}
    assert len(builtins) == 25
    assert not builtins & set(cli.commands)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "weights: [[1e-30, 1]]\n",
            "is '1e-30', not a finite number (YAML reads 1e-30 as text; write it with a dot: 1.0e-30)",
        ),
        ("weights: [[1]]\nscale: 1e300\n", "got '1e300' (YAML reads 1e300 as text; write it with a dot: 1.0e+300)"),
        ("weights: [[abc]]\n", "is 'abc', not a finite number"),
    ],
)
def test_numbers_yaml_reads_as_text_get_a_hint(tmp_path, text, message):
    (tmp_path / "k.yaml").write_text(text)
    with pytest.raises(KernelError) as raised:
        load_kernel(tmp_path / "k.yaml")
    assert str(raised.value).endswith(message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": [[1, -(10**400)]]}, r"'weights' row 1 item 2 is an integer of about 400 digits, not a finite"),
        ({"weights": [[1]], "divisor": 10**5000}, r"'divisor' must be a finite number, got an integer of about 5000"),
        ({"weights": [[1]], "bias": [0, 10**400]}, r"'bias' must be a number or a list of numbers"),
        ({"generator": {"type": "gaussian", "params": {"sigma": 10**400}}}, r"parameter sigma must .*about 400"),
        ({"generator": {"type": ["gaussian"]}}, r"generator type \['gaussian'\] is unknown"),
    ],
)
def test_mappings_from_python_with_huge_or_misplaced_values(data, message):
    # parse_kernel takes any mapping, not only what YAML makes: an int past float's range is no number
    with pytest.raises(KernelError, match=rf"^kernel file k\.yaml: {message}"):
        parse_kernel(data, "k", "kernel file k.yaml")


# --- explicit padding: a model layer's own, or PyTorch's integer padding


@pytest.mark.parametrize(
    ("pads", "dilation"),
    [
        ((1, 1, 1, 1), (1, 1)),
        ((0, 1, 2, 0), (1, 1)),
        ((3, 0, 1, 1), (1, 1)),
        ((0, 2, 4, 0), (2, 2)),
        ((2, 2, 0, 3), (1, 3)),
    ],
)
def test_uneven_explicit_pads_read_what_the_reference_reads(rng, pads, dilation):
    from convfilter.kernel import explicit_padding, model_kernel

    weight = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    x = rng.normal(size=(9, 8, 3)).astype(np.float32)
    kernel = model_kernel(weight, None, "w", "w", stride=(2, 1), dilation=dilation, **explicit_padding(pads, "w"))
    got, _ = filter_pixels(x, kernel, "npy", has_alpha=False)
    expected = reference_conv(x, weight, stride=(2, 1), dilation=dilation, pads=pads)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_explicit_padding_from_options_keeps_the_mode_and_valid_clears_it():
    kernel = load_kernel("sharpen").with_options(padding=2)
    assert (kernel.padding, kernel.pads, kernel.border) == ((2, 2), (2, 2, 2, 2), "reflect 2")
    assert kernel.with_options(padding="zeros").border == "zeros 2"  # a mode alone keeps the size
    assert kernel.with_options(padding="valid").border == "valid"
    assert load_kernel("sharpen").with_options(padding=(1, 3)).border == "reflect 1×3"
    with pytest.raises(KernelError, match=r"option --padding: padding must be a whole number from 0 to 4096"):
        load_kernel("sharpen").with_options(padding=-1)


def test_a_model_kernel_checks_its_bias_against_the_output_channels():
    from convfilter.kernel import model_kernel

    with pytest.raises(KernelError, match=r"m: the bias has shape \(3,\) of float64; it must hold 2 numbers"):
        model_kernel(np.ones((2, 1, 3, 3)), np.ones(3), "m", "m")
    with pytest.raises(KernelError, match=r"m: the weights must be finite numbers"):
        model_kernel(np.full((2, 1, 3, 3), np.nan), None, "m", "m")
