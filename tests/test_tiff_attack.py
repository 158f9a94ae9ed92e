"""Hostile and unusual TIFF metadata through the installed command: every input gives a correct
output (a TIFF that libtiff, through OpenCV, and tifffile both read as the pixels it holds, its
metadata carried or left out with a note) or one clear line — never an unexpected error."""

from __future__ import annotations

import logging
import struct

import cv2
import numpy as np
import pytest
import tifffile
from hostile_files import encoded, exif_tiff, jpeg_with_exif, tiff_with_exif
from PIL import Image as PILImage
from test_hardening import run_command

SHORT = lambda *v: struct.pack(f"<{len(v)}H", *v)  # noqa: E731
LONG = lambda *v: struct.pack(f"<{len(v)}I", *v)  # noqa: E731
MAKE = (0x010F, 2, 6, b"Maker\0")


def _run(convfilter_command, tmp_path, *args):
    return run_command(convfilter_command, list(args), tmp_path)


def _pixels(seed: int = 7, shape=(3, 5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _assert_written(done) -> None:
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert "unexpected" not in stderr and "Traceback" not in stderr, stderr


def _assert_tiff_reads_as(path, expected_bgr: np.ndarray) -> None:
    """libtiff (OpenCV) reads the pixels, and tifffile sees one page and one series of their shape."""
    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert got is not None, "libtiff (through OpenCV) cannot read the output"
    np.testing.assert_array_equal(got, expected_bgr)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].shape == expected_bgr.shape
        assert tif.series[0].shape == expected_bgr.shape


def _directory(data: bytes, at: int) -> dict[int, tuple[int, int, int]] | None:
    """The entries (type, count, value field) of a little-endian classic directory at ``at``, or
    None where none can be: past the end, or entries of no TIFF type."""
    if at + 2 > len(data):
        return None
    count = struct.unpack_from("<H", data, at)[0]
    if count == 0 or at + 2 + 12 * count + 4 > len(data):
        return None
    entries = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", data, at + 2 + 12 * i)
        if kind not in (*range(1, 14), 16, 17, 18):
            return None
        entries[tag] = (kind, n, value)
    return entries


def _assert_sub_directories_are_real(path) -> None:
    """Every directory pointer of the output (SubIFDs, EXIF, GPS, interoperability, at any depth)
    leads to a directory that is there, none of them into the pixels or elsewhere."""
    data = path.read_bytes()
    assert data[:4] == b"II*\0"
    first = _directory(data, struct.unpack_from("<I", data, 4)[0])

    def values(tag: int) -> list[int]:
        _, count, value = first[tag]
        return [value] if count == 1 else list(struct.unpack_from(f"<{count}I", data, value))

    strips = list(zip(values(273), values(279), strict=True))
    pending, seen = [("IFD0", struct.unpack_from("<I", data, 4)[0])], set()
    while pending:
        where, at = pending.pop()
        entries = _directory(data, at)
        assert entries is not None, f"{where} points at offset {at}, where no directory is"
        assert not any(start <= at < start + size for start, size in strips), f"{where} points into the pixels ({at})"
        seen.add(at)
        for tag in (330, 0x8769, 0x8825, 0xA005):
            if tag in entries:
                _, n, value = entries[tag]
                targets = [value] if n == 1 else list(struct.unpack_from(f"<{n}I", data, value))
                pending += [(f"{where}/{tag:#x}", t) for t in targets if t not in seen]


# 1. a resolution in centimetres whose value is text or bytes: Python multiplies the sequence
@pytest.mark.parametrize("kind", ["ascii", "byte", "undefined"])
@pytest.mark.parametrize("ext", ["tif", "png"])
def test_a_centimetre_resolution_that_is_no_number_is_dropped_not_fatal(tmp_path, convfilter_command, kind, ext):
    value = {"ascii": (2, 4, b"300\0"), "byte": (1, 1, b"\x64"), "undefined": (7, 3, b"300")}[kind]
    entries = [MAKE, (282, *value), (283, *value), (296, 3, 1, SHORT(3))]  # ResolutionUnit 3: centimetres
    (tmp_path / "in.tif").write_bytes(tiff_with_exif(_pixels(), entries, {}))
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", f"out.{ext}")
    _assert_written(done)  # now: "convfilter: error: unexpected TypeError: can't multiply sequence …"


# 2. tags that change how libtiff and tifffile lay out the pixels, carried from EXIF into a TIFF
@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (32995, SHORT(1)),  # Matteing (old ExtraSamples): libtiff counts an alpha sample that is not there
        (32996, SHORT(3)),  # DataType (old SampleFormat): libtiff reads the bytes as floats
        (32997, LONG(4)),  # ImageDepth: tifffile expects four planes of strips
    ],
    ids=["Matteing", "DataType", "ImageDepth"],
)
@pytest.mark.parametrize("source", ["jpg", "png"])
def test_pixel_layout_tags_from_exif_do_not_reach_a_tiff(tmp_path, convfilter_command, tag, value, source):
    payload = exif_tiff([MAKE, (tag, 3 if len(value) == 2 else 4, 1, value)])
    if source == "jpg":
        (tmp_path / "in.jpg").write_bytes(jpeg_with_exif(payload))
    else:
        PILImage.fromarray(_pixels()).save(tmp_path / "in.png", exif=payload)
    done = _run(convfilter_command, tmp_path, "identity", f"in.{source}", "-o", "out.tif")
    _assert_written(done)
    _assert_tiff_reads_as(tmp_path / "out.tif", cv2.imread(str(tmp_path / f"in.{source}"), cv2.IMREAD_UNCHANGED))
    again = _run(convfilter_command, tmp_path, "identity", "out.tif", "-o", "again.png", "-q")
    assert again.returncode == 0, again.stderr  # convfilter reads its own output back


