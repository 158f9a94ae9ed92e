"""OpenCV's decoding of an image file's bytes straight into the NumPy array it returns.

``cv2.imdecode``'s Python binding decodes into OpenCV's own buffer and returns a copy of it: twice
the image at the peak, and as many fresh pages to touch. ``cv2.imread`` with an empty array to
fill allocates the result as a NumPy array and decodes into it; it reads a file by name, so the
bytes (already read and checked) are put in a file in memory that has no place on any disk.
"""

from __future__ import annotations

import os

import cv2
import numpy as np


def opencv_decode(data: bytes, fmt: str) -> np.ndarray | None:
    """OpenCV's decoding of ``data`` (a ``fmt`` file) as stored (``IMREAD_UNCHANGED``), or None:
    through a file in memory where the system has them, else ``cv2.imdecode``. A JPEG that does
    not end with its end marker keeps ``imdecode``: OpenCV's file reader makes up the end of a
    cut-off JPEG that its buffer reader refuses. A file the reader cannot decode gets
    ``imdecode``'s word on it."""
    fd = _memory_file(data) if fmt != "jpeg" or data.endswith(b"\xff\xd9") else None
    if fd is not None:
        try:
            pixels = cv2.imread(f"/proc/self/fd/{fd}", np.empty(0, np.uint8), cv2.IMREAD_UNCHANGED)
        finally:
            os.close(fd)
        if pixels is not None and pixels.size:
            return pixels
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _memory_file(data: bytes) -> int | None:
    """The descriptor of a file in memory (not on any disk) holding ``data``, that OpenCV can
    open by name; None where the system has none."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        fd = os.memfd_create("convfilter-input", os.MFD_CLOEXEC)
    except OSError:
        return None
    try:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        os.close(fd)
        return None
    return fd
