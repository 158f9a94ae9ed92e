"""Kernels computed from parameters: gaussian, box, … — parameters in, a 2-D weight out.

Each generator declares its parameters with a default and a rule, so that a bad value or an
unknown name gets an error that lists what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import KernelError

if TYPE_CHECKING:
    import numpy as np

MAX_SIZE = 255


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
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise KernelError(
                    f"{where}: parameter {self.name} must be a number {self.rule}, got {value!r}"
                ) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise KernelError(f"{where}: parameter {self.name} must be a number {self.rule}, got {value!r}")
        if self.kind is int:
            if value != int(value):
                raise KernelError(f"{where}: parameter {self.name} must be a whole number {self.rule}, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not self.check(value):
            raise KernelError(f"{where}: parameter {self.name} must be {self.rule}, got {value!r}")
        return value


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
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise KernelError(
                f"{where}: generator {self.name} takes no parameter {unknown[0]!r}; it takes {self.describe()}"
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


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "gaussian",
            (
                Param("sigma", 1.0, float, "> 0", lambda v: v > 0),
                Param("size", 0, int, "odd, or 0 to choose from sigma", _odd_or_zero),
            ),
            _gaussian,
            lambda sigma, size: (size or gaussian_size(sigma),) * 2,
        ),
        Generator(
            "box",
            (Param("size", 3, int, f"1 to {MAX_SIZE}", lambda v: 1 <= v <= MAX_SIZE),),
            _box,
            lambda size: (size, size),
        ),
    )
}