# 3. directory pointers copied as plain numbers: offsets into the input, garbage in the output
def _pyramid(path) -> None:
    pixels = _pixels(shape=(6, 8, 3))
    with tifffile.TiffWriter(path) as tif:  # a pyramid: the reduced level in a sub-directory of the first
        tif.write(pixels, photometric="rgb", subifds=1, extratags=[(0x010F, "s", 0, "Maker", True)])
        tif.write(pixels[::2, ::2], photometric="rgb", subfiletype=1)


def _interop_in_first_directory(path) -> None:
    # an EXIF whose first directory (not its camera directory) points at an interoperability one
    make_at, interop_at = 8 + 2 + 2 * 12 + 4, 8 + 2 + 2 * 12 + 4 + 6
    payload = b"II*\0" + LONG(8) + SHORT(2)
    payload += struct.pack("<HHII", 0x010F, 2, 6, make_at) + struct.pack("<HHII", 0xA005, 4, 1, interop_at) + LONG(0)
    payload += b"Maker\0" + SHORT(1) + struct.pack("<HHI", 1, 2, 4) + b"R98\0" + LONG(0)
    path.write_bytes(jpeg_with_exif(payload))


def _exif_pointing_at_itself(path) -> None:
    # the camera directory holds a pointer back to itself (the loop Pillow does not follow)
    entries = [(0x829A, 5, 1, LONG(1, 250)), (0x8769, 4, 1, LONG(0))]
    tiff = tiff_with_exif(_pixels(shape=(16, 16, 3)), [MAKE], {0x8769: entries})
    ifd0 = struct.unpack_from("<I", tiff, 4)[0]
    count = struct.unpack_from("<H", tiff, ifd0)[0]
    for i in range(count):
        tag, _, _, value = struct.unpack_from("<HHII", tiff, ifd0 + 2 + 12 * i)
        if tag == 0x8769:
            exif_at = value
    tiff = tiff.replace(struct.pack("<HHII", 0x8769, 4, 1, 0), struct.pack("<HHII", 0x8769, 4, 1, exif_at), 1)
    path.write_bytes(tiff)


@pytest.mark.parametrize(
    ("name", "make"),
    [("pyramid.tif", _pyramid), ("interop.jpg", _interop_in_first_directory), ("loop.tif", _exif_pointing_at_itself)],
    ids=["SubIFDs-of-a-pyramid", "interop-in-IFD0", "exif-pointing-at-itself"],
)
def test_directory_pointers_of_the_output_lead_to_directories(tmp_path, convfilter_command, name, make):
    make(tmp_path / name)
    done = _run(convfilter_command, tmp_path, "identity", name, "-o", "out.tif")
    _assert_written(done)
    _assert_sub_directories_are_real(tmp_path / "out.tif")
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        if 330 in page.tags:  # the sub-directories a SubIFDs tag names are read as pages
            assert all(sub.shape for sub in page.pages)


