"""Reading and writing images: bytes in any path, R, G, B(, A) channel order, bit depth, and
atomic writes. OpenCV does the decoding and encoding."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError, UsageError
from .guards import Limits, check_size, is_truncated, truncated_error
from .metadata import Metadata, add_metadata, apply_orientation, count_frames, might_have_metadata, read_metadata
from .options import FORMATS

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"\x93NUMPY", "npy"),
    (b"GIF87a", "gif"),  # read only
    (b"GIF89a", "gif"),
)


@dataclass(frozen=True)
class Image:
    """Decoded pixels ``(H, W, C)`` in R, G, B(, A) order, upright, the format they came in,
    and the metadata to carry over to the output."""

    pixels: np.ndarray
    format: str
    metadata: Metadata = field(default_factory=Metadata)
    frames: int = 1  # an animated GIF or multi-page TIFF: only the first frame is read


def detect_format(data: bytes) -> str | None:
    """Name the image format of ``data`` from its first bytes, or ``None``.

    >>> detect_format(b"\\x89PNG\\r\\n\\x1a\\n....")
    'png'
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((fmt for signature, fmt in _SIGNATURES if data.startswith(signature)), None)


def read_bytes(path: str | Path) -> bytes:
    """Return the bytes of the input file at ``path``; a missing or unreadable file is an ``ImageError``."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"input {path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"input {path}: is a directory, not an image file") from None
    except OSError as error:
        raise ImageError(f"input {path}: cannot read ({error.strerror})") from None


def read_image(path: str | Path, limits: Limits | None = None) -> Image:
    """Read and decode the image file at ``path``."""
    return decode_image(read_bytes(path), str(path), limits)


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what the C codecs print on their own (libpng's and libjpeg's warnings), so that
    an error stays the one line convfilter prints."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def decode_image(data: bytes, name: str, limits: Limits | None = None) -> Image:
    """Decode image bytes; ``name`` is how errors refer to them. A cut-off file or one whose
    header claims more pixels than ``limits`` allow is refused before decoding."""
    if not data:
        raise ImageError(f"input {name}: is empty, no image data")
    limits = limits or Limits()
    fmt = detect_format(data)
    if fmt is not None and fmt != "npy":
        check_size(data, name, fmt, limits)
    if fmt == "npy":
        try:
            pixels = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise ImageError(f"input {name}: not a readable .npy array ({error})") from None
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3 or pixels.dtype.kind not in "biuf" or min(pixels.shape) < 1:
            raise ImageError(f"input {name}: a .npy image must be a non-empty (H, W, C) array of numbers")
        return Image(pixels, "npy")
    with quiet_native_stderr():
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    # OpenCV decodes some cut-off files (a JPEG's missing end turns grey) and not others
    truncated = fmt is not None and is_truncated(data, fmt)
    if truncated and not limits.allow_truncated:
        raise truncated_error(name, fmt)
    if pixels is None and truncated:
        pixels = _decode_truncated(data)
    if pixels is None:
        raise ImageError(f"input {name}: not an image that can be decoded (PNG, JPEG, WebP, BMP, TIFF, …)")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    elif pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)  # OpenCV holds B, G, R; kernels speak R, G, B
    elif pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    fmt = fmt or "png"
    meta = read_metadata(data) if might_have_metadata(data, fmt) else Metadata()
    frames = count_frames(data) if fmt in ("gif", "tiff") else 1
    # IMREAD_UNCHANGED keeps the pixels as stored: turn them upright here, once
    return Image(apply_orientation(pixels, meta.orientation), fmt, meta, frames)


def _decode_truncated(data: bytes) -> np.ndarray | None:
    """What Pillow can make of a cut-off file, as OpenCV would hold it (B, G, R order), or None."""
    from PIL import Image as PILImage
    from PIL import ImageFile

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            image.load()
            pixels = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    except (OSError, ValueError, SyntaxError):
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)


def pixel_dtype(input_dtype: np.dtype, fmt: str) -> np.dtype:
    """The dtype an output in format ``fmt`` is written with, for an input of ``input_dtype``."""
    if fmt == "npy" or (fmt == "tiff" and np.dtype(input_dtype).kind == "f"):
        return np.dtype(np.float32)  # raw or float images stay float: never clipped
    if input_dtype == np.uint16 and fmt in ("png", "tiff"):
        return np.dtype(np.uint16)
    return np.dtype(np.uint8)


def to_pixels(
    result: np.ndarray,
    dtype: np.dtype,
    range_policy: str,
    scale: float = 1.0,
    out: np.ndarray | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Turn a float result into pixels of ``dtype`` by ``range_policy``.

    ``clip`` rounds to nearest and saturates, as ``cv2.imwrite`` does with a float image; ``abs``
    takes the absolute value first; ``offset`` adds half the range so that 0 is mid-grey;
    ``normalize`` stretches the result's min..max to the full range. ``scale`` multiplies the
    result first (1/257 to write a 16-bit result as 8 bits). A float ``dtype`` is never clipped.
    With ``out``, the pixels are written there and ``result`` is used as scratch space. Unless
    ``finite`` (the result may hold NaN: the image did), NaN becomes 0 and infinities saturate.

    >>> to_pixels(np.array([-3.5, 0.5, 1.5, 300.0], np.float32), np.uint8, "clip").tolist()
    [0, 0, 2, 255]
    >>> to_pixels(np.array([np.nan, np.inf, -np.inf], np.float32), np.uint8, "offset", finite=False).tolist()
    [128, 255, 0]
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = result
    else:
        top = float(np.iinfo(dtype).max)
        values = result if out is not None else result.copy()
        if not finite:
            np.nan_to_num(values, copy=False, nan=0.0)
        if scale != 1:
            values *= np.float32(scale)
        if range_policy == "abs":
            np.abs(values, out=values)
        elif range_policy == "offset":
            values += np.float32((top + 1) / 2)
        elif range_policy == "normalize":
            low, high = float(values.min()), float(values.max())
            values -= np.float32(low)
            values *= np.float32(top / (high - low) if high > low else 0.0)
        np.rint(values, out=values)
        np.clip(values, 0, top, out=values)
    # a NaN that sums beyond float32's range made (inf - inf) has no pixel value: the cast is quiet
    with np.errstate(invalid="ignore"):
        if out is None:
            return values.astype(dtype)
        np.copyto(out, values, casting="unsafe")
    return out


def stream_format(input_format: str) -> str:
    """The format standard output gets by default: the input's, or PNG for one that is only read (GIF)."""
    return input_format if input_format in FORMATS.values() else "png"


