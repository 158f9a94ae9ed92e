"""Kernels written out rather than kept in a kernel file: a matrix literal
(``'[[0,-1,0],[-1,5,-1],[0,-1,0]]'``), an ImageMagick kernel string (``'3x3: 0,-1,0 -1,5,-1 0,-1,0'``,
or ``@file`` holding one) and a libvips matrix file (``.mat``).

Each becomes the ``weights`` (and ``divisor``, ``bias``) of a kernel mapping, validated exactly
as a YAML kernel file is; nothing is ever evaluated as code."""

from __future__ import annotations

import math
import re
from pathlib import Path

from .errors import KernelError
from .generators import MAX_SIZE, cut, shown
from .kernel import Kernel, parse_kernel

MAX_LITERAL_CHARS = 1 << 20  # as a kernel file: 1 MiB
# ImageMagick's "WxH[+X+Y][@><]:values": a size, an optional origin, flags, then the values
_GEOMETRY = re.compile(
    r"\s*(?P<w>[0-9]{1,6})(?:[xX](?P<h>[0-9]{1,6}))?(?P<origin>[+-][0-9]{1,6}[+-][0-9]{1,6})?"
    r"(?P<flags>[@<>!%^]*)\s*:(?P<values>.*)",
    re.ASCII | re.DOTALL,
)
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_SEPARATOR = re.compile(r"[,\s]+")
_VALUE = re.compile(rf"{_NUMBER}|nan|-", re.ASCII | re.IGNORECASE)
# ImageMagick's old form: a bare list of N² numbers (at least one digit, so a name never matches)
_BARE_LIST = re.compile(rf"\s*(?:{_NUMBER}|nan)(?:[,\s]+(?:{_NUMBER}|nan|-))*[,\s]*", re.ASCII | re.IGNORECASE)
# libvips separates the numbers of a matrix file by any mix of spaces, commas, tabs and quotes
_VIPS_SEPARATOR = re.compile(r'[\s,"]+')


def parse_literal(text: str) -> Kernel | None:
    """The kernel written in ``text`` — a matrix literal, an ImageMagick kernel string or
    ``@file`` — or None if ``text`` is none of them (a name or a path).

    >>> parse_literal("[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]").weights.tolist()[1]
    [-1.0, 5.0, -1.0]
    >>> parse_literal("2x1: 1, -1").weights.tolist(), parse_literal("edge") is None
    ([[1.0, -1.0]], True)
    """
    stripped = text.strip()
    if stripped.startswith("["):
        return matrix_kernel(stripped)
    if stripped.startswith("@"):
        return imagemagick_file(Path(stripped[1:]))
    if _GEOMETRY.match(stripped) or _BARE_LIST.fullmatch(stripped):
        return imagemagick_kernel(stripped, f"ImageMagick kernel {shown(stripped, 60)}", "imagemagick")
    return None


def matrix_kernel(text: str) -> Kernel:
    """A kernel from a matrix literal: a 2-D, 3-D or 4-D list of numbers in JSON or YAML flow
    style, read by the same safe loader and checked as a kernel file's ``weights``."""
    from .library import read_yaml

    source = f"matrix {shown(text, 60)}"
    if len(text) > MAX_LITERAL_CHARS:
        raise KernelError(f"{source}: longer than 1 MiB; a kernel is small")
    value = read_yaml(text.encode("utf-8", "surrogatepass"), source)
    if not isinstance(value, list):
        raise KernelError(f"{source}: must be a list of rows of numbers, such as [[0,-1,0],[-1,5,-1],[0,-1,0]]")
    return parse_kernel({"weights": value}, "matrix", source)


def imagemagick_kernel(text: str, source: str, name: str) -> Kernel:
    """A kernel from an ImageMagick kernel string: ``WxH[+X+Y]:`` then W·H numbers separated by
    commas or spaces, row after row, or a bare list of N² numbers for an N×N kernel. ``nan`` (or
    ``-``) marks a tap that is not part of the kernel: a weight of 0. An origin ``+X+Y`` other
    than the centre is kept by adding zero taps on the other side, so that it becomes the centre.

    >>> imagemagick_kernel("3x1+0+0: 1 2 3", "k", "k").weights.tolist()
    [[0.0, 0.0, 1.0, 2.0, 3.0]]
    """
    if len(text) > MAX_LITERAL_CHARS:
        raise KernelError(f"{source}: longer than 1 MiB; a kernel is small")
    if ";" in text:
        raise KernelError(f"{source}: holds several kernels (;); give one")
    match = _GEOMETRY.match(text)
    values_text = match["values"] if match else text
    tokens = [t for t in _SEPARATOR.split(values_text.strip()) if t]
    for token in tokens:
        if not _VALUE.fullmatch(token):
            raise KernelError(f"{source}: {shown(token)} is not a number (nan or - marks a tap left out)")
    if match:
        if match["flags"]:
            raise KernelError(f"{source}: the flags {match['flags']!r} (rotated copies, scaling) are not read")
        width = int(match["w"])
        height = int(match["h"] or match["w"])
    else:
        width = height = math.isqrt(len(tokens))
        if width * width != len(tokens):
            raise KernelError(
                f"{source}: a list without WxH: must hold N×N numbers; it holds {len(tokens)} (write WxH: first)"
            )
    if not 1 <= width <= MAX_SIZE or not 1 <= height <= MAX_SIZE:
        raise KernelError(f"{source}: {width}×{height} is not from 1×1 to {MAX_SIZE}×{MAX_SIZE}")
    if len(tokens) != width * height:
        raise KernelError(f"{source}: a {width}×{height} kernel takes {width * height} numbers, got {len(tokens)}")
    values = [0.0 if token.lower() in ("nan", "-") else float(token) for token in tokens]
    if all(token.lower() in ("nan", "-") for token in tokens):
        raise KernelError(f"{source}: every tap is nan; at least one must be part of the kernel")
    rows = [values[r * width : (r + 1) * width] for r in range(height)]
    if match and match["origin"]:
        x, y = (int(n) for n in re.findall(r"[+-][0-9]+", match["origin"]))
        if not (0 <= x < width and 0 <= y < height):
            raise KernelError(f"{source}: the origin +{x}+{y} lies outside the {width}×{height} kernel")
        rows = _centred(rows, x, y, source)
    return parse_kernel({"weights": rows}, name, source)