def test_an_exif_pointer_to_the_first_directory_brings_no_layout_tags(tmp_path, convfilter_command):
    """The camera directory pointer leads back to IFD0: its ImageWidth, StripOffsets… must not
    reach the output's camera directory."""
    payload = exif_tiff([MAKE, (256, 4, 1, LONG(30000)), (273, 4, 1, LONG(12345)), (279, 4, 1, LONG(9999)),
                         (0x8769, 4, 1, LONG(8))])  # fmt: skip
    (tmp_path / "in.jpg").write_bytes(jpeg_with_exif(payload))
    done = _run(convfilter_command, tmp_path, "identity", "in.jpg", "-o", "out.tif")
    _assert_written(done)
    with PILImage.open(tmp_path / "out.tif") as out:
        camera = out.getexif().get_ifd(0x8769)
    assert not {256, 257, 273, 279} & set(camera), camera


# 4. a little-endian BigTIFF's EXIF is written back as a BigTIFF structure that no reader parses
@pytest.mark.parametrize("ext", ["jpg", "png", "webp"])
def test_a_bigtiff_input_gives_exif_that_reads(tmp_path, convfilter_command, ext):
    tifffile.imwrite(
        tmp_path / "in.tif", _pixels(shape=(6, 8, 3)), photometric="rgb", bigtiff=True,
        extratags=[(0x010F, "s", 0, "Maker", True)],
    )  # fmt: skip
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", f"out.{ext}")
    _assert_written(done)
    with PILImage.open(tmp_path / f"out.{ext}") as out:
        exif = out.getexif()  # now: struct.error, "unpack requires a buffer of 8 bytes"
    assert exif.get(0x010F) == "Maker" or b"note" in done.stderr, done.stderr


# 5. a TIFF that states no resolution: the output claims 1 dot per inch
@pytest.mark.parametrize("ext", ["tif", "png", "jpg"])
def test_a_tiff_without_a_resolution_gives_an_output_without_one(tmp_path, convfilter_command, ext):
    (tmp_path / "in.tif").write_bytes(encoded(".tif", _pixels()))  # OpenCV writes no resolution tags
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", f"out.{ext}", "-q")
    _assert_written(done)
    if ext == "tif":
        with tifffile.TiffFile(tmp_path / "out.tif") as tif:
            assert 282 not in tif.pages[0].tags, tif.pages[0].tags[282].value
    elif ext == "png":
        assert b"pHYs" not in (tmp_path / "out.png").read_bytes()
    else:
        with PILImage.open(tmp_path / "out.jpg") as out:
            assert out.info.get("jfif_unit", 0) == 0, (out.info.get("jfif_unit"), out.info.get("jfif_density"))


