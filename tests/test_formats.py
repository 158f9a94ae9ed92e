"""Every format a decoder reads has its size read from its header before decoding: the header
parsers against what the real decoders make of real files, bombs in every format refused through
the installed command under a memory limit, and inputs that never end."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import threading
import warnings
import zlib

import numpy as np
import pytest
from conftest import capped
from hostile_files import BOMBS, encoded, png_chunk, png_of_zeros, tiff_pages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from test_hardening import assert_clean_failure, run_command

from convfilter import ImageError
from convfilter.guards import Limits
from convfilter.headers import count_frames, detect_format, header_size
from convfilter.imageio import decode_image
from convfilter.metadata import read_metadata

FUZZ_EXAMPLES = int(os.environ.get("CONVFILTER_FUZZ", "300"))
# what OpenCV writes (and reads back) here, with the channel counts and depths each takes
OPENCV_FORMATS = {
    ".png": ((1, 3, 4), (np.uint8, np.uint16)),
    ".jpg": ((1, 3), (np.uint8,)),
    ".bmp": ((1, 3, 4), (np.uint8,)),
    ".tiff": ((1, 3, 4), (np.uint8, np.uint16, np.float32)),
    ".webp": ((3, 4), (np.uint8,)),
    ".jp2": ((1, 3), (np.uint8, np.uint16)),
    ".hdr": ((3,), (np.float32,)),
    ".pfm": ((1, 3), (np.float32,)),
    ".pgm": ((1,), (np.uint8, np.uint16)),
    ".ppm": ((3,), (np.uint8, np.uint16)),
    ".pam": ((1, 3), (np.uint8,)),
    ".ras": ((1, 3), (np.uint8,)),
}
# what Pillow writes, with options that move the size: a JPEG's frame after 200 kB of ICC profile, BigTIFF
PILLOW_FORMATS = {
    "PNG": {},
    "JPEG": {"icc_profile": bytes(200_000)},
    "BMP": {},
    "TIFF": {"big_tiff": True},
    "WEBP": {},
    "JPEG2000": {},
    "PPM": {},
    "GIF": {},
}


def _assert_header_matches(data: bytes) -> None:
    fmt = detect_format(data)
    assert fmt is not None
    height, width = decode_image(data, "x").pixels.shape[:2]
    assert header_size(data, fmt) == (width, height), fmt


@pytest.mark.parametrize("ext", list(OPENCV_FORMATS))
def test_header_sizes_are_what_opencv_decodes(ext):
    rng = np.random.default_rng([20261126, len(ext), ord(ext[1])])
    channels, dtypes = OPENCV_FORMATS[ext]
    for _ in range(6):
        height, width = (int(n) for n in rng.integers(1, 300, 2))
        if ext == ".jp2":  # its encoder wants a few pixels each way
            height, width = height + 32, width + 32
        dtype = dtypes[rng.integers(len(dtypes))]
        shape = (height, width, channels[rng.integers(len(channels))])
        pixels = (rng.random(shape) * (1 if dtype == np.float32 else np.iinfo(dtype).max)).astype(dtype)
        _assert_header_matches(encoded(ext, pixels))


@pytest.mark.parametrize("fmt", list(PILLOW_FORMATS))
def test_header_sizes_are_what_opencv_decodes_of_pillows_files(fmt):
    rng = np.random.default_rng([20261126, len(fmt)])
    for mode in ("L", "RGB"):
        height, width = (int(n) for n in rng.integers(8, 200, 2))
        image = PILImage.fromarray(rng.integers(0, 256, (height, width, len(mode)), np.uint8).squeeze())
        buffer = io.BytesIO()
        image.save(buffer, fmt, **PILLOW_FORMATS[fmt])
        _assert_header_matches(buffer.getvalue())


def test_frames_are_counted_from_the_structure():
    frames = [PILImage.new("L", (5 + i, 4), i * 20) for i in range(7)]
    for fmt in ("GIF", "TIFF"):
        buffer = io.BytesIO()
        frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:])
        assert count_frames(buffer.getvalue(), fmt.lower().replace("gif", "gif")) == 7
    assert count_frames(tiff_pages(3), "tiff") == 3
    assert count_frames(BOMBS["bomb-tiled.tif"][0], "tiff") == 1


# a long profile: CONVFILTER_FUZZ=20000 python -m pytest tests/test_formats.py -k corrupted
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ext=st.sampled_from(sorted(OPENCV_FORMATS)),
    changes=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_a_corrupted_header_never_decodes_to_more_than_it_states(ext, changes):
    """Whatever bytes the header holds, the decoder never makes an image larger than the size
    the parser read (and was checked): else a bomb could pass the check."""
    channels = OPENCV_FORMATS[ext][0][-1]
    dtype = np.float32 if ext in (".hdr", ".pfm") else np.uint8
    data = bytearray(encoded(ext, np.full((40, 48, channels), 7, dtype)))
    for position, value in changes:
        data[position % len(data)] = value
    try:
        image = decode_image(bytes(data), "x", Limits(max_pixels=1 << 16, allow_truncated=True))
    except ImageError:
        return
    width, height = header_size(data, detect_format(data))
    assert image.pixels.shape[0] * image.pixels.shape[1] <= width * height


@pytest.fixture
def bombs(tmp_path):
    for name, (data, _) in BOMBS.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_in_every_format_are_refused_from_the_header(bombs, convfilter_command, name):
    done = run_command(convfilter_command, ["sharpen", name, "-o", "out.png"], bombs)
    assert_clean_failure(done, 1, f"{BOMBS[name][1]}")
    assert sorted(os.listdir(bombs)) == sorted(BOMBS)


@pytest.mark.parametrize("ext", [*OPENCV_FORMATS, ".gif", ".npy"])
def test_max_pixels_holds_for_every_format(tmp_path, convfilter_command, ext):
    pixels = np.full((40, 50, 3), 100, np.uint8)
    if ext == ".npy":
        np.save(tmp_path / "small.npy", pixels)
    elif ext == ".gif":
        PILImage.fromarray(pixels).save(tmp_path / "small.gif")
    else:
        channels, dtypes = OPENCV_FORMATS[ext]
        (tmp_path / f"small{ext}").write_bytes(encoded(ext, pixels[..., : channels[-1]].astype(dtypes[-1])))
    args = ["sharpen", f"small{ext}", "-o", "out.tif", "--max-pixels"]
    assert_clean_failure(
        run_command(convfilter_command, [*args, "100"], tmp_path), 1, "50×40 is 0.002 MP, over the limit of 0.0001 MP"
    )
    done = run_command(convfilter_command, [*args, "2000"], tmp_path)
    assert done.returncode == 0, done.stderr


def test_an_endless_input_is_not_read_whole(tmp_path, convfilter_command):
    """/dev/zero as a file and as standard input, and a PNG header followed by endless bytes:
    one line each, and the reading stops (the memory limit would stop a whole read)."""
    done = run_command(convfilter_command, ["sharpen", "/dev/zero", "-o", "out.png"], tmp_path)
    assert_clean_failure(done, 1, "input /dev/zero: not an image that can be decoded")
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run(
            capped([convfilter_command, "sharpen", "-", "-o", "out.png"], 4 << 30), stdin=zeros, cwd=tmp_path,
            capture_output=True, timeout=60,
        )  # fmt: skip
    assert_clean_failure(done, 1, "input <stdin>: not an image that can be decoded")
    png = encoded(".png", np.zeros((100, 100), np.uint8))
    done, sent = _endless_stdin(convfilter_command, png[:33], tmp_path)  # the signature and the header, then zeros
    assert_clean_failure(done, 1, "not read further")
    assert sent < 1 << 30
    assert not (tmp_path / "out.png").exists()
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (b"II*\x00\xf0\xff\xff\xff", "its TIFF header states no size"),  # a directory 4 GB away
        (b"II*\x00\x00\x00\x00\x04", "its TIFF header states no size"),  # 64 MiB away, then nothing
        (b"\xff\xd8\xff\xfe\x00\x02", "its JPEG header states no size"),  # no frame header, ever
    ],
)
def test_a_header_that_never_states_a_size_stops_the_reading(tmp_path, convfilter_command, head, fragment):
    done, sent = _endless_stdin(convfilter_command, head, tmp_path)
    assert_clean_failure(done, 1, fragment)
    assert sent < 200 << 20


def _endless_stdin(convfilter_command, head: bytes, cwd) -> tuple[subprocess.CompletedProcess, int]:
    """``sharpen - -o out.png`` fed ``head`` and then zeros until it stops reading (at most 2 GiB:
    a bound for the test itself); the finished run and how many bytes of zeros it took."""
    process = subprocess.Popen(
        capped([convfilter_command, "sharpen", "-", "-o", "out.png"], 4 << 30), stdin=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=cwd,
    )  # fmt: skip
    sent = [0]

    def feed():
        try:
            process.stdin.write(head)
            while sent[0] < 2 << 30:
                process.stdin.write(bytes(1 << 20))
                sent[0] += 1 << 20
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    stderr = process.stderr.read()
    process.wait(timeout=120)
    writer.join(timeout=120)
    return subprocess.CompletedProcess([], process.returncode, b"", stderr), sent[0]


def test_a_file_longer_than_its_header_allows_is_not_read(tmp_path, convfilter_command):
    png = encoded(".png", np.zeros((100, 100), np.uint8))
    with open(tmp_path / "huge.png", "wb") as sparse:  # 20 GB that take no disk space
        sparse.write(png)
        sparse.truncate(20 << 30)
    done = run_command(convfilter_command, ["sharpen", "huge.png", "-o", "out.png"], tmp_path)
    assert_clean_failure(done, 1, "input huge.png: holds more than")


def test_a_tiff_of_100000_pages_is_counted_at_once(tmp_path, convfilter_command):
    (tmp_path / "pages.tif").write_bytes(tiff_pages(100_000))
    done = run_command(convfilter_command, ["identity", "pages.tif", "-o", "out.png"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"pages.tif has 100000 frames: only the first is filtered" in done.stderr


def test_no_pillow_bomb_warning_between_its_limits():
    """Pillow warns from 89 MP and refuses from 179 MP; the size was checked already."""
    for side in (10000, 20000):
        header = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        rest = png_chunk(b"pHYs", struct.pack(">IIB", 3937, 3937, 1)) + png_chunk(b"IDAT", zlib.compress(b""))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert read_metadata(header + rest + png_chunk(b"IEND", b"")).dpi == pytest.approx((100, 100), abs=0.01)


def test_a_90_mp_image_with_metadata_gives_no_warning(tmp_path, convfilter_command):
    data = encoded(".png", np.zeros((9500, 9500), np.uint8))
    (tmp_path / "big.png").write_bytes(data[:33] + png_chunk(b"pHYs", struct.pack(">IIB", 3937, 3937, 1)) + data[33:])
    done = run_command(convfilter_command, ["identity", "big.png", "-o", "out.png", "--stride", "50", "-q"], tmp_path)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert PILImage.open(tmp_path / "out.png").info["dpi"] == pytest.approx((100, 100), abs=0.01)


def test_an_image_too_large_for_the_memory_there_is_one_line(tmp_path, convfilter_command):
    """128 MP of 16-bit RGBA (allowed by default) in 1.5 GB of address space: decoding cannot
    allocate, and says so in one line."""
    (tmp_path / "big.png").write_bytes(png_of_zeros(16000, 8000))
    done = subprocess.run(
        capped([convfilter_command, "sharpen", "big.png", "-o", "out.png"], 3 << 29), cwd=tmp_path,
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert_clean_failure(done, 1, "input big.png: not enough memory to filter it; lower --max-pixels")
    assert sorted(os.listdir(tmp_path)) == ["big.png"]


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int8, np.int16, np.uint32])
def test_tiffs_of_every_depth_are_filtered(tmp_path, convfilter_command, dtype):
    """Depths OpenCV's colour conversion does not take: R, G, B order all the same."""
    pixels = np.zeros((6, 7, 3), dtype)
    pixels[..., 0] = 100  # red, as Pillow and every viewer see it
    (tmp_path / "in.tif").write_bytes(encoded(".tiff", pixels[..., ::-1]))  # OpenCV writes B, G, R
    done = run_command(convfilter_command, ["identity", "in.tif", "-o", "out.png", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    out = np.asarray(PILImage.open(tmp_path / "out.png"))
    assert (out[..., 0] == 100).all() and (out[..., 1:] == 0).all()


def test_metadata_a_jpeg_cannot_hold_is_left_out_with_a_note(tmp_path, convfilter_command):
    image = PILImage.new("RGB", (40, 30), (10, 20, 30))
    exif = PILImage.Exif()
    exif[0x010E] = "x" * 100_000  # an image description of 100 kB: over one JPEG segment
    image.save(tmp_path / "exif.png", exif=exif.tobytes())
    image.save(tmp_path / "exif.webp", exif=exif.tobytes())
    image.save(tmp_path / "icc.tif", icc_profile=bytes(17 << 20))
    image.save(tmp_path / "small-icc.tif", icc_profile=bytes(1 << 20))
    for name, note in [("exif.png", "EXIF"), ("exif.webp", "EXIF"), ("icc.tif", "ICC profile")]:
        done = run_command(convfilter_command, ["identity", name, "-o", f"{name}.jpg"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"convfilter: note: {name}: the {note} " in done.stderr.decode()
        assert PILImage.open(tmp_path / f"{name}.jpg").size == (40, 30)
    done = run_command(convfilter_command, ["identity", "small-icc.tif", "-o", "small.jpg"], tmp_path)
    assert b"note" not in done.stderr
    assert PILImage.open(tmp_path / "small.jpg").info["icc_profile"] == bytes(1 << 20)
