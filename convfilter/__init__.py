"""convfilter: filter images with convolution kernels, with PyTorch's ``nn.Conv2d`` numbers.

The public API is loaded on first use, so that the command line's ``--help`` and ``list`` start
without importing NumPy or OpenCV.

>>> import numpy as np
>>> from convfilter import convolve
>>> convolve(np.ones((4, 4, 3)), np.ones((3, 1, 3, 3)), groups=3)[1, 1].tolist()
[9.0, 9.0, 9.0]
"""

from .errors import ArgumentError, ConvFilterError, ImageError, KernelError, UsageError

__version__ = "0.1.0"

_LAZY = {
    "convolve": ("engine", "convolve"),
    "load_kernel": ("library", "load_kernel"),
    "count_parameters": ("report", "count_parameters"),
}


def __getattr__(name: str):
    """Import ``convolve``, ``load_kernel`` and ``count_parameters`` when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'convfilter' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _LAZY[name]
    value = getattr(import_module(f"convfilter.{module}"), attribute)
    globals()[name] = value
    return value


__all__ = [
    "ArgumentError",
    "ConvFilterError",
    "ImageError",
    "KernelError",
    "UsageError",
    "__version__",
    "convolve",
    "count_parameters",
    "load_kernel",
]
