"""Layers read from real model files agree with the frameworks that made them: an ONNX node with
onnxruntime, a state dict's layer with torch.nn.functional.conv2d; and bad model files end in one
line through the installed command, under an address-space cap and a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import CAT, DATA, capped, reference_conv, run

from convfilter import KernelError, load_kernel
from convfilter.models import model_layers
from convfilter.pipeline import filter_pixels

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

MODELS = DATA / "models"
OCR = MODELS / "ppocr-cls-mobilenetv3.onnx"
PNET = MODELS / "mtcnn-pnet.pt"
ADDRESS_SPACE = 4 << 30


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest difference relative to the largest magnitude of the expected result."""
    assert got.shape == expected.shape, (got.shape, expected.shape)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def ocr_input() -> np.ndarray:
    """cat.jpeg as the OCR model expects it: BGR, (x / 255 - 0.5) / 0.5, float32 (H, W, 3)."""
    bgr = cv2.imread(CAT)  # OpenCV decodes to B, G, R
    return ((bgr.astype(np.float32) / 255 - 0.5) / 0.5).astype(np.float32)


def ort_tensors(x_hwc: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """The values of the named tensors of the OCR graph for input ``x_hwc``, as onnxruntime
    computes them, each as (H, W, C)."""
    model = onnx.load(str(OCR))
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"x": np.moveaxis(x_hwc, -1, 0)[None]})
    return [np.moveaxis(out[0], 0, -1) for out in outputs]


def run_installed(args, cwd) -> subprocess.CompletedProcess:
    """The installed command, under a 4 GiB address-space cap and a timeout."""
    script = os.path.join(os.path.dirname(sys.executable), "convfilter")
    return subprocess.run(capped([script, *args], ADDRESS_SPACE), cwd=cwd, capture_output=True, text=True, timeout=60)


