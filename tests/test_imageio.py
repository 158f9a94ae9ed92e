"""Image reading and writing through the real codecs: channel order, formats, ranges, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import SAMPLES
from PIL import Image as PILImage

from convfilter import ImageError, UsageError
from convfilter.imageio import (
    decode_image,
    detect_format,
    encode_image,
    read_image,
    write_atomic,
)
from convfilter.outputs import output_format
from convfilter.pixels import to_pixels


def test_rgb_order_is_what_pillow_sees(tmp_path):
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = (255, 0, 0)  # red
    pixels[1, 2] = (0, 0, 255)  # blue
    PILImage.fromarray(pixels).save(tmp_path / "rgb.png")
    image = read_image(tmp_path / "rgb.png")
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.format == "png"


def test_samples_decode_with_their_channels():
    assert read_image(SAMPLES / "cat.jpeg").pixels.shape == (300, 451, 3)
    assert read_image(SAMPLES / "camera.png").pixels.shape == (512, 512, 1)
    logo = read_image(SAMPLES / "logo.png").pixels
    assert logo.shape == (500, 500, 4)
    np.testing.assert_array_equal(logo, np.asarray(PILImage.open(SAMPLES / "logo.png").convert("RGBA")))
    assert read_image(SAMPLES / "astronaut-16bit.png").pixels.dtype == np.uint16


@pytest.mark.parametrize("fmt", ["png", "bmp", "tiff", "webp", "jpeg"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_encode_round_trip(fmt, channels, rng):
    pixels = rng.integers(0, 256, (16, 20, channels), dtype=np.uint8)
    data = encode_image(pixels, fmt, quality=100)
    assert detect_format(data) == fmt
    back = decode_image(data, "x").pixels
    if fmt in ("png", "bmp", "tiff"):
        np.testing.assert_array_equal(back, pixels)
    else:
        # lossy; JPEG holds no alpha (RGBA comes back as RGB) and WebP no gray (it comes back as RGB)
        expected = {("jpeg", 4): 3, ("webp", 1): 3}.get((fmt, channels), channels)
        assert back.shape == (16, 20, expected)


def test_sixteen_bit_png_round_trip(rng):
    pixels = rng.integers(0, 65536, (8, 9, 3), dtype=np.uint16)
    np.testing.assert_array_equal(decode_image(encode_image(pixels, "png"), "x").pixels, pixels)


def test_clip_rounds_half_to_even_and_saturates_like_imwrite():
    import cv2

    values = np.array([[-3.5, 0.5, 1.5, 2.5, 254.5, 255.5, 300.0]], np.float32)
    ours = to_pixels(values, np.uint8, "clip")
    ok, encoded = cv2.imencode(".png", values)  # cv2.imwrite's own float → 8-bit conversion
    assert ok
    theirs = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.tolist() == [[0, 0, 2, 2, 254, 255, 255]]


def test_range_policies():
    values = np.array([-100.0, -1.0, 0.0, 50.0, 300.0], np.float32)
    assert to_pixels(values, np.uint8, "clip").tolist() == [0, 0, 0, 50, 255]
    assert to_pixels(values, np.uint8, "abs").tolist() == [100, 1, 0, 50, 255]
    assert to_pixels(values, np.uint8, "offset").tolist() == [28, 127, 128, 178, 255]
    assert to_pixels(values, np.uint8, "normalize").tolist() == [0, 63, 64, 96, 255]
    assert to_pixels(values, np.uint16, "offset").tolist() == [32668, 32767, 32768, 32818, 33068]
    assert to_pixels(values, np.float32, "clip").tolist() == values.tolist()  # floats are never clipped


def test_decode_errors():
    with pytest.raises(ImageError, match=r"input a\.png: is empty, no image data"):
        decode_image(b"", "a.png")
    with pytest.raises(ImageError, match=r"input a\.jpg: not an image that can be decoded"):
        decode_image(b"hello, this is text", "a.jpg")


def test_read_errors(tmp_path):
    with pytest.raises(ImageError, match=r"no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match=r"is a directory, not an image file"):
        read_image(tmp_path)


def test_output_format_by_extension():
    assert output_format("a/b.JPG") == "jpeg" and output_format("x.tif") == "tiff"
    with pytest.raises(UsageError, match=r"output x\.gif: unknown extension \.gif; use one of \.png"):
        output_format("x.gif")
    with pytest.raises(UsageError, match=r"unknown extension \(none\)"):
        output_format("noext")


def test_encode_refuses_channel_counts_images_cannot_hold():
    with pytest.raises(UsageError, match=r"a result with 2 channels cannot be written as PNG.*\.npy"):
        encode_image(np.zeros((4, 4, 2), np.uint8), "png")


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert sorted(os.listdir(tmp_path)) == ["out.png"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ImageError, match=r"output .*out\.png: cannot write \(No space left on device\)"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_write_into_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ImageError, match=r"cannot write in .*nowhere"):
        write_atomic(tmp_path / "nowhere" / "x.png", b"x")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_reading_begun_early_gives_the_image_in_opencvs_order_or_its_error(tmp_path):
    from convfilter.guards import Limits
    from convfilter.imageio import Reading, read_image

    image = Reading(SAMPLES / "coffee.png", Limits()).take()
    rgb = read_image(SAMPLES / "coffee.png")
    assert image.bgr and not rgb.bgr
    np.testing.assert_array_equal(image.pixels[..., ::-1], rgb.pixels)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    reading = Reading(tmp_path / "bad.png", Limits())
    with pytest.raises(ImageError, match=r"bad\.png"):
        reading.take()
    with pytest.raises(ImageError, match=r"600×400 is 0\.24 MP, over the limit of 0\.0001 MP"):
        Reading(SAMPLES / "coffee.png", Limits(max_pixels=100)).take()


def test_a_reading_whose_wait_a_signal_cut_short_is_still_waited_for(monkeypatch):
    # Python 3.11's Thread.join, interrupted by a signal, takes the thread for ended: the error
    # printed next would go to the stderr that the decoder still silences
    import signal
    import threading
    from pathlib import Path

    from convfilter import imageio
    from convfilter.guards import Limits

    release = threading.Event()
    monkeypatch.setattr(imageio, "read_image", lambda path, limits, bgr: release.wait(60) and "image")
    reading = imageio.Reading(Path("slow.png"), Limits())

    class Stop(Exception):
        pass

    def stop(*_):
        raise Stop

    previous = signal.signal(signal.SIGALRM, stop)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Stop):
            reading.take()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    threading.Timer(0.05, release.set).start()
    reading.wait()
    assert release.is_set()  # the wait ended only when the reading did
    assert reading.take() == "image"
