"""Files as users meet them, through the installed command: big images up to --max-pixels with
no library's own limit in the way, TIFF orientation and metadata, depth that cannot be held said
in a note, channels-first arrays, and messages that point the right way."""

from __future__ import annotations

import io
import os
import struct
import subprocess

import cv2
import numpy as np
import pytest
from conftest import SAMPLES
from hostile_files import encoded, exif_tiff, jpeg_with_exif, png_chunk, png_of_zeros, tiff_with_exif
from PIL import Image as PILImage
from PIL import ImageOps
from test_hardening import assert_clean_failure, run_command

CAT = SAMPLES / "cat.jpeg"


def _run(convfilter_command, tmp_path, *args):
    return run_command(convfilter_command, list(args), tmp_path)


def test_200_mp_is_refused_by_default_and_read_when_allowed(tmp_path, convfilter_command):
    """Pillow's own limit (179 MP) never applies: --max-pixels is the only one."""
    dpi = png_chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))  # 300 dpi: metadata to read
    (tmp_path / "big.png").write_bytes(png_of_zeros(20000, 10000, bits=8, colour=0, chunks=dpi))
    done = _run(convfilter_command, tmp_path, "identity", "big.png", "-o", "out.png")
    assert_clean_failure(done, 1, "20000×10000 is 200 MP, over the limit of 128 MP")
    done = _run(convfilter_command, tmp_path, "identity", "big.png", "-o", "out.png", "--max-pixels", "100000000")
    assert_clean_failure(done, 1, "20000×10000 is 200 MP, over the limit of 100 MP")
    done = _run(
        convfilter_command, tmp_path, "identity", "big.png", "-o", "out.png", "--max-pixels", "300000000",
        "--stride", "100", "-q",
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    with PILImage.open(tmp_path / "out.png") as out:
        assert out.size == (200, 100) and out.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def _marked(size=(5, 3)) -> PILImage.Image:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[0, 0], pixels[0, -1], pixels[-1, 0] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    return PILImage.fromarray(pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_once(tmp_path, convfilter_command, orientation):
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    _marked().save(tmp_path / "in.tif", exif=exif.tobytes())
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", "out.png", "-q")
    assert done.returncode == 0, done.stderr
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "in.tif")).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "out.png")), expected)


def _tiff_pixels(path) -> np.ndarray:
    """A TIFF's pixels in R, G, B order, as libtiff reads them (through OpenCV)."""
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]


def _camera_exif() -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[0x010F], exif[0x0131] = "Maker", "camera software"
    exif.get_ifd(0x8769)[0x829A] = (1, 250)  # an exposure time, in the camera sub-directory
    exif.get_ifd(0x8825)[0x0002] = (52.0, 12.0, 30.0)  # a latitude, in the GPS one
    return exif