def encode_image(
    pixels: np.ndarray, fmt: str, quality: int = 95, metadata: Metadata | None = None, compression: int | None = None
) -> bytes:
    """Encode ``(H, W, C)`` pixels in R, G, B(, A) order as ``fmt`` bytes, with ``metadata``
    (ICC profile, EXIF, DPI) where the format holds it."""
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, pixels, allow_pickle=False)
        return buffer.getvalue()
    channels = pixels.shape[2]
    if channels not in (1, 3, 4):
        raise UsageError(
            f"a result with {channels} channels cannot be written as {fmt.upper()}: images hold 1, 3 or 4 "
            "channels; write a .npy file instead"
        )
    bgr = pixels
    if channels == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif channels == 4:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    params = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif fmt == "png" and compression is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, compression]
    with quiet_native_stderr():
        ok, encoded = cv2.imencode("." + ("jpg" if fmt == "jpeg" else fmt), bgr, params)
    if not ok:
        raise ImageError(f"could not encode the result as {fmt.upper()}")
    return add_metadata(encoded.tobytes(), fmt, pixels, metadata or Metadata())


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    that ``path`` holds either its old content or all of the new one, never a part."""
    path = Path(path)
    # the temporary name adds 25 bytes to the output's: shorten its copy of the name so that any
    # name the file system takes (255 bytes) still leaves room
    stem = os.fsencode(path.name)[:200].decode(errors="ignore")
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{stem}.", suffix=".convfilter-tmp")
    except OSError as error:
        raise ImageError(f"output {path}: cannot write in {path.parent} ({error.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions of a new file
        os.replace(temp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(error, OSError):
            raise ImageError(f"output {path}: cannot write ({error.strerror})") from None
        raise
