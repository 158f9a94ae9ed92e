"""Kernels computed from parameters: gaussian, box, … — parameters in, a 2-D weight out.

Each generator declares its parameters with a default and a rule, so that a bad value or an
unknown name gets an error that lists what is accepted.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import KernelError

if TYPE_CHECKING:
    import numpy as np

MAX_SIZE = 255
# a number as ``-p NAME=VALUE`` writes it: ASCII digits, an optional dot and exponent; not
# "nan", "inf", "1_000" or digits of other scripts, which Python's float() would also take
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (not a bool) within float's finite range.

    An int beyond ±1.8e308 is not: it has no float, and ``math.isfinite`` would raise on it.

    >>> is_number(3), is_number(2.5), is_number(True), is_number(float("nan")), is_number(10**400)
    (True, True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= sys.float_info.max


def shown(value: object, most: int = 40) -> str:
    """``repr(value)`` for a message, its middle cut out past ``most`` characters, so that a
    message stays one short line whatever a file holds.

    >>> shown("x" * 100, most=12), shown(-(10**400))
    ("'xx…xx' (102 characters)", 'an integer of about 400 digits')
    """
    if isinstance(value, int) and abs(value) >= 10**most:  # str() refuses past 4300 digits
        return f"an integer of about {int(abs(value).bit_length() * math.log10(2))} digits"
    return cut(repr(value), most)


def cut(text: str, most: int = 40) -> str:
    """``text`` with its middle cut out past ``most`` characters, and its length said.

    >>> cut("abc"), cut("0123456789" * 3, most=12)
    ('abc', '012…789 (30 characters)')
    """
    if len(text) <= most:
        return text
    keep = (most - 2) // 3
    return f"{text[:keep]}…{text[-keep:]} ({len(text)} characters)"


@dataclass(frozen=True)
class Param:
    """One generator parameter: its default, its type and the rule a value must follow."""

    name: str
    default: float
    kind: type  # int or float
    rule: str  # shown in errors, e.g. "> 0"
    check: Callable[[float], bool]

    def coerce(self, value: object, where: str) -> float:
        """Return ``value`` as this parameter's type, or raise a ``KernelError`` naming ``where``."""
        number = float(value) if isinstance(value, str) and _DECIMAL.fullmatch(value) else value
        if not is_number(number):
            raise KernelError(f"{where}: parameter {self.name} must be a number {self.rule}, got {shown(value)}")
        if self.kind is int:
            if number != int(number):
                raise KernelError(
                    f"{where}: parameter {self.name} must be a whole number {self.rule}, got {shown(value)}"
                )
            number = int(number)
        else:
            number = float(number)
        if not self.check(number):
            raise KernelError(f"{where}: parameter {self.name} must be {self.rule}, got {shown(number)}")
        return number


@dataclass(frozen=True)
class Generator:
    """A named function from parameters to a 2-D kernel."""

    name: str
    params: tuple[Param, ...]
    build: Callable[..., np.ndarray]
    shape: Callable[..., tuple[int, int]]  # the size ``build`` gives, without building it

    def defaults(self) -> dict[str, float]:
        """Return the parameters' default values."""
        return {p.name: p.default for p in self.params}

    def resolve(self, values: dict[str, object], where: str) -> dict[str, float]:
        """Check ``values`` against the declared parameters and fill in the defaults."""
        known = {p.name: p for p in self.params}
        unknown = [name for name in values if name not in known]  # names in a file may be any YAML key
        if unknown:
            raise KernelError(
                f"{where}: generator {self.name} takes no parameter {shown(unknown[0])}; it takes {self.describe()}"
            )
        resolved = self.defaults()
        resolved.update({name: known[name].coerce(value, where) for name, value in values.items()})
        return resolved

    def describe(self) -> str:
        """Return the parameters with their rules and defaults, for messages and help."""
        return ", ".join(f"{p.name} ({p.rule}, default {p.default:g})" for p in self.params)


def _odd_or_zero(v: float) -> bool:
    return v == 0 or (v % 2 == 1 and 1 <= v <= MAX_SIZE)


def gaussian_size(sigma: float) -> int:
    """The size chosen for ``size: 0``: three standard deviations each side, ``2·⌈3σ⌉+1``.

    >>> gaussian_size(2.0)
    13
    """
    return min(MAX_SIZE, 2 * math.ceil(3 * sigma) + 1)


def gaussian_1d(sigma: float, size: int) -> np.ndarray:
    """Sampled, normalised Gaussian, the same numbers as OpenCV's ``getGaussianKernel`` for sigma > 0."""
    import numpy as np

    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian(sigma: float, size: int) -> np.ndarray:
    import numpy as np

    g = gaussian_1d(sigma, size or gaussian_size(sigma))
    return np.outer(g, g)


