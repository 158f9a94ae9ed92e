"""convfilter: filter images with convolution kernels, with PyTorch's ``nn.Conv2d`` numbers.

>>> import numpy as np
>>> convolve(np.ones((4, 4, 3)), np.ones((3, 1, 3, 3)), groups=3)[1, 1].tolist()
[9.0, 9.0, 9.0]
"""

from importlib.metadata import PackageNotFoundError, version

from .engine import convolve
from .errors import ConvFilterError, ImageError, KernelError, UsageError
from .library import load_kernel
from .report import count_parameters

try:
    __version__ = version("convfilter")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ConvFilterError",
    "ImageError",
    "KernelError",
    "UsageError",
    "__version__",
    "convolve",
    "count_parameters",
    "load_kernel",
]
