"""A large TIFF encoded in bands on threads and joined: the same strips as one encode, read back
by OpenCV and by libtiff (through Pillow) as the same pixels; anything unexpected falls back to
one encode; through the command, a large TIFF keeps its metadata."""

from __future__ import annotations

import io
import subprocess

import cv2
import numpy as np
import pytest
from conftest import SAMPLES
from PIL import Image

from convfilter import tiffbands
from convfilter.tifftags import Layout


def _encode(part: np.ndarray) -> np.ndarray:
    return cv2.imencode(".tiff", part)[1]


def _strips(data) -> bytes:
    """Every strip of a TIFF's first directory, end to end, and its layout tags' values."""
    data = memoryview(data).cast("B")
    layout = Layout(data)
    entries, _ = layout.entries(data, layout.unpack("L", data, 4))
    values = {tag: tiffbands._values(layout, data, entry) for tag, entry in entries.items()}
    offsets, counts = (tiffbands._numbers(layout, *values[tag]) for tag in (273, 279))
    return b"".join(bytes(data[a : a + n]) for a, n in zip(offsets, counts, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_bands_joined_are_the_strips_of_one_encode(monkeypatch, seed):
    monkeypatch.setattr(tiffbands, "PARALLEL_BYTES", 0)
    rng = np.random.default_rng([77, seed])
    for _ in range(12):
        dtype = rng.choice([np.uint8, np.uint16, np.float32])
        channels = int(rng.choice([1, 3, 4]))
        shape = (int(rng.integers(2, 400)), int(rng.integers(1, 3000)), channels)
        pixels = (rng.random(shape) * (250 if dtype != np.uint16 else 65000)).astype(dtype)
        pixels[: shape[0] // 2] = pixels[: shape[0] // 2] // 7 * 7  # runs LZW can shorten
        threads = int(rng.integers(2, 6))
        joined = tiffbands.encode_in_bands(pixels, _encode, threads)
        rows = max(1, tiffbands.STRIP_BYTES // pixels[0].nbytes)
        if shape[0] < 2 * rows:
            assert joined is None  # fewer than two strips: nothing to share out
            continue
        assert joined is not None
        one = _encode(pixels)
        assert _strips(joined) == _strips(one)
        back = cv2.imdecode(np.frombuffer(joined, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back.reshape(shape), pixels)
        if dtype == np.uint8 or channels == 1:  # what Pillow opens: libtiff reads the strips
            seen = np.asarray(Image.open(io.BytesIO(joined)))
            want = pixels[..., 0] if channels == 1 else pixels[..., [2, 1, 0, 3][:channels]]
            np.testing.assert_array_equal(seen, want)


def test_small_images_and_odd_bands_are_encoded_in_one_piece(monkeypatch):
    pixels = np.zeros((600, 800, 3), np.uint8)
    assert tiffbands.encode_in_bands(pixels, _encode, 2) is None  # under PARALLEL_BYTES
    monkeypatch.setattr(tiffbands, "PARALLEL_BYTES", 0)
    assert tiffbands.encode_in_bands(pixels, _encode, 1) is None  # one core
    assert tiffbands.encode_in_bands(pixels, lambda part: np.frombuffer(b"not a tiff", np.uint8), 2) is None
    assert tiffbands.encode_in_bands(pixels, lambda part: cv2.imencode(".png", part)[1], 2) is None
    bands = iter([cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_RESUNIT])

    def unlike(part):  # a band written with another tag: not joined
        return cv2.imencode(".tiff", part, [next(bands), 1])[1]

    assert tiffbands.encode_in_bands(pixels, unlike, 2) is None


def test_a_large_tiff_through_the_command_keeps_pixels_and_metadata(convfilter_command, tmp_path):
    icc = Image.open(SAMPLES / "coffee-icc.jpeg").info["icc_profile"]
    photo = cv2.resize(cv2.imread(str(SAMPLES / "astronaut.png")), (3000, 2000))  # 18 MB: in bands
    Image.fromarray(photo[..., ::-1]).save(tmp_path / "in.tif", icc_profile=icc, dpi=(300, 300))
    done = subprocess.run(
        [convfilter_command, "identity", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    with Image.open(tmp_path / "out.tif") as out:
        assert out.info["icc_profile"] == icc and tuple(round(v) for v in out.info["dpi"]) == (300, 300)
        np.testing.assert_array_equal(np.asarray(out), photo[..., ::-1])
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out.tif")), photo)
