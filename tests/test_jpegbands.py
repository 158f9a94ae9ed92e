"""A large JPEG encoded in bands on threads and joined: decoded by OpenCV and by Pillow, the
pixels of one encode of the whole image, for random sizes, qualities and channel counts; a band
that is not as expected gives the one-piece encode."""

from __future__ import annotations

import io
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from convfilter import jpegbands
from convfilter.imageio import encode_pieces


def _encode(quality: int):
    def encode(part: np.ndarray, extra: list[int]) -> np.ndarray:
        ok, encoded = cv2.imencode(".jpg", part, [cv2.IMWRITE_JPEG_QUALITY, quality, *extra])
        assert ok
        return encoded

    return encode


def _photo(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    """Smooth gradients with noise: blocks that differ, as in a photo."""
    y, x = np.mgrid[0:height, 0:width]
    base = (np.sin(y / 37.0)[..., None] * 90 + np.cos(x / 23.0)[..., None] * 60 + 128) * np.ones(channels)
    noise = rng.normal(0, 12, (height, width, channels))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_joined_bands_decode_to_the_pixels_of_one_encode(rng, monkeypatch):
    monkeypatch.setattr(jpegbands, "PARALLEL_BYTES", 0)
    for _ in range(25):
        height = int(rng.integers(256, 1100))
        width = int(rng.integers(1, 700))
        channels = int(rng.choice([1, 3]))
        quality = int(rng.integers(1, 101))
        threads = int(rng.integers(2, 6))
        pixels = _photo(rng, height, width, channels)
        joined = jpegbands.encode_in_bands(pixels, _encode(quality), threads)
        assert joined is not None, (height, width, channels, threads)
        whole = _encode(quality)(pixels, []).tobytes()
        got = cv2.imdecode(np.frombuffer(joined, np.uint8), cv2.IMREAD_UNCHANGED)
        expected = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(got, expected, err_msg=f"{height}×{width}×{channels} q{quality} {threads}")
        with PILImage.open(io.BytesIO(joined)) as a, PILImage.open(io.BytesIO(whole)) as b:
            assert a.size == (width, height)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_libvips_reads_a_joined_file_as_one_encode(rng, tmp_path, monkeypatch):
    vips = shutil.which("vips")
    if vips is None:  # libvips is a peer for the benchmarks; where it is installed, it reads these too
        return
    monkeypatch.setattr(jpegbands, "PARALLEL_BYTES", 0)
    pixels = _photo(rng, 700, 333, 3)
    joined = jpegbands.encode_in_bands(pixels, _encode(90), 3)
    (tmp_path / "joined.jpg").write_bytes(joined)
    subprocess.run([vips, "copy", tmp_path / "joined.jpg", tmp_path / "joined.png"], check=True)
    expected = cv2.imdecode(np.frombuffer(_encode(90)(pixels, []).tobytes(), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "joined.png")), expected)


def test_bands_not_as_expected_are_not_joined(rng):
    pixels = _photo(rng, 512, 100, 3)
    halves = [pixels[:256], pixels[256:]]
    restart = [cv2.IMWRITE_JPEG_RST_INTERVAL, 7]
    good = [_encode(80)(half, restart) for half in halves]
    assert jpegbands.join(good, [256, 256], 7) is not None
    other_tables = [good[0], _encode(81)(halves[1], restart)]
    no_restarts = [_encode(80)(half, []) for half in halves]
    progressive = [_encode(80)(half, [*restart, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]) for half in halves]
    every_other_row = [_encode(80)(half, [cv2.IMWRITE_JPEG_RST_INTERVAL, 14]) for half in halves]
    mid_cycle = [_encode(80)(part, restart) for part in (pixels[:240], pixels[240:])]
    cut = [good[0], good[1][:-100]]
    for parts, heights, name in (
        (other_tables, [256, 256], "other tables"),
        (no_restarts, [256, 256], "no restarts"),
        (progressive, [256, 256], "progressive"),
        (every_other_row, [256, 256], "a restart every other row"),
        (mid_cycle, [240, 272], "a band ending mid-cycle"),
        (cut, [256, 256], "a cut-off band"),
        (good, [256, 255], "heights that are not the bands'"),
    ):
        assert jpegbands.join(parts, heights, 7) is None, name


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_an_image_to_write_as_jpeg_is_banded_only_when_large(channels, rng):
    small = _photo(rng, 300, 200, channels)
    encoded = bytes(encode_pieces(small, "jpeg", 90, bgr=True))
    assert b"\xff\xdd" not in encoded[: encoded.index(b"\xff\xda")]  # no restarts: one encode
    large = _photo(rng, jpegbands.PARALLEL_BYTES // (3000 * channels) + 300, 3000, channels)
    encoded = bytes(encode_pieces(large, "jpeg", 90, bgr=True))
    head = encoded[: encoded.index(b"\xff\xda")]
    assert (b"\xff\xdd" in head) == (channels != 4)  # OpenCV writes 4 channels as 3: one encode
    expected = cv2.imdecode(cv2.imencode(".jpg", large, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_UNCHANGED)
    got = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got, expected)


def test_bands_whose_threads_cannot_start_are_one_encode(rng, monkeypatch):
    # under an address-space limit a thread's stack may not fit: the image is encoded in one piece
    from concurrent.futures import ThreadPoolExecutor

    def refuse(self, *args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(jpegbands, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(ThreadPoolExecutor, "submit", refuse)
    pixels = _photo(rng, 600, 300, 3)
    assert jpegbands.encode_in_bands(pixels, _encode(90)) is None
    encoded = bytes(encode_pieces(pixels, "jpeg", 90, bgr=True))
    expected = cv2.imdecode(cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED), expected)
