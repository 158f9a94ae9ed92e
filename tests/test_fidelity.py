"""Images come out as users expect: orientation, colour profiles, metadata, bit depth, alpha,
formats, streams and atomic writes, through real files, real codecs and the installed command."""

from __future__ import annotations

import io
import os
import subprocess

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SAMPLES
from PIL import Image, ImageOps

from convfilter.cli import cli
from convfilter.metadata import ORIENTATION

CAT = SAMPLES / "cat.jpeg"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_exif_rotated_photo_is_filtered_upright(tmp_path):
    assert run("identity", SAMPLES / "cat-exif-rotated.jpeg", "-o", tmp_path / "up.png", "-q").exit_code == 0
    up, cat = rgb(tmp_path / "up.png"), rgb(CAT)
    assert up.shape == cat.shape == (300, 451, 3)
    # the sample's pixels were rotated and compressed again: close to cat.jpeg, far from any other turn
    assert np.abs(up - cat).mean() < 3
    assert np.abs(up[::-1, ::-1] - cat).mean() > 20
    assert ORIENTATION not in Image.open(tmp_path / "up.png").getexif()
    assert run("edge", SAMPLES / "cat-exif-rotated.jpeg", "-o", tmp_path / "e.jpg", "-q").exit_code == 0
    assert Image.open(tmp_path / "e.jpg").size == (451, 300)
    assert ORIENTATION not in Image.open(tmp_path / "e.jpg").getexif()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_as_pillow_applies_it(tmp_path, orientation, rng):
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    assert run("identity", tmp_path / "o.png", "-o", tmp_path / "out.png", "-q").exit_code == 0
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_icc_profile_survives_filtering(tmp_path, ext):
    profile = Image.open(SAMPLES / "coffee-icc.jpeg").info["icc_profile"]
    assert run("sharpen", SAMPLES / "coffee-icc.jpeg", "-o", tmp_path / f"c.{ext}", "-q").exit_code == 0
    out = Image.open(tmp_path / f"c.{ext}")
    assert out.info.get("icc_profile") == profile
    # and the pixels are the filtered ones: exactly for lossless formats
    from convfilter import load_kernel
    from convfilter.imageio import read_image
    from convfilter.pipeline import filter_pixels

    expected, _ = filter_pixels(read_image(SAMPLES / "coffee-icc.jpeg").pixels, load_kernel("sharpen"))
    difference = np.abs(rgb(tmp_path / f"c.{ext}") - expected)
    if ext in ("png", "tif"):
        assert difference.max() == 0
    else:  # lossy at quality 95, on a sharpened photo
        assert difference.mean() < 5


def test_exif_is_kept_without_its_orientation_and_dpi_too(tmp_path, rng):
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    exif[0x0131] = "camera software"  # Software
    exif[0x010F] = "Maker"  # Make
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
        tmp_path / "in.jpg", exif=exif, dpi=(300, 300)
    )
    for ext in ("jpg", "png", "webp"):
        assert run("box", tmp_path / "in.jpg", "-o", tmp_path / f"out.{ext}", "-q").exit_code == 0
        out = Image.open(tmp_path / f"out.{ext}")
        kept = out.getexif()
        assert kept.get(0x0131) == "camera software" and kept.get(0x010F) == "Maker", ext
        assert ORIENTATION not in kept, ext
    assert Image.open(tmp_path / "out.jpg").info["dpi"] == (300, 300)
    assert round(Image.open(tmp_path / "out.png").info["dpi"][0]) == 300


def test_sixteen_bit_in_sixteen_bit_out_at_full_precision(tmp_path):
    assert (
        run("gaussian", "-p", "sigma=2", SAMPLES / "astronaut-16bit.png", "-o", tmp_path / "g.png", "-q").exit_code == 0
    )
    out = cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED)
    src = cv2.imread(str(SAMPLES / "astronaut-16bit.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == src.shape
    assert np.count_nonzero(out % 257) > 0.5 * out.size  # not an 8-bit result scaled up
    reference = cv2.GaussianBlur(src.astype(np.float64), (13, 13), 2, borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(out.astype(float) - np.clip(np.rint(reference), 0, 65535)).max() <= 1


def test_sixteen_bit_tiff_and_the_notice_for_eight_bit_formats(tmp_path, rng):
    pixels = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "in.tif"), pixels)
    assert run("identity", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "-q").exit_code == 0
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED), pixels)
    result = run("identity", tmp_path / "in.tif", "-o", tmp_path / "out.jpg")
    assert result.exit_code == 0
    assert (
        "convfilter: note: " in result.stderr
        and "holds 8 bits per channel: the result is written as 8-bit" in result.stderr
    )
    assert cv2.imread(str(tmp_path / "out.jpg"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_npy_in_and_out_any_channel_count(tmp_path, rng):
    array = rng.standard_normal((9, 11, 5)).astype(np.float32) * 1000
    np.save(tmp_path / "in.npy", array)
    assert run("identity", tmp_path / "in.npy", "-o", tmp_path / "out.npy", "-q").exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), array)
    four = rng.standard_normal((6, 6, 4)).astype(np.float32)
    np.save(tmp_path / "four.npy", four)
    result = run("box", tmp_path / "four.npy", "-o", tmp_path / "four-out.npy")
    assert result.exit_code == 0 and "3→3" not in result.stderr and "4→4" in result.stderr  # no alpha in raw data


