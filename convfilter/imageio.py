"""Reading and writing images: bytes in any path, R, G, B(, A) channel order, bit depth, and
atomic writes. OpenCV does the decoding and encoding."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from .decoding import opencv_decode
from .errors import ImageError, UsageError
from .guards import Limits, byte_limit, check_size, is_truncated, truncated_error
from .headers import count_frames, detect_format
from .jpegbands import encode_in_bands as jpeg_in_bands
from .metadata import (
    Metadata,
    add_metadata,
    apply_orientation,
    might_have_metadata,
    pillow_without_size_limit,
    read_metadata,
)
from .options import FORMATS, LARGEST_SIDE
from .pixels import OPENCV_DEPTHS, opencv_writes
from .tiffbands import encode_in_bands

ORIENTED_BY_DECODER = ("tiff",)  # formats whose pixels OpenCV returns with the EXIF orientation applied


@dataclass(frozen=True)
class Image:
    """Decoded pixels ``(H, W, C)`` in R, G, B(, A) order, upright, the format they came in,
    and the metadata to carry over to the output. With ``bgr``, the pixels are in OpenCV's
    B, G, R(, A) order, as decoded (``to_rgb`` turns them)."""

    pixels: np.ndarray
    format: str
    metadata: Metadata = field(default_factory=Metadata)
    frames: int = 1  # an animated GIF or multi-page TIFF: only the first frame is read
    bgr: bool = False


def to_rgb(image: Image) -> Image:
    """``image`` with its pixels in R, G, B(, A) order: turned in place if they are in OpenCV's
    (the ``image`` passed in is stale afterwards)."""
    if not image.bgr:
        return image
    return replace(image, pixels=swap_red_blue(image.pixels, in_place=True), bgr=False)


class Reading:
    """The image file at ``path`` read and decoded in OpenCV's channel order on a thread of its
    own (the decoder lets go of the GIL) while the caller gets on with other work; ``take()``
    waits for it and raises what reading raised. While it runs, standard error is silenced (see
    ``quiet_native_stderr``): the caller waits for it before writing there."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self._outcome: list = []
        # an Event, not Thread.join: Python 3.11's join, interrupted by a signal, marks the thread
        # as ended while it still runs, so that a second join returns at once
        self._ended = threading.Event()
        threading.Thread(target=self._read, args=(limits,), name="convfilter-read", daemon=True).start()

    def _read(self, limits: Limits) -> None:
        try:
            self._outcome.append(read_image(self.path, limits, bgr=True))
        except BaseException as error:  # handed over by take(), without the frames that hold the bytes
            self._outcome.append(error.with_traceback(None))
        finally:
            self._ended.set()

    def wait(self) -> None:
        """Wait until the reading has ended (the decoder silences standard error while it runs)."""
        self._ended.wait()

    def take(self) -> Image:
        """The decoded image (held no longer here), or the error reading it raised."""
        self._ended.wait()
        outcome = self._outcome.pop()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def read_bytes(path: str | Path | None, limits: Limits | None = None) -> bytes:
    """Return the bytes of the input file at ``path`` (standard input for None), reading no
    more than ``guards.byte_limit`` allows; a missing or unreadable file is an ``ImageError``."""
    name = "<stdin>" if path is None else str(path)
    limits = limits or Limits()
    if path is None and (sys.stdin is None or sys.stdin.closed):
        raise ImageError(f"input {name}: cannot read (standard input is closed)")
    try:
        if path is None:
            return _read_limited(sys.stdin.buffer, name, limits, None)
        with open(path, "rb") as stream:
            return _read_limited(stream, name, limits, os.fstat(stream.fileno()))
    except FileNotFoundError:
        raise ImageError(f"input {name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"input {name}: is a directory, not an image file") from None
    except OSError as error:
        raise ImageError(f"input {name}: cannot read ({error.strerror})") from None
    except MemoryError:
        raise ImageError(f"input {name}: not enough memory to read it") from None


_CHUNK = 1 << 20


def _read_limited(stream, name: str, limits: Limits, status: os.stat_result | None) -> bytearray:
    data = bytearray()
    limit = byte_limit(data, limits)
    while len(data) <= limit:
        chunk = stream.read(min(max(_CHUNK, len(data) // 4), limit + 1 - len(data)))
        if not chunk:
            return data
        data += chunk
        limit = byte_limit(data, limits)
        if status is not None and stat.S_ISREG(status.st_mode) and status.st_size > limit > 0:
            break  # a file longer than its header allows: refused without reading the rest
    if limit == 0:
        return data  # not an image, or over the pixel limit: decoding refuses it from the head
    raise ImageError(
        f"input {name}: holds more than {limit:,} bytes, more than an image of the size its header states "
        "(or of --max-pixels) needs; not read further"
    )


def read_image(path: str | Path, limits: Limits | None = None, bgr: bool = False) -> Image:
    """Read and decode the image file at ``path`` (``bgr``: as for ``decode_image``)."""
    return decode_image(read_bytes(path, limits), str(path), limits, bgr)


def quiet_opencv() -> None:
    """Turn off OpenCV's own log lines (a thread it could not start, an encoder's complaint):
    the command says every failure in its one line."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


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


def decode_image(data: bytes, name: str, limits: Limits | None = None, bgr: bool = False) -> Image:
    """Decode image bytes; ``name`` is how errors refer to them. A cut-off file or one whose
    header claims more pixels than ``limits`` allow is refused before decoding. With ``bgr``,
    colour pixels are left in OpenCV's order (a pass over the image saved when the caller can
    take them so)."""
    if not data:
        raise ImageError(f"input {name}: is empty, no image data")
    limits = limits or Limits()
    fmt = detect_format(data)
    if fmt is None:  # no decoder sees a file whose size could not be checked first
        raise ImageError(f"input {name}: not an image that can be decoded (PNG, JPEG, WebP, BMP, TIFF, …)")
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
        if pixels.shape[0] <= 4 < pixels.shape[2]:  # PyTorch's layout: far more likely than 4 rows of C channels
            raise ImageError(
                f"input {name}: shape {pixels.shape} looks like channels first (C, H, W); an image array is "
                "(H, W, C): save np.moveaxis(array, 0, -1)"
            )
        return Image(pixels, "npy")
    # OpenCV decodes some cut-off files (a JPEG's missing end turns grey) and not others
    truncated = is_truncated(data, fmt)
    if truncated and not limits.allow_truncated:
        raise truncated_error(name, fmt)
    try:
        with quiet_native_stderr():
            pixels = opencv_decode(data, fmt)
    except cv2.error as error:  # a header the decoder itself refuses (a zero size), or no memory
        if error.code == cv2.Error.StsNoMem:
            raise MemoryError from None
        pixels = None
    if pixels is None and truncated:
        pixels = _decode_truncated(data)
    if pixels is None:
        raise ImageError(f"input {name}: not an image that can be decoded (PNG, JPEG, WebP, BMP, TIFF, …)")
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    if not bgr:
        pixels = swap_red_blue(pixels, in_place=True)
    meta = read_metadata(data) if might_have_metadata(data, fmt) else Metadata()
    frames = count_frames(data, fmt)
    # IMREAD_UNCHANGED keeps the pixels as stored, except that OpenCV's TIFF reader turns them
    # upright itself: turn the others upright here, so that each is turned exactly once
    upright = pixels if fmt in ORIENTED_BY_DECODER else apply_orientation(pixels, meta.orientation)
    return Image(upright, fmt, meta, frames, bgr=bgr and upright.shape[2] in (3, 4))


def _decode_truncated(data: bytes) -> np.ndarray | None:
    """What Pillow can make of a cut-off file, as OpenCV would hold it (B, G, R order), or None."""
    from PIL import Image as PILImage
    from PIL import ImageFile

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pillow_without_size_limit(), PILImage.open(io.BytesIO(data)) as image:
            image.load()
            pixels = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    except (OSError, ValueError, SyntaxError):
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return swap_red_blue(pixels, in_place=True)


def swap_red_blue(pixels: np.ndarray, in_place: bool = False) -> np.ndarray:
    """R, G, B(, A) to B, G, R(, A) and back (OpenCV holds B, G, R; kernels speak R, G, B), for
    pixels of any dtype, ``in_place`` or in a copy; one or two channels (gray, gray and alpha)
    are returned as they are."""
    if pixels.shape[2] not in (3, 4):
        return pixels
    if pixels.dtype in OPENCV_DEPTHS:
        code = cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        in_place = in_place and opencv_writes(pixels) and pixels.flags.writeable
        return cv2.cvtColor(pixels, code, dst=pixels if in_place else None)
    swapped = pixels if in_place else pixels.copy()
    swapped[..., [0, 2]] = pixels[..., [2, 0]]
    return swapped


def opencv_order(channels: int) -> np.ndarray:
    """Which R, G, B(, A) channel each of OpenCV's holds: blue and red change places in 3 and 4
    channels; 1 and 2 (gray, gray and alpha) have no colour order.

    >>> opencv_order(4).tolist(), opencv_order(2).tolist()
    ([2, 1, 0, 3], [0, 1])
    """
    order = np.arange(channels)
    if channels in (3, 4):
        order[[0, 2]] = [2, 0]
    return order


def stream_format(input_format: str) -> str:
    """The format standard output gets by default: the input's, or PNG for one that is only read (GIF)."""
    return input_format if input_format in FORMATS.values() else "png"


class Encoded(tuple):
    """An encoded image as pieces to write one after another: the encoder's own buffer is one of
    them, never copied into a single ``bytes`` (``bytes(encoded)`` joins them)."""

    def __bytes__(self) -> bytes:
        return b"".join(self)


def encode_image(pixels: np.ndarray, fmt: str, *args, **kwargs) -> bytes:
    """``encode_pieces`` joined into one ``bytes``."""
    return bytes(encode_pieces(pixels, fmt, *args, **kwargs))


def encode_pieces(
    pixels: np.ndarray,
    fmt: str,
    quality: int = 95,
    metadata: Metadata | None = None,
    compression: int | None = None,
    reuse: bool = False,
    bgr: bool = False,
) -> Encoded:
    """Encode ``(H, W, C)`` pixels in R, G, B(, A) order (``bgr``: in OpenCV's B, G, R(, A)
    order already) as ``fmt``, with ``metadata`` (ICC profile, EXIF, DPI) where the format
    holds it. With ``reuse``, the caller lets the pixels go: they are turned to OpenCV's order
    in place rather than in a copy."""
    if fmt == "npy":
        array, header = np.ascontiguousarray(pixels), io.BytesIO()
        np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
        return Encoded([header.getvalue(), memoryview(array.reshape(-1)).cast("B")])
    channels = pixels.shape[2]
    if channels not in (1, 3, 4):
        raise UsageError(
            f"a result with {channels} channels cannot be written as {fmt.upper()}: images hold 1, 3 or 4 "
            "channels; use --montage (every channel in one picture), --split (one image per channel) or write a "
            ".npy file"
        )
    largest = LARGEST_SIDE.get(fmt, 0)
    if largest and max(pixels.shape[:2]) > largest:
        raise ImageError(
            f"the result, {pixels.shape[1]}×{pixels.shape[0]}, is larger than a {fmt.upper()} holds ({largest:,} "
            "pixels a side at most): write a PNG or TIFF"
        )
    ordered = pixels if bgr else swap_red_blue(pixels, in_place=reuse)
    params = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif fmt == "png" and compression is not None:
        params = [cv2.IMWRITE_PNG_COMPRESSION, compression]

    def encode(part: np.ndarray, extra: list[int] | None = None) -> np.ndarray:
        ok, encoded = cv2.imencode("." + ("jpg" if fmt == "jpeg" else fmt), part, [*params, *(extra or [])])
        if not ok:
            # a result within the format's limits: what fails is an allocation in the encoder
            raise ImageError(
                f"could not encode the result as {fmt.upper()}: the encoder failed, most likely for want of memory"
            )
        return encoded

    try:
        with quiet_native_stderr():  # a large TIFF or JPEG: in bands on all cores
            encoded = (
                (fmt == "tiff" and encode_in_bands(ordered, encode))
                or (fmt == "jpeg" and jpeg_in_bands(ordered, encode))
                or encode(ordered)
            )
    except cv2.error as error:
        if error.code == cv2.Error.StsNoMem:
            raise MemoryError from None
        raise ImageError(f"could not encode the result as {fmt.upper()} ({error.err})") from None
    return Encoded(add_metadata(memoryview(encoded).cast("B"), fmt, pixels, metadata or Metadata()))


def write_atomic(path: str | Path, data: bytes | Encoded) -> None:
    """Write ``data`` (bytes, or the pieces of an ``Encoded``) to ``path`` through a temporary
    file in the same folder and a rename, so that ``path`` holds either its old content or all of
    the new one, never a part. The temporary file is named before it is made, so that an
    interruption at any point removes it."""
    path = Path(path)
    # the temporary name adds 25 bytes to the output's: shorten its copy of the name so that any
    # name the file system takes (255 bytes) still leaves room
    stem = os.fsencode(path.name)[:200].decode(errors="ignore")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    temp = fd = None
    try:
        while fd is None:
            temp = path.parent / f".{stem}.{secrets.token_hex(4)}.convfilter-tmp"
            with contextlib.suppress(FileExistsError):
                fd = os.open(temp, flags, 0o666)  # the umask gives the usual permissions of a new file
        with os.fdopen(fd, "wb") as stream:
            for piece in data if isinstance(data, Encoded) else (data,):
                stream.write(piece)
        os.replace(temp, path)
    except BaseException as error:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if isinstance(error, OSError):
            where = f"cannot write in {path.parent}" if fd is None else "cannot write"
            raise ImageError(f"output {path}: {where} ({error.strerror})") from None
        raise
