"""Decoding through a file in memory (``cv2.imread`` into the NumPy array it returns) gives
exactly what ``cv2.imdecode`` gives, for every format, depth and channel count, whole or cut
off, and holds the image once rather than twice."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from convfilter import decoding
from convfilter.decoding import opencv_decode
from convfilter.headers import detect_format

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _imdecode(data: bytes):
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    return pixels


def _files(rng: np.random.Generator) -> dict[str, bytes]:
    """Files of every format convfilter reads, at random sizes and values, and the samples."""
    files = {path.name: path.read_bytes() for path in SAMPLES.glob("*.*") if path.suffix != ".md"}

    def image(channels: int, dtype=np.uint8) -> np.ndarray:
        shape = (int(rng.integers(1, 90)), int(rng.integers(1, 90)), channels)
        if np.dtype(dtype).kind == "f":
            return rng.standard_normal(shape).astype(dtype)
        return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)

    for ext, depths, channel_counts, params in (
        (".png", (np.uint8, np.uint16), (1, 3, 4), []),
        (".jpg", (np.uint8,), (1, 3), [cv2.IMWRITE_JPEG_QUALITY, 90]),
        (".jpg", (np.uint8,), (3,), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".webp", (np.uint8,), (3, 4), [cv2.IMWRITE_WEBP_QUALITY, 101]),
        (".webp", (np.uint8,), (3,), [cv2.IMWRITE_WEBP_QUALITY, 60]),
        (".bmp", (np.uint8,), (1, 3, 4), []),
        (".tiff", (np.uint8, np.uint16, np.float32), (1, 3, 4), []),
        (".pgm", (np.uint8, np.uint16), (1,), []),
        (".ppm", (np.uint8,), (3,), []),
        (".pfm", (np.float32,), (1, 3), []),
    ):
        for dtype in depths:
            for channels in channel_counts:
                ok, encoded = cv2.imencode(ext, image(channels, dtype), params)
                assert ok
                files[f"{ext[1:]}-{np.dtype(dtype).name}-{channels}-{len(files)}"] = encoded.tobytes()
    # animated and multi-page files: the first frame is what is read
    frames = [PILImage.fromarray(image(3)[:20, :20]) for _ in range(3)]
    frames = [frame.resize((20, 20)) for frame in frames]
    for fmt, options in (("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})):
        stream = io.BytesIO()
        frames[0].save(stream, fmt, save_all=True, append_images=frames[1:], **options)
        files[f"{fmt.lower()}-frames"] = stream.getvalue()
    return files


def test_a_memory_file_decodes_every_format_as_imdecode_does(rng):
    files = _files(rng)
    assert {detect_format(data) for data in files.values()} >= {"png", "jpeg", "webp", "bmp", "tiff", "gif", "pnm"}
    for name, data in files.items():
        got, expected = opencv_decode(data, detect_format(data)), _imdecode(data)
        assert expected is not None, name
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_cut_off_files_get_imdecodes_verdict(rng):
    # OpenCV's file reader makes up the end of a cut-off JPEG that its buffer reader refuses
    files = _files(rng)
    for name, data in files.items():
        fmt = detect_format(data)
        for cut in rng.integers(1, len(data), 12):
            part = data[:cut]
            got, expected = opencv_decode(part, fmt), _imdecode(part)
            if expected is None:
                assert got is None, f"{name} cut at {cut}"
            else:
                np.testing.assert_array_equal(got, expected, err_msg=f"{name} cut at {cut}")


def test_a_jpeg_cut_right_after_its_thumbnail_is_refused_as_before(tmp_path):
    # the thumbnail's end marker ends the file: no image data follows it
    thumbnail = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    photo = cv2.imencode(".jpg", np.full((64, 64, 3), 30, np.uint8))[1].tobytes()
    app1 = b"\xff\xe1" + (len(thumbnail) + 2 + 6).to_bytes(2, "big") + b"Exif\0\0" + thumbnail
    data = photo[:2] + app1 + photo[2:]
    whole = opencv_decode(data, "jpeg")
    assert whole is not None and whole.shape == (64, 64, 3)
    cut = data[: 2 + len(app1)]
    assert cut.endswith(b"\xff\xd9")
    assert opencv_decode(cut, "jpeg") is None and _imdecode(cut) is None


def test_without_memory_files_imdecode_decodes(monkeypatch):
    data = (SAMPLES / "coffee.png").read_bytes()
    expected = _imdecode(data)
    monkeypatch.delattr(decoding.os, "memfd_create")
    np.testing.assert_array_equal(opencv_decode(data, "png"), expected)


def test_no_descriptor_is_left_open(rng):
    data = (SAMPLES / "cat.jpeg").read_bytes()
    before = len(list(Path("/proc/self/fd").iterdir()))
    for _ in range(20):
        opencv_decode(data, "jpeg")
        opencv_decode(b"\x89PNG\r\n\x1a\n" + bytes(40), "png")  # refused by both readers
    assert len(list(Path("/proc/self/fd").iterdir())) == before


_PEAK = """
import json, sys
from convfilter import decoding, imageio
from convfilter.decoding import opencv_decode

def memory(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

data = imageio.read_bytes(sys.argv[1])
before = memory("VmRSS:")
image = imageio.decode_image(data, "photo", bgr=True)
print(json.dumps({"grew": memory("VmHWM:") - before, "image": image.pixels.nbytes}))
"""


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_decoding_holds_the_image_once(tmp_path, suffix):
    # imdecode's binding returns a copy of OpenCV's buffer: twice the image at the peak
    rows = np.linspace(0, 255, 3000, dtype=np.uint8)[:, None, None]
    photo = np.broadcast_to(rows, (3000, 4000, 3)).copy()
    path = tmp_path / f"photo{suffix}"
    cv2.imwrite(str(path), photo)
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
    measured = json.loads(done.stdout)
    assert measured["image"] == photo.nbytes
    assert measured["grew"] < 1.4 * photo.nbytes, measured
