"""A layer's result as a CNN user looks at it, through the installed command: the input prepared
as the model saw it, every channel in one montage, or one image per channel."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CAT, DATA
from PIL import Image as PILImage
from test_hardening import assert_clean_failure, run_command

MODELS = DATA / "models"


@pytest.fixture
def bank(tmp_path):
    """A random 32-filter first layer [32, 3, 3, 3]."""
    np.save(tmp_path / "bank.npy", np.random.default_rng(32).normal(size=(32, 3, 3, 3)).astype(np.float32))
    return tmp_path


def test_montage_of_32_maps_is_one_readable_picture(bank, convfilter_command):
    done = run_command(convfilter_command, ["bank.npy", CAT, "-o", "maps.png", "--montage", "-q"], bank)
    assert done.returncode == 0, done.stderr
    with PILImage.open(bank / "maps.png") as picture:
        sheet = np.asarray(picture.convert("RGB"))
    assert max(sheet.shape[:2]) <= 4000 and sheet.shape[1] >= 5 * 451  # 32 maps of 451×300, about square
    assert sheet.min() == 0 and sheet.max() == 255  # each map stretched to the full range


def test_split_writes_one_stretched_image_per_channel(bank, convfilter_command):
    done = run_command(convfilter_command, ["bank.npy", CAT, "-o", "out.png", "--split", "-q"], bank)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in bank.glob("out-*.png"))
    assert names == [f"out-{i:02}.png" for i in range(32)]
    run_command(convfilter_command, ["bank.npy", CAT, "-o", "raw.npy"], bank)
    raw = np.load(bank / "raw.npy")
    for index in (0, 17, 31):
        got = np.asarray(PILImage.open(bank / f"out-{index:02}.png")).astype(float)
        channel = raw[..., index]
        expected = (channel - channel.min()) * 255 / (channel.max() - channel.min())
        assert np.abs(got - expected).max() <= 0.51


def test_the_input_is_prepared_as_the_model_saw_it(tmp_path, convfilter_command):
    """``(x · scale − mean) / std`` per channel, after B, G, R order with --bgr: against NumPy."""
    args = ["identity", CAT, "-o", "out.npy", "--scale", "0.0039215686", "--mean", "0.485,0.456,0.406"]
    done = run_command(convfilter_command, [*args, "--std", "0.229,0.224,0.225", "--bgr", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    cat = np.asarray(PILImage.open(CAT)).astype(np.float64)[..., ::-1]
    expected = (cat * 0.0039215686 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.abs(np.load(tmp_path / "out.npy") - expected).max() < 0.03  # JPEG decoders differ by a level


def test_the_onnx_model_first_layer_on_a_prepared_cat(tmp_path, convfilter_command):
    """The recipe of the README: the MobileNetV3's first layer, input as it was trained (BGR, [-1, 1])."""
    model = MODELS / "ppocr-cls-mobilenetv3.onnx"
    args = [model, CAT, "-o", "maps.png", "--montage", "--scale", str(1 / 127.5), "--mean", "1", "--bgr", "-q"]
    done = run_command(convfilter_command, args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert PILImage.open(tmp_path / "maps.png").size[0] > 3 * 226


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--montage", "--split"], "options --montage and --split exclude each other"),
        (["--mean", "1,2"], "option --mean: 2 values for an image of 3 channels"),
        (["--std", "0"], "option --std: the values must be finite and not 0"),
        (["--mean", "a,b,c"], "option --mean: 'a,b,c' is not a list of numbers"),
    ],
)
def test_bad_map_options_are_one_line(bank, convfilter_command, args, fragment):
    done = run_command(convfilter_command, ["bank.npy", CAT, "-o", "out.png", *args], bank)
    assert_clean_failure(done, 2, fragment)
    assert not list(bank.glob("out*"))


def test_split_needs_a_file_and_many_channels_name_the_flags(bank, convfilter_command):
    done = run_command(convfilter_command, ["bank.npy", CAT, "-o", "-", "--split"], bank)
    assert_clean_failure(done, 2, "option --split writes one file per channel: give -o FILE")
    done = run_command(convfilter_command, ["bank.npy", CAT, "-o", "out.png"], bank)
    assert_clean_failure(done, 2, "use --montage (every channel in one picture), --split (one image per channel)")


@pytest.mark.parametrize(("padding", "torch_padding"), [("1", 1), ("2,0", (2, 0)), ("valid", 0)])
def test_padding_as_pytorch_takes_it(tmp_path, convfilter_command, padding, torch_padding):
    """``--padding N`` or ``H,W`` for a layer read from a state dict: F.conv2d's numbers."""
    import torch
    import torch.nn.functional as F

    args = [MODELS / "mtcnn-pnet.pt:conv1", CAT, "-o", "out.npy", "--padding", padding, "--mean", "127.5"]
    done = run_command(convfilter_command, [*args, "--std", "128", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    state = torch.load(MODELS / "mtcnn-pnet.pt", weights_only=True)
    cat = (np.asarray(PILImage.open(CAT)).astype(np.float32) - 127.5) / 128
    x = torch.from_numpy(np.ascontiguousarray(cat.transpose(2, 0, 1)))[None]
    expected = F.conv2d(x, state["conv1.weight"], state["conv1.bias"], padding=torch_padding)[0].numpy()
    got = np.load(tmp_path / "out.npy").transpose(2, 0, 1)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 0.05  # JPEG decoders differ by a level