def _camera_file(path, profile: bytes) -> None:
    """A photo carrying EXIF with camera and GPS sub-directories, an ICC profile and 300 dpi: a
    JPEG written by Pillow, or a TIFF laid out here (Pillow's TIFF writer leaves sub-directories out)."""
    if path.suffix == ".jpg":
        _marked().save(path, exif=_camera_exif(), icc_profile=profile, dpi=(300, 300), quality=100)
        return
    ascii_ = lambda text: (2, len(text) + 1, text.encode() + b"\0")  # noqa: E731
    rational = lambda *v: (5, len(v) // 2, struct.pack(f"<{len(v)}I", *v))  # noqa: E731
    entries = [(0x010F, *ascii_("Maker")), (0x0131, *ascii_("camera software")), (34675, 7, len(profile), profile),
               (282, *rational(300, 1)), (283, *rational(300, 1)), (296, 3, 1, struct.pack("<H", 2))]  # fmt: skip
    subs = {0x8769: [(0x829A, *rational(1, 250))], 0x8825: [(0x0002, *rational(52, 1, 12, 1, 30, 1))]}
    path.write_bytes(tiff_with_exif(np.asarray(_marked()), entries, subs))


@pytest.mark.parametrize("source", ["camera.jpg", "camera.tif"])
def test_tiff_metadata_is_carried_with_its_sub_directories(tmp_path, convfilter_command, source):
    """EXIF with its camera and GPS sub-directories, the ICC profile and the resolution reach a
    TIFF, read back by a TIFF reader of its own (tifffile) and by libtiff (Pillow)."""
    import tifffile

    profile = PILImage.open(SAMPLES / "coffee-icc.jpeg").info["icc_profile"]
    _camera_file(tmp_path / source, profile)
    done = _run(convfilter_command, tmp_path, "identity", source, "-o", "out.tif")
    assert done.returncode == 0 and b"note" not in done.stderr, done.stderr
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert len(tif.pages) == 1 and page.shape == (3, 5, 3)
        assert page.tags["Make"].value == "Maker" and page.tags["Software"].value == "camera software"
        assert page.tags["ExifTag"].value["ExposureTime"] == (1, 250)
        assert page.tags["GPSTag"].value["GPSLatitude"] == (52, 1, 12, 1, 30, 1)
        assert bytes(page.tags["InterColorProfile"].value) == profile
        assert page.tags["XResolution"].value == (300, 1) and page.tags["ResolutionUnit"].value == 2
    expected = np.asarray(PILImage.open(tmp_path / source).convert("RGB"), np.int16)
    assert np.abs(_tiff_pixels(tmp_path / "out.tif") - expected).max() <= (2 if source.endswith("jpg") else 0)
    with PILImage.open(tmp_path / "out.tif") as out, PILImage.open(tmp_path / source) as original:
        assert out.info["icc_profile"] == profile
        for ifd in (0x8769, 0x8825):
            assert out.getexif().get_ifd(ifd) == original.getexif().get_ifd(ifd) != {}


def test_tiff_metadata_reaches_16_bit_and_float_tiffs(tmp_path, convfilter_command):
    import tifffile

    profile = PILImage.open(SAMPLES / "coffee-icc.jpeg").info["icc_profile"]
    for dtype in (np.uint16, np.float32):
        pixels = (np.arange(60).reshape(4, 5, 3) * 1000).astype(dtype)
        tifffile.imwrite(
            tmp_path / "in.tif", pixels, photometric="rgb", iccprofile=profile, resolution=(300, 300),
            resolutionunit="INCH", extratags=[(0x010F, "s", 0, "Maker", True)],
        )  # fmt: skip
        done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", "out.tif", "-q")
        assert done.returncode == 0 and done.stderr == b"", done.stderr
        with tifffile.TiffFile(tmp_path / "out.tif") as tif:
            page = tif.pages[0]
            assert bytes(page.tags["InterColorProfile"].value) == profile and page.tags["Make"].value == "Maker"
            assert page.tags["XResolution"].value == (300, 1)
        np.testing.assert_array_equal(_tiff_pixels(tmp_path / "out.tif"), pixels)


def test_a_multi_page_tiff_gives_one_page_without_its_page_tags(tmp_path, convfilter_command):
    pages = [_marked() for _ in range(3)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    done = _run(convfilter_command, tmp_path, "identity", "pages.tif", "-o", "page.tif")
    assert b"pages.tif has 3 frames: only the first is filtered" in done.stderr
    with PILImage.open(tmp_path / "page.tif") as out:
        assert out.n_frames == 1 and 297 not in out.tag_v2  # no PageNumber of the input's


@pytest.mark.parametrize(
    ("dtype", "output", "note"),
    [
        (np.float32, "out.png", "holds float32 values and out.png holds 8-bit integers: the result is rounded"),
        (np.int32, "out.png", "(100.0% of the values fall outside 0..255 and are clipped)"),
        (np.float64, "out.jpg", "--range normalize stretches it to 0..255"),
    ],
)
def test_a_depth_the_output_cannot_hold_is_said(tmp_path, convfilter_command, dtype, output, note):
    np.save(tmp_path / "in.npy", np.full((8, 9, 3), 1000, dtype))
    done = _run(convfilter_command, tmp_path, "identity", "in.npy", "-o", output)
    assert done.returncode == 0, done.stderr
    assert note.encode() in done.stderr, done.stderr


def test_wide_integers_and_floats_stay_float_in_a_tiff(tmp_path, convfilter_command):
    np.save(tmp_path / "in.npy", np.full((8, 9, 1), 70000, np.int32))
    done = _run(convfilter_command, tmp_path, "identity", "in.npy", "-o", "out.tif")
    assert done.returncode == 0 and b"note" not in done.stderr, done.stderr
    out = np.asarray(PILImage.open(tmp_path / "out.tif"))
    assert out.dtype == np.float32 and (out == 70000).all()


def test_nearly_flat_output_is_said(tmp_path, convfilter_command):
    (tmp_path / "bright.yaml").write_text("weights: [[10]]\n")
    done = _run(convfilter_command, tmp_path, "bright.yaml", CAT, "-o", "out.png")
    assert b"of the values fall outside 0..255 and are clipped: out.png is nearly flat" in done.stderr
    done = _run(convfilter_command, tmp_path, "edge", CAT, "-o", "edge.png")  # clips its negative half by design
    assert b"note" not in done.stderr, done.stderr


def test_channels_first_arrays_are_refused_with_the_transpose(tmp_path, convfilter_command):
    np.save(tmp_path / "chw.npy", np.zeros((3, 32, 48), np.float32))
    done = _run(convfilter_command, tmp_path, "identity", "chw.npy", "-o", "out.npy")
    assert_clean_failure(done, 1, "shape (3, 32, 48) looks like channels first (C, H, W)")
    assert b"np.moveaxis(array, 0, -1)" in done.stderr
    np.save(tmp_path / "hwc.npy", np.zeros((32, 48, 3), np.float32))
    assert _run(convfilter_command, tmp_path, "identity", "hwc.npy", "-o", "out.npy").returncode == 0


@pytest.mark.parametrize(
    ("kernel", "fragment"),
    [
        ("cat.jpeg", "KERNEL comes first: cat.jpeg is an image, not a kernel; try 'convfilter edge cat.jpeg …'"),
        ("my.json", "kernel file my.json: .json is not a kernel format; give a .yaml, .yml or .npy file"),
        ("layer.pt", "model file layer.pt: not a readable PyTorch file"),
        ("sharpen.mat", "kernel file sharpen.mat: line 1: '{}' is not a number"),
        ("net.h5", "net.h5: .h5 is a Keras model, which is not read"),
    ],
)
def test_messages_point_the_right_way(tmp_path, convfilter_command, kernel, fragment):
    (tmp_path / "cat.jpeg").write_bytes(CAT.read_bytes())
    for name in ("my.json", "layer.pt", "sharpen.mat", "net.h5"):
        (tmp_path / name).write_bytes(b"{}")
    done = _run(convfilter_command, tmp_path, kernel, "cat.jpeg", "-o", "out.png")
    assert_clean_failure(done, 2, fragment)
    assert not (tmp_path / "out.png").exists()


def test_a_4d_yaml_weight_infers_its_groups_as_a_npy_does(tmp_path, convfilter_command):
    weight = [[[[0.5]], [[0]], [[0.5]]]]  # [1, 3, 1, 1]: the mean of red and blue
    (tmp_path / "mix.yaml").write_text(f"weights: {weight}\n")
    np.save(tmp_path / "mix.npy", np.array(weight, np.float32))
    for kernel in ("mix.yaml", "mix.npy"):
        done = _run(convfilter_command, tmp_path, kernel, CAT, "-o", f"{kernel}.png", "-q")
        assert done.returncode == 0, done.stderr
    cat = np.asarray(PILImage.open(CAT)).astype(float)
    for kernel in ("mix.yaml", "mix.npy"):
        out = np.asarray(PILImage.open(tmp_path / f"{kernel}.png")).astype(float)
        assert np.abs(out - np.rint((cat[..., 0] + cat[..., 2]) / 2)).max() <= 1


def test_a_16_bit_tiff_orientation_too(tmp_path, convfilter_command):
    pixels = np.zeros((3, 5), np.uint16)
    pixels[0, 0] = 60000
    image = PILImage.fromarray(pixels)
    exif = PILImage.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", exif=exif.tobytes())
    (tmp_path / "in.tif").write_bytes(buffer.getvalue())
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", "out.png", "-q")
    assert done.returncode == 0, done.stderr
    out = np.asarray(PILImage.open(tmp_path / "out.png"))
    assert out.shape == (5, 3) and out[0, -1] == 60000 and out.sum() == 60000


MALFORMED_EXIF = {
    "make-as-rational": [(271, 5, 1, struct.pack("<II", 1, 3))],
    "xmp-as-double": [(700, 12, 1, struct.pack("<d", 1.5))],
    "xmp-as-ascii": [(700, 2, 4, b"abc\0")],
    "orientation-twice": [(274, 3, 2, struct.pack("<HH", 6, 3))],
    "pointer-past-the-end": [(34665, 4, 1, struct.pack("<I", 1 << 30))],
    "tag-data-past-the-end": [(33723, 7, 1 << 20, struct.pack("<I", 40))],
}


@pytest.mark.parametrize("case", list(MALFORMED_EXIF))
@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_malformed_exif_is_dropped_not_fatal(tmp_path, convfilter_command, case, ext):
    (tmp_path / "in.jpg").write_bytes(jpeg_with_exif(exif_tiff(MALFORMED_EXIF[case])))
    done = _run(convfilter_command, tmp_path, "identity", "in.jpg", "-o", f"out.{ext}", "-q")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert PILImage.open(tmp_path / f"out.{ext}").size == (8, 8)


@pytest.mark.parametrize("resolution", [(1, 0), (0, 0), (4294967295, 1)])
@pytest.mark.parametrize("ext", ["png", "jpg", "tif"])
def test_a_resolution_that_is_no_number_is_dropped(tmp_path, convfilter_command, resolution, ext):
    strip = bytes(8 * 8)
    rational = struct.pack("<II", *resolution)
    entries = [(256, 3, 1, struct.pack("<H", 8)), (257, 3, 1, struct.pack("<H", 8)), (258, 3, 1, struct.pack("<H", 8))]
    entries += [(262, 3, 1, struct.pack("<H", 1)), (273, 4, 1, b"STRP"), (277, 3, 1, struct.pack("<H", 1))]
    entries += [(278, 3, 1, struct.pack("<H", 8)), (279, 4, 1, struct.pack("<I", len(strip)))]
    entries += [(282, 5, 1, rational), (283, 5, 1, rational), (296, 3, 1, struct.pack("<H", 2))]
    tiff = exif_tiff(entries)
    tiff = tiff.replace(b"STRP", struct.pack("<I", len(tiff))) + strip
    (tmp_path / "in.tif").write_bytes(tiff)
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", f"out.{ext}", "-q")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert PILImage.open(tmp_path / f"out.{ext}").size == (8, 8)


@pytest.mark.parametrize("source", ["RGBA", "LA", "RGB"])
def test_webp_keeps_the_icc_profile_and_exif_with_alpha_too(tmp_path, convfilter_command, source):
    profile = bytes(range(256)) * 3
    exif = PILImage.Exif()
    exif[0x010F] = "Maker"
    PILImage.new(source, (12, 10)).save(tmp_path / "in.png", icc_profile=profile, exif=exif.tobytes())
    done = _run(convfilter_command, tmp_path, "identity", "in.png", "-o", "out.webp", "-q")
    assert done.returncode == 0, done.stderr
    with PILImage.open(tmp_path / "out.webp") as out:
        assert out.info["icc_profile"] == profile and out.getexif()[0x010F] == "Maker"
        assert out.mode == ("RGB" if source == "RGB" else "RGBA")


def test_a_png_with_a_large_icc_profile_keeps_all_its_metadata(tmp_path, convfilter_command):
    """Pillow refuses a PNG text chunk over 1 MB by default, and with it every other part."""
    profile = np.random.default_rng(5).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()  # incompressible
    exif = PILImage.Exif()
    exif[0x0112] = 6
    image = PILImage.fromarray(np.zeros((3, 5, 3), np.uint8))
    image.save(tmp_path / "in.jpg", icc_profile=profile, exif=exif.tobytes(), dpi=(300, 300))
    for step, (source, target) in enumerate([("in.jpg", "mid.png"), ("mid.png", "out.jpg")]):
        done = _run(convfilter_command, tmp_path, "identity", source, "-o", target, "-q")
        assert done.returncode == 0, (step, done.stderr)
    with PILImage.open(tmp_path / "out.jpg") as out:
        assert out.info["icc_profile"] == profile and out.size == (3, 5)  # turned upright once
        assert out.info["dpi"] == pytest.approx((300, 300), abs=0.5)


def test_avif_is_refused_in_one_line(tmp_path, convfilter_command):
    (tmp_path / "in.avif").write_bytes(encoded(".avif", np.zeros((16, 16, 3), np.uint8)))
    done = _run(convfilter_command, tmp_path, "identity", "in.avif", "-o", "out.png")
    assert_clean_failure(done, 1, "AVIF and HEIF files are not read (their size cannot be checked before decoding)")


def test_one_input_into_a_new_folder_makes_it(tmp_path, convfilter_command):
    done = _run(convfilter_command, tmp_path, "edge", CAT, "-o", "new/deeper/", "-q")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new" / "deeper" / "cat.jpeg").is_file()
    done = _run(convfilter_command, tmp_path, "edge", CAT, "-o", "absent/out.png")  # a file in no folder: refused
    assert_clean_failure(done, 2, "the folder absent does not exist")
    (tmp_path / "a-file").write_text("in the way")
    done = _run(convfilter_command, tmp_path, "edge", CAT, "-o", "a-file/sub/")
    assert_clean_failure(done, 2, "output a-file/sub: cannot make the folder")


def _complete(convfilter_command, words: str, index: int) -> list[str]:
    environment = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(index), "_CONVFILTER_COMPLETE": "bash_complete"}
    done = subprocess.run([convfilter_command], env=environment, capture_output=True, text=True, timeout=120)
    return done.stdout.split()


def test_shell_completion_offers_kernels_commands_and_files(convfilter_command):
    assert _complete(convfilter_command, "convfilter ga", 1) == ["plain,gallery", "plain,gaussian"]
    assert "plain,sobel-x" in _complete(convfilter_command, "convfilter show so", 2)
    assert _complete(convfilter_command, "convfilter ./my", 1) == ["file,./my"]  # a kernel file
    assert _complete(convfilter_command, "convfilter edge pho", 2) == ["file,pho"]  # inputs are files
    assert _complete(convfilter_command, "convfilter edge a.png -o ou", 4) == ["file,ou"]
    source = subprocess.run(
        [convfilter_command], env={**os.environ, "_CONVFILTER_COMPLETE": "bash_source"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "complete " in source.stdout and "_CONVFILTER_COMPLETE" in source.stdout


def test_help_names_the_version_and_what_format_does(convfilter_command):
    done = subprocess.run([convfilter_command, "--help"], capture_output=True, text=True, timeout=120)
    assert "convfilter --version" in done.stdout
    assert "standard output or an output folder" in " ".join(done.stdout.split())
    version = subprocess.run([convfilter_command, "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.startswith("convfilter ")
