"""The convolution engine: ``convolve`` with PyTorch's ``nn.Conv2d`` semantics in NumPy."""

from .core import Convolution, convolve
from .geometry import PADDING_MODES, Geometry, check_groups, common_divisors, divisors, geometry, source_index

__all__ = [
    "PADDING_MODES",
    "Convolution",
    "Geometry",
    "check_groups",
    "common_divisors",
    "convolve",
    "divisors",
    "geometry",
    "source_index",
]