def _box(size: int) -> np.ndarray:
    import numpy as np

    return np.full((size, size), 1.0 / (size * size))


def _disk(radius: float) -> np.ndarray:
    """A flat disc: 1 where x² + y² ≤ r², normalised to sum 1."""
    import numpy as np

    half = math.ceil(radius)
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    disk = (x**2 + y**2 <= radius**2).astype(float)
    return disk / disk.sum()


def _motion(length: int, angle: float) -> np.ndarray:
    """A line ``length`` pixels long through the centre at ``angle`` degrees (counter-clockwise
    from the x axis, y up as in a photo), drawn with bilinear weights, normalised to sum 1."""
    import numpy as np

    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size))
    centre = (size - 1) / 2
    theta = math.radians(angle)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 8 * length + 1):
        x, y = centre + t * math.cos(theta), centre - t * math.sin(theta)  # rows grow downwards
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    kernel[y0 + dy, x0 + dx] += wy * wx
    return kernel / kernel.sum()


def _log(sigma: float, size: int) -> np.ndarray:
    """Laplacian of Gaussian, shifted to sum exactly 0 (flat areas give 0)."""
    import numpy as np

    size = size or gaussian_size(sigma)
    half = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - half
    r2 = (x**2 + y**2) / (2 * sigma**2)
    log = -(1 - r2) * np.exp(-r2) / (math.pi * sigma**4)
    return log - log.mean()


def _dog(sigma1: float, sigma2: float, size: int) -> np.ndarray:
    """Difference of Gaussians G(σ1) - G(σ2), both normalised, on one grid: sums to 0."""
    size = size or gaussian_size(max(sigma1, sigma2))
    return _gaussian(sigma1, size) - _gaussian(sigma2, size)


def _unsharp(sigma: float, amount: float, size: int) -> np.ndarray:
    """Unsharp mask: (1 + amount)·identity - amount·G(σ); sums to 1, so flat areas keep their value."""
    kernel = -amount * _gaussian(sigma, size)
    centre = (kernel.shape[0] - 1) // 2
    kernel[centre, centre] += 1 + amount
    return kernel


def _sigma(name: str = "sigma", default: float = 1.0) -> Param:
    return Param(name, default, float, f"> 0 and ≤ {MAX_SIGMA:g}", lambda v: 0 < v <= MAX_SIGMA)


_SIZE = Param("size", 0, int, "odd, or 0 to choose from sigma", _odd_or_zero)
MAX_SIGMA = (MAX_SIZE - 1) / 6  # the largest sigma whose 2·⌈3σ⌉+1 fits in 255

GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "gaussian",
            (_sigma(), _SIZE),
            _gaussian,
            lambda sigma, size: (size or gaussian_size(sigma),) * 2,
        ),
        Generator(
            "box",
            (Param("size", 3, int, f"1 to {MAX_SIZE}", lambda v: 1 <= v <= MAX_SIZE),),
            _box,
            lambda size: (size, size),
        ),
        Generator(
            "disk",
            (Param("radius", 3.0, float, f"> 0 and ≤ {MAX_SIZE // 2}", lambda v: 0 < v <= MAX_SIZE // 2),),
            _disk,
            lambda radius: (2 * math.ceil(radius) + 1,) * 2,
        ),
        Generator(
            "motion",
            (
                Param("length", 9, int, f"1 to {MAX_SIZE - 1}", lambda v: 1 <= v < MAX_SIZE),
                Param("angle", 0.0, float, "in degrees, -360 to 360", lambda v: -360 <= v <= 360),
            ),
            _motion,
            lambda length, angle: (length | 1,) * 2,
        ),
        Generator(
            "laplacian_of_gaussian",
            (_sigma(), _SIZE),
            _log,
            lambda sigma, size: (size or gaussian_size(sigma),) * 2,
        ),
        Generator(
            "difference_of_gaussians",
            (_sigma("sigma1", 1.0), _sigma("sigma2", 2.0), _SIZE),
            _dog,
            lambda sigma1, sigma2, size: (size or gaussian_size(max(sigma1, sigma2)),) * 2,
        ),
        Generator(
            "unsharp",
            (_sigma(), Param("amount", 1.0, float, "0 to 10", lambda v: 0 <= v <= 10), _SIZE),
            _unsharp,
            lambda sigma, amount, size: (size or gaussian_size(sigma),) * 2,
        ),
    )
}