def _centred(rows: list[list[float]], x: int, y: int, source: str) -> list[list[float]]:
    """The kernel with zero taps added so that tap (x, y) is its centre (for an even size, the
    tap before the middle, as "same" padding has it)."""

    def sides(size: int, origin: int) -> tuple[int, int]:
        centre = (size - 1) // 2
        if origin > centre:
            return 0, 2 * origin - size + 1
        if origin < centre:
            return size - 1 - 2 * origin, 0
        return 0, 0

    (top, bottom), (left, right) = sides(len(rows), y), sides(len(rows[0]), x)
    if max(len(rows) + top + bottom, len(rows[0]) + left + right) > MAX_SIZE:
        raise KernelError(f"{source}: origin +{x}+{y}: centring it makes the kernel larger than {MAX_SIZE}×{MAX_SIZE}")
    zeros = [0.0] * (left + len(rows[0]) + right)
    middle = [[0.0] * left + row + [0.0] * right for row in rows]
    return [list(zeros) for _ in range(top)] + middle + [list(zeros) for _ in range(bottom)]


def imagemagick_file(path: Path) -> Kernel:
    """A kernel from ``@file``: a file holding an ImageMagick kernel string (at most 1 MiB)."""
    from .library import read_kernel_file

    name = str(path)
    source = f"kernel file {cut(name, 200) if name.isprintable() else shown(name, 200)}"
    text = _text(read_kernel_file(path, source), source)
    if not text.strip():
        raise KernelError(
            f"{source}: is empty; it should hold an ImageMagick kernel such as 3x3: 0,-1,0 -1,5,-1 0,-1,0"
        )
    return imagemagick_kernel(text.strip(), source, path.stem or "imagemagick")


def vips_matrix(data: bytes, name: str, source: str) -> Kernel:
    """A kernel from the bytes of a libvips matrix file: a first line ``width height [scale
    [offset]]``, then ``height`` rows of ``width`` numbers. libvips computes
    ``sum(pixel · weight) / scale + offset``: the scale becomes the kernel's divisor, the offset
    its bias.

    >>> vips_matrix(b"3 1 2 10\\n1 0 1\\n", "m", "m").weights.tolist(), vips_matrix(b"1 1 2 10\\n1\\n", "m", "m").bias
    ([[0.5, 0.0, 0.5]], (10.0,))
    """
    lines = [line for line in _text(data, source).splitlines() if line.strip()]
    if not lines:
        raise KernelError(f"{source}: is empty; a matrix file starts with a line 'width height [scale [offset]]'")
    first = _numbers(lines[0], source, "line 1")
    if not 2 <= len(first) <= 4:
        raise KernelError(f"{source}: line 1 must be 'width height [scale [offset]]', it holds {len(first)} numbers")
    width, height = first[0], first[1]
    if not all(float(n).is_integer() and 1 <= n <= MAX_SIZE for n in (width, height)):
        raise KernelError(
            f"{source}: line 1: width and height must be whole numbers from 1 to {MAX_SIZE}, "
            f"got {shown(width)} and {shown(height)}"
        )
    width, height = int(width), int(height)
    scale, offset = (*first[2:], 1.0, 0.0)[:2]
    if scale == 0:
        raise KernelError(f"{source}: line 1: the scale must not be 0 (libvips divides by it)")
    rows = [_numbers(line, source, f"line {number}") for number, line in enumerate(lines[1:], 2)]
    if len(rows) != height:
        raise KernelError(f"{source}: line 1 says {height} rows, the file holds {len(rows)}")
    for number, row in enumerate(rows, 2):
        if len(row) != width:
            raise KernelError(f"{source}: row {number - 1} has {len(row)} numbers, line 1 says {width}")
    return parse_kernel({"weights": rows, "divisor": scale, "bias": offset}, name, source)


def _numbers(line: str, source: str, where: str) -> list[float]:
    """The numbers of one line of a matrix file (each finite, written as libvips writes them)."""
    numbers = []
    for token in (t for t in _VIPS_SEPARATOR.split(line.strip()) if t):
        if not re.fullmatch(_NUMBER, token, re.ASCII):
            raise KernelError(f"{source}: {where}: {shown(token)} is not a number")
        value = float(token)
        if not math.isfinite(value):
            raise KernelError(f"{source}: {where}: {cut(token)} is beyond float's range")
        numbers.append(value)
    return numbers


def _text(data: bytes, source: str) -> str:
    """The bytes of a text kernel file as text: UTF-8 (ASCII is part of it)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KernelError(f"{source}: not text (it is not UTF-8); a kernel written out is plain text") from None