# 6. an ImageDescription that tifffile reads as the file's shape, carried into a file of another shape
def test_an_imagej_stack_gives_a_tiff_tifffile_reads_as_one_page(tmp_path, convfilter_command):
    stack = np.stack([_pixels(seed, (6, 8, 1))[..., 0] for seed in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True)
    done = _run(convfilter_command, tmp_path, "identity", "stack.tif", "-o", "out.tif")
    _assert_written(done)
    _assert_tiff_reads_as(tmp_path / "out.tif", stack[0])  # now: tifffile's series is (3, 6, 8)


def test_a_tifffile_shape_description_does_not_outlive_a_stride(tmp_path, convfilter_command, caplog):
    tifffile.imwrite(tmp_path / "in.tif", _pixels(shape=(6, 8, 3)), photometric="rgb")  # '{"shape": [6, 8, 3]}'
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", "out.tif", "--stride", "2", "-q")
    _assert_written(done)
    with caplog.at_level(logging.WARNING, logger="tifffile"), tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.series[0].shape == tif.pages[0].shape == (3, 4, 3)
    assert not [r.message for r in caplog.records if "does not match" in r.message]


# 7. an EXIF with one tag Pillow cannot write back is left out whole, and nothing says so
@pytest.mark.parametrize(
    ("case", "entry"),
    [
        ("DateTime-as-RATIONAL", (306, 5, 1, LONG(1, 3))),
        ("XResolution-negative-SRATIONAL", (282, 10, 1, struct.pack("<ii", -300, 1))),
        ("a-LONG8-tag", (50000, 16, 1, struct.pack("<Q", 1 << 40))),
    ],
)
@pytest.mark.parametrize("ext", ["tif", "jpg"])
def test_exif_left_out_is_said(tmp_path, convfilter_command, case, entry, ext):
    (tmp_path / "in.jpg").write_bytes(jpeg_with_exif(exif_tiff([MAKE, entry])))
    done = _run(convfilter_command, tmp_path, "identity", "in.jpg", "-o", f"out.{ext}")
    _assert_written(done)
    with PILImage.open(tmp_path / f"out.{ext}") as out:
        kept = out.getexif().get(0x010F) == "Maker"
    assert kept or b"convfilter: note:" in done.stderr, done.stderr


# 8. a ResolutionUnit that is no unit (0, 7) is carried as it is: libtiff reports an error reading it
@pytest.mark.parametrize("unit", [0, 7])
def test_the_output_holds_no_invalid_resolution_unit(tmp_path, convfilter_command, unit):
    entries = [MAKE, (282, 5, 1, LONG(300, 1)), (283, 5, 1, LONG(300, 1)), (296, 3, 1, SHORT(unit))]
    (tmp_path / "in.tif").write_bytes(tiff_with_exif(_pixels(), entries, {}))
    done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", "out.tif", "-q")
    _assert_written(done)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        tags = tif.pages[0].tags
        assert 296 not in tags or tags[296].value in (1, 2, 3), tags[296].value


# what held, kept so that it keeps holding
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_big_endian_camera_jpeg_keeps_its_gps_in_a_tiff(tmp_path, convfilter_command, order):
    exif = PILImage.Exif()
    exif[0x010F] = "Maker"
    exif.get_ifd(0x8825)[2] = (52.0, 12.0, 30.0)
    exif.get_ifd(0x8769)[0x829A] = (1, 250)
    payload = exif.tobytes()[6:]
    if order == ">":  # the same EXIF laid out big-endian
        directory = PILImage.Exif()
        directory.load(b"Exif\0\0" + payload)
        directory.endian = ">"
        payload = directory.tobytes()[6:]
        assert payload[:2] == b"MM"
    (tmp_path / "in.jpg").write_bytes(jpeg_with_exif(payload))
    done = _run(convfilter_command, tmp_path, "identity", "in.jpg", "-o", "out.tif", "-q")
    _assert_written(done)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        tags = tif.pages[0].tags
        assert tags["Make"].value == "Maker" and tags["GPSTag"].value["GPSLatitude"] == (52, 1, 12, 1, 30, 1)
    _assert_sub_directories_are_real(tmp_path / "out.tif")
    _assert_tiff_reads_as(tmp_path / "out.tif", cv2.imread(str(tmp_path / "in.jpg"), cv2.IMREAD_UNCHANGED))


def test_a_large_icc_profile_reaches_every_output(tmp_path, convfilter_command):
    profile = np.random.default_rng(3).integers(0, 256, 20 << 20, dtype=np.uint8).tobytes()
    (tmp_path / "in.tif").write_bytes(tiff_with_exif(_pixels(), [MAKE, (34675, 7, len(profile), profile)], {}))
    for ext in ("tif", "webp", "jpg"):
        done = _run(convfilter_command, tmp_path, "identity", "in.tif", "-o", f"out.{ext}")
        _assert_written(done)
        with PILImage.open(tmp_path / f"out.{ext}") as out:
            out.load()
            if ext == "jpg":  # over the 255 segments a JPEG holds: left out, and said
                assert "icc_profile" not in out.info and b"is over the 16,707,345 a JPEG holds" in done.stderr
            else:
                assert out.info["icc_profile"] == profile and out.getexif()[0x010F] == "Maker"
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert bytes(tif.pages[0].tags["InterColorProfile"].value) == profile
    assert not list(tmp_path.glob(".*.convfilter-tmp"))