def test_gray_stays_one_channel_and_rgb_kernels_see_it_repeated(tmp_path):
    assert run("sharpen", SAMPLES / "camera.png", "-o", tmp_path / "s.png", "-q").exit_code == 0
    assert Image.open(tmp_path / "s.png").mode == "L"
    assert run("sepia", SAMPLES / "camera.png", "-o", tmp_path / "sepia.png", "-q").exit_code == 0
    out = np.asarray(Image.open(tmp_path / "sepia.png")).astype(float)
    gray = np.asarray(Image.open(SAMPLES / "camera.png")).astype(float)
    sums = np.array([0.393 + 0.769 + 0.189, 0.349 + 0.686 + 0.168, 0.272 + 0.534 + 0.131])
    np.testing.assert_allclose(out, np.clip(np.rint(gray[..., None] * sums), 0, 255), atol=1)


def test_quality_and_png_compression(tmp_path):
    for quality in (40, 95):
        assert run("identity", CAT, "-o", tmp_path / f"q{quality}.jpg", "--quality", quality, "-q").exit_code == 0
        assert run("identity", CAT, "-o", tmp_path / f"q{quality}.webp", "--quality", quality, "-q").exit_code == 0
    assert (tmp_path / "q40.jpg").stat().st_size < 0.7 * (tmp_path / "q95.jpg").stat().st_size
    assert (tmp_path / "q40.webp").stat().st_size < 0.7 * (tmp_path / "q95.webp").stat().st_size
    for level in (0, 9):
        assert run("identity", CAT, "-o", tmp_path / f"c{level}.png", "--compression", level, "-q").exit_code == 0
    assert (tmp_path / "c9.png").stat().st_size < 0.8 * (tmp_path / "c0.png").stat().st_size
    np.testing.assert_array_equal(rgb(tmp_path / "c0.png"), rgb(tmp_path / "c9.png"))


def test_multi_frame_inputs_filter_the_first_frame_with_a_note(tmp_path):
    frames = [Image.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    for name in ("anim.gif", "pages.tif"):
        result = run("identity", tmp_path / name, "-o", tmp_path / f"{name}.png")
        assert result.exit_code == 0
        assert f"{name} has 3 frames: only the first is filtered" in result.stderr
        assert rgb(tmp_path / f"{name}.png")[0, 0].tolist() == [10, 10, 10]


def test_format_is_detected_from_the_bytes_not_the_name(tmp_path):
    (tmp_path / "really-a-png.jpg").write_bytes((SAMPLES / "camera.png").read_bytes())
    assert run("identity", tmp_path / "really-a-png.jpg", "-o", tmp_path / "o.png", "-q").exit_code == 0
    result = run("identity", "-", "-o", "-", "-q", input=(SAMPLES / "camera.png").read_bytes())
    assert result.exit_code == 0 and result.stdout_bytes.startswith(b"\x89PNG")


def test_shell_pipeline(tmp_path, convfilter_command):
    shell = (
        f"cat '{CAT}' | '{convfilter_command}' sharpen - -o - | '{convfilter_command}' identity - -o - --format png"
        f" | '{convfilter_command}' edge - -o '{tmp_path / 'out.png'}'"
    )
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (451, 300)
    assert "<stdin> → -" in done.stderr  # every report went to stderr, stdout carried the image


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_writing_over_an_input_through_a_link_is_refused(tmp_path, link):
    original = tmp_path / "cat.jpeg"
    original.write_bytes(CAT.read_bytes())
    alias = tmp_path / "alias.jpeg"
    os.symlink(original, alias) if link == "symlink" else os.link(original, alias)
    result = run("edge", original, "-o", alias)
    assert result.exit_code == 2 and "writing over an input is refused" in result.stderr
    assert original.read_bytes() == CAT.read_bytes()


def test_a_write_that_fails_half_way_keeps_the_old_output(tmp_path, convfilter_command):
    target = tmp_path / "out.png"
    target.write_bytes(b"the old output")
    # 64 KiB of file size allowed: the new PNG (hundreds of KiB) cannot be written whole
    shell = f"ulimit -f 64; exec '{convfilter_command}' identity '{SAMPLES / 'astronaut.png'}' -o '{target}'"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("convfilter: error: output ") and "Traceback" not in done.stderr
    assert target.read_bytes() == b"the old output"
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left


def test_metadata_splicing_keeps_files_decodable(tmp_path):
    # a profile larger than one JPEG segment (64 KiB) is split, and read back whole
    from convfilter.imageio import encode_image
    from convfilter.metadata import Metadata

    profile = Image.open(SAMPLES / "coffee-icc.jpeg").info["icc_profile"] * 150
    pixels = np.asarray(Image.open(CAT))
    data = encode_image(pixels, "jpeg", 90, Metadata(icc=profile))
    assert Image.open(io.BytesIO(data)).info["icc_profile"] == profile
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape == (300, 451, 3)


def test_float_tiff_stays_float_and_unclipped(tmp_path, rng):
    pixels = (rng.standard_normal((12, 10, 3)) * 500).astype(np.float32)
    cv2.imwrite(str(tmp_path / "in.tif"), pixels[..., ::-1])
    assert run("identity", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "-q").exit_code == 0
    out = cv2.imread(str(tmp_path / "out.tif"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert out.dtype == np.float32 and out.min() < 0 and out.max() > 255
    np.testing.assert_array_equal(out, pixels)