def assert_one_line(done: subprocess.CompletedProcess, fragment: str, code: int = 2) -> None:
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("convfilter: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert fragment in done.stderr, done.stderr


# --- the ONNX model against onnxruntime


def test_first_onnx_conv_matches_onnxruntime_in_process_and_through_the_command(tmp_path):
    x = ocr_input()
    (expected,) = ort_tensors(x, ["conv2d_53.tmp_0"])
    kernel = load_kernel(str(OCR))  # no name: the Conv fed by the graph input
    assert (kernel.name, kernel.stride, kernel.pads, kernel.mix) == ("Conv@0", (2, 2), (1, 1, 1, 1), 1)
    got, layer = filter_pixels(x, kernel, "npy", has_alpha=False)
    assert layer.weight.shape == (8, 3, 3, 3)
    assert relative_error(got, expected) < 1e-4
    np.save(tmp_path / "x.npy", x)
    done = run_installed([f"{OCR}:Conv@0", "x.npy", "-o", "out.npy", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert relative_error(np.load(tmp_path / "out.npy"), expected) < 1e-4


@pytest.mark.parametrize(
    ("node", "source", "result"),
    [
        ("Conv@2", "relu_0.tmp_0", "depthwise_conv2d_0.tmp_0"),  # group 8, strides [2, 1]
        ("conv3_depthwise_weights", "relu_3.tmp_0", "depthwise_conv2d_1.tmp_0"),  # Conv@7 by its weight's name
    ],
)
def test_later_depthwise_onnx_convs_match_onnxruntime(tmp_path, node, source, result):
    x = ocr_input()
    inner, expected = ort_tensors(x, [source, result])
    kernel = load_kernel(f"{OCR}:{node}")
    assert kernel.stride == (2, 1) and kernel.mix == kernel.weights.shape[0]
    got, layer = filter_pixels(inner, kernel, "npy", has_alpha=False)
    assert layer.mix == "depthwise"
    assert relative_error(got, expected) < 1e-4
    np.save(tmp_path / "inner.npy", inner)
    done = run_installed([f"{OCR}:{node}", "inner.npy", "-o", "out.npy", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert relative_error(np.load(tmp_path / "out.npy"), expected) < 1e-4


def tiny_onnx(path, weight, bias=None, constant=False, **attributes) -> None:
    """A one-node ONNX model: input x → Conv → y, the weight an initializer or a Constant node."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    inputs = ["x", "w"] + (["b"] if bias is not None else [])
    tensors = [numpy_helper.from_array(weight.astype(np.float32), "w")]
    if bias is not None:
        tensors.append(numpy_helper.from_array(bias.astype(np.float32), "b"))
    nodes = [helper.make_node("Conv", inputs, ["y"], name="conv", **attributes)]
    if constant:
        nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in tensors] + nodes
        tensors = []
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, None, None, None])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], initializer=tensors,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.parametrize(
    "attributes",
    [
        {"pads": [0, 0, 1, 1]},  # [top, left, bottom, right]: an even-sized "same" the other way round
        {"pads": [2, 0, 1, 3], "strides": [2, 1]},
        {"pads": [1, 3, 2, 0], "strides": [1, 3], "group": 2},
        {"pads": [0, 4, 2, 0], "dilations": [2, 2]},
        {"auto_pad": "SAME_LOWER"},
        {"auto_pad": "SAME_UPPER"},
        {"auto_pad": "VALID", "strides": [2, 2]},
    ],
)
@pytest.mark.parametrize("constant", [False, True])
def test_onnx_pads_strides_groups_and_bias_are_the_nodes_own(tmp_path, rng, attributes, constant):
    weight = rng.normal(size=(4, 4 // attributes.get("group", 1), 2, 3))
    bias = rng.normal(size=4)
    tiny_onnx(tmp_path / "m.onnx", weight, bias, constant, **attributes)
    x = rng.normal(size=(11, 13, 4)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["y"], {"x": np.moveaxis(x, -1, 0)[None]})
    got, _ = filter_pixels(x, load_kernel(str(tmp_path / "m.onnx")), "npy", has_alpha=False)
    assert relative_error(got, np.moveaxis(expected[0], 0, -1)) < 1e-5


def test_uneven_pads_that_dilation_cannot_express_are_one_line(tmp_path, rng):
    tiny_onnx(tmp_path / "m.onnx", rng.normal(size=(1, 1, 3, 3)), pads=[0, 0, 1, 0], dilations=[2, 2])
    kernel = load_kernel(str(tmp_path / "m.onnx"))
    with pytest.raises(KernelError, match=r"padding zeros 0,0,1,0 .* differs by 1 .* dilation 2 cannot express"):
        kernel.layer(1)


def test_auto_pad_same_with_a_stride_is_refused(tmp_path, rng):
    tiny_onnx(tmp_path / "m.onnx", rng.normal(size=(1, 1, 3, 3)), auto_pad="SAME_UPPER", strides=[2, 2])
    with pytest.raises(KernelError, match=r"auto_pad SAME_UPPER with strides \[2, 2\] pads by an amount"):
        load_kernel(str(tmp_path / "m.onnx"))


# --- the state dict against torch


def pnet_input() -> np.ndarray:
    """cat.jpeg as P-Net expects it: RGB, (x - 127.5) / 128, float32 (H, W, 3)."""
    rgb = cv2.cvtColor(cv2.imread(CAT), cv2.COLOR_BGR2RGB)
    return ((rgb.astype(np.float32) - 127.5) / 128).astype(np.float32)


def pnet_state() -> dict:
    """P-Net's state dict, each tensor made contiguous (some are stored transposed, which the
    safetensors writer refuses)."""
    return {k: v.contiguous() for k, v in torch.load(PNET, weights_only=True, map_location="cpu").items()}


def pnet_conv1_by_torch(x: np.ndarray) -> np.ndarray:
    state = torch.load(PNET, weights_only=True, map_location="cpu")
    out = torch.nn.functional.conv2d(torch.from_numpy(np.moveaxis(x, -1, 0)[None]), state["conv1.weight"],
                                     state["conv1.bias"])  # fmt: skip
    return np.moveaxis(out[0].numpy(), 0, -1)


def test_state_dict_conv1_matches_torch_in_process_and_through_the_command(tmp_path):
    x = pnet_input()
    expected = pnet_conv1_by_torch(x)
    kernel = load_kernel(f"{PNET}:conv1").with_options(padding="valid")  # nn.Conv2d(3, 10, 3): no padding
    assert kernel.name == "conv1.weight" and len(kernel.bias) == 10
    got, _ = filter_pixels(x, kernel, "npy", has_alpha=False)
    assert relative_error(got, expected) < 1e-4
    np.save(tmp_path / "x.npy", x)
    done = run_installed([PNET, "x.npy", "--padding", "valid", "-o", "out.npy", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert relative_error(np.load(tmp_path / "out.npy"), expected) < 1e-4


def test_safetensors_written_by_the_safetensors_package_read_the_same(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = pnet_state()
    safetensors_torch.save_file(state, tmp_path / "pnet.safetensors")
    safetensors_torch.save_file({k: v.half() for k, v in state.items()}, tmp_path / "half.safetensors")
    safetensors_torch.save_file({k: v.bfloat16() for k, v in state.items()}, tmp_path / "bf16.safetensors")
    for name in ("conv2", "conv2.weight"):
        kernel = load_kernel(f"{tmp_path / 'pnet.safetensors'}:{name}")
        np.testing.assert_array_equal(kernel.weights, state["conv2.weight"].numpy())
        np.testing.assert_array_equal(kernel.bias, state["conv2.bias"].numpy())
    for file, dtype in (("half", torch.float16), ("bf16", torch.bfloat16)):
        kernel = load_kernel(f"{tmp_path / file}.safetensors:conv1.weight")
        np.testing.assert_array_equal(kernel.weights, state["conv1.weight"].to(dtype).float().numpy())
    x = pnet_input()
    kernel = load_kernel(f"{tmp_path / 'pnet.safetensors'}:conv1.weight").with_options(padding="valid")
    assert relative_error(filter_pixels(x, kernel, "npy", has_alpha=False)[0], pnet_conv1_by_torch(x)) < 1e-4
    layers = {layer.name: layer for layer in model_layers(tmp_path / "pnet.safetensors")}
    assert layers["conv1.weight"].shape == (10, 3, 3, 3) and layers["conv1.weight"].takes_image
    assert not layers["conv2.weight"].takes_image and layers["conv2.weight"].parameters == 16 * 10 * 9 + 16


def test_an_uneven_pad_from_options_matches_the_reference(rng):
    weight = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    x = rng.normal(size=(7, 9, 3)).astype(np.float32)
    from convfilter.kernel import model_kernel

    kernel = model_kernel(weight, None, "w", "w").with_options(padding=(1, 2))
    got, _ = filter_pixels(x, kernel, "npy", has_alpha=False)
    expected = reference_conv(x, weight, pads=(1, 1, 2, 2))
    assert relative_error(got, expected) < 1e-5


# --- what is missing, and bad files


def test_without_onnx_installed_one_line_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(KernelError, match=r'needs the onnx package: pip install "convfilter\[onnx\]"$'):
        load_kernel(str(OCR))


def test_without_torch_installed_one_line_says_to_install_it_or_use_safetensors(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(KernelError, match=r"needs PyTorch \(pip install torch\), or save the weights with safetensors"):
        load_kernel(str(PNET))


def safetensors_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


BAD_FILES = {
    "random.onnx": os.urandom(3000),
    "truncated.onnx": OCR.read_bytes()[:200_000],
    "empty.onnx": b"",
    "random.pt": os.urandom(3000),
    "truncated.pt": PNET.read_bytes()[:10_000],
    "huge-header.safetensors": (1 << 62).to_bytes(8, "little") + b"{}",
    "short.safetensors": b"\x05\x00",
    "not-json.safetensors": safetensors_bytes({}, length=4) + b"{{{{",
    "offsets.safetensors": safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1, 1, 1, 1], "data_offsets": [0, 1 << 40]}}
    ),
    "shape.safetensors": safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [4096, 4096, 255, 255], "data_offsets": [0, 4]}}, bytes(4)
    ),
}


@pytest.mark.parametrize(
    ("kernel", "fragment"),
    [
        ("random.onnx", "model file random.onnx: not a readable ONNX model"),
        ("truncated.onnx", "model file truncated.onnx: not a readable ONNX model"),
        ("empty.onnx", "model file empty.onnx: not a readable ONNX model (it holds no graph)"),
        ("random.pt", "model file random.pt: not a readable PyTorch file"),
        ("truncated.pt", "model file truncated.pt: not a readable PyTorch file"),
        (
            "objects.pt",
            "holds Python objects besides tensors (numpy._core.multiarray.scalar), which are never unpickled",
        ),
        ("list.pt", "model file list.pt: holds a list, not a state dict"),
        ("huge-header.safetensors", "its header claims 4611686018427387904 bytes"),
        ("short.safetensors", "it holds 2 bytes; the header length alone takes 8"),
        ("not-json.safetensors", "its header is not JSON"),
        ("offsets.safetensors", "tensor 'w' lies at bytes 0..1099511627776, beyond the 0 bytes of data"),
        ("shape.safetensors", "of shape [4096, 4096, 255, 255] and F32 needs 4363753881600 bytes, its offsets hold 4"),
        ("good.safetensors", "give the weight as good.safetensors:NAME; its convolution weights are conv1.weight"),
        ("good.safetensors:nope", "no tensor 'nope'; the convolution weights are conv1.weight, conv2.weight, conv3"),
        ("good.safetensors:prelu1.weight", "tensor prelu1.weight has shape (10,), not a convolution weight"),
        (f"{OCR}:Conv@99", "no Conv node or weight 'Conv@99'; the Conv nodes are Conv@0, Conv@1, "),
        (f"{OCR}:Conv@2", "Conv Conv@2: the weight [8, 1, 3, 3] with groups=8 takes 8 input channels, the image has 3"),
        (f"{PNET}:conv2", "tensor conv2.weight: the weight takes 10 channels per group, which does not divide"),
        (f"{OCR}:", "give a layer after ':'"),
        ("missing.onnx", "model file missing.onnx: no such file"),
        ("folder.onnx", "model file folder.onnx: not a file"),
        ("fifo.pt", "model file fifo.pt: not a file"),
    ],
)
def test_bad_model_files_are_one_line_through_the_installed_command(tmp_path, kernel, fragment):
    for name, data in BAD_FILES.items():
        (tmp_path / name).write_bytes(data)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    torch.save({"conv1.weight": torch.zeros(1, 3, 1, 1), "when": np.datetime64("2020-01-01")}, tmp_path / "objects.pt")
    state = pnet_state()
    pytest.importorskip("safetensors.torch").save_file(state, tmp_path / "good.safetensors")
    (tmp_path / "folder.onnx").mkdir()
    os.mkfifo(tmp_path / "fifo.pt")
    done = run_installed([kernel, CAT, "-o", "out.png"], tmp_path)
    assert_one_line(done, fragment)
    assert not (tmp_path / "out.png").exists()
    if "Conv@99" in kernel or ":nope" in kernel:
        assert "in all)" in done.stderr or "conv4_2.weight" in done.stderr  # the names are listed, shortened


def test_model_files_are_bounded_at_2_gib(tmp_path, monkeypatch):
    import convfilter.models as models

    monkeypatch.setattr(models, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(KernelError, match=r"mtcnn-pnet.pt: larger than 2 GiB$"):
        load_kernel(str(PNET))


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("net.h5", r"net.h5: \.h5 is a Keras model, which is not read; export the model to ONNX"),
        ("net.ckpt", r"net.ckpt: \.ckpt is a TensorFlow checkpoint, which is not read"),
    ],
)
def test_unread_model_formats_say_what_to_do(tmp_path, name, fragment):
    (tmp_path / name).write_bytes(b"\x89HDF")
    with pytest.raises(KernelError, match=fragment):
        load_kernel(str(tmp_path / name))


def test_show_lists_the_conv_layers_and_marks_those_that_take_an_image():
    done = run("show", OCR)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0] == "ppocr-cls-mobilenetv3.onnx: 53 convolution layers"
    first = next(line for line in lines if "Conv@0 " in line)
    assert first.startswith("→*") and first.split()[2:] == ["8×3×3×3", "1", "2", "1", "1", "no", "216"]
    depthwise = next(line for line in lines if "Conv@2 " in line).split()
    assert depthwise == ["Conv@2", "8×1×3×3", "8", "2×1", "1", "1", "no", "72"]
    rows = json.loads(run("show", OCR, "--json").output)
    assert sum(row["takes_image"] for row in rows) == 1 and rows[0]["from_input"] and len(rows) == 53
    state = run("show", PNET).output
    assert "→*  conv1.weight" in state and "a state dict holds weights only" in state


def test_show_model_layer_uses_the_layers_own_channels():
    done = run("show", f"{OCR}:Conv@2")
    assert done.exit_code == 0, done.output
    assert "Conv@2: depthwise conv 8→8 channels, 3×3 kernel, groups=8, padding=zeros 1, stride 2×1" in done.output
    done = run("show", f"{PNET}:conv1", "--json")
    assert json.loads(done.output)["layer"]["parameters"] == 280
