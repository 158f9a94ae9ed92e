"""A layer's result as a CNN user looks at it: the input prepared as the model saw it (scale,
mean, std and channel order, torchvision's convention), and a result of any number of channels
as one labelled montage or as one image per channel, each map stretched on its own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import UsageError

MAX_SIDE = 4000  # the most pixels a montage has on a side, however many maps
MAPS = ("montage", "split")


@dataclass(frozen=True)
class Prepare:
    """``(x · scale − mean) / std`` per channel, after reversing R, G, B to B, G, R when ``bgr``
    (for models trained on OpenCV's images); ``mean`` and ``std`` hold one value, or one per
    channel."""

    scale: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    bgr: bool = False

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The prepared pixels, float32 (a new array)."""
        x = pixels.astype(np.float32)
        channels = x.shape[2]
        if self.bgr and channels >= 3:
            x[..., :3] = x[..., 2::-1].copy()
        x *= np.float32(self.scale)
        for values, name in ((self.mean, "--mean"), (self.std, "--std")):
            if len(values) not in (0, 1, channels):
                raise UsageError(f"option {name}: {len(values)} values for an image of {channels} channels")
        if self.mean:
            x -= np.asarray(self.mean, np.float32)
        if self.std:
            if not all(math.isfinite(s) and s != 0 for s in self.std):
                raise UsageError("option --std: the values must be finite and not 0")
            x /= np.asarray(self.std, np.float32)
        return x


def parse_values(text: str | None, option: str) -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` as numbers (a ``UsageError`` for anything else)."""
    if text is None:
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"option {option}: {text!r} is not a list of numbers, e.g. 0.5,0.5,0.5") from None
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"option {option}: the values must be finite numbers")
    return values


def stretch(channel: np.ndarray) -> np.ndarray:
    """One map's min..max to 0..255 (uint8), as torchvision's ``make_grid(normalize=True,
    scale_each=True)``; a flat map is mid-grey."""
    finite = np.nan_to_num(channel.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.full(channel.shape, 128, np.uint8)
    return np.rint((finite - low) * (255 / (high - low))).astype(np.uint8)


def montage(result: np.ndarray) -> np.ndarray:
    """Every channel of a ``(H, W, C)`` result as a grid of stretched maps (RGB uint8), each
    labelled with its index and value range, at most ``MAX_SIDE`` pixels a side."""
    from .plot import contact_sheet

    height, width, count = result.shape
    columns = max(1, math.ceil(math.sqrt(count * height / max(width, 1))))
    rows = math.ceil(count / columns)
    label_room, margin = 24, 8
    fits = min(
        (MAX_SIDE - margin) / (columns * (width + margin)),
        (MAX_SIDE - margin) / (rows * (height + label_room + margin)),
    )
    scale = min(max(1.0, 160 / width), fits)  # small maps grow to carry their labels
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    tiles = []
    for index in range(count):
        channel = result[..., index]
        low, high = float(np.nanmin(channel)), float(np.nanmax(channel))
        gray = cv2.resize(stretch(channel), size, interpolation=cv2.INTER_AREA)
        tiles.append((f"{index} [{low:.3g}, {high:.3g}]", np.repeat(gray[..., None], 3, axis=2)))
    return contact_sheet(tiles, columns)


def split_path(output: Path, index: int, count: int) -> Path:
    """The file of channel ``index`` of ``count`` for ``--split``: ``out.png`` → ``out-03.png``."""
    return output.with_name(f"{output.stem}-{index:0{max(2, len(str(count - 1)))}}{output.suffix}")
