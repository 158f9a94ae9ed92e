"""Pictures drawn with OpenCV: a kernel's weights as a labelled heat map, and a contact sheet of
every built-in kernel applied to one image."""

from __future__ import annotations

import cv2
import numpy as np

from .kernel import Kernel
from .library import builtin_names, load_kernel
from .pipeline import filter_pixels

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)


def diverging(values: np.ndarray, limit: float) -> np.ndarray:
    """Colours for ``values`` in RGB: blue for negative, white for zero, red for positive,
    full strength at ±``limit``."""
    t = np.clip(values / (limit or 1.0), -1, 1)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    red, blue = np.array([200.0, 40.0, 40.0]), np.array([30.0, 90.0, 190.0])
    colour = np.where(t >= 0, white + t * (red - white), white - t * (blue - white))
    return colour.astype(np.uint8)


def _panels(kernel: Kernel) -> list[tuple[str, np.ndarray]]:
    """The 2-D pieces of a kernel with their labels: one, one per kernel of a bank, or one per
    (output, input) pair of a 4-D weight."""
    w = kernel.weights
    if w.ndim == 2:
        return [("", w)]
    if w.ndim == 3:
        return [(f"kernel {k + 1}", w[k]) for k in range(len(w))]
    return [(f"out {o + 1} / in {c + 1}", w[o, c]) for o in range(w.shape[0]) for c in range(w.shape[1])]


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour=INK) -> None:
    cv2.putText(image, text, origin, FONT, scale, colour, 1, cv2.LINE_AA)


def draw_kernel(kernel: Kernel, max_side: int = 900) -> np.ndarray:
    """The kernel's weights as a picture (RGB uint8): a diverging colour map, the values written
    in the cells when they are large enough to read, one panel per 2-D piece."""
    panels = _panels(kernel)
    kh, kw = kernel.kernel_size
    columns = kernel.weights.shape[1] if kernel.weights.ndim == 4 else min(len(panels), 4)
    rows = -(-len(panels) // columns)
    cell = int(np.clip(max_side / (columns * max(kh, kw)), 2, 64))
    limit = float(np.abs(kernel.weights).max())
    label, margin, title = 22, 12, 34
    panel_w, panel_h = kw * cell, kh * cell + label
    sheet = np.full(
        (title + rows * (panel_h + margin) + margin, margin + columns * (panel_w + margin), 3), 255, np.uint8
    )
    _text(sheet, f"{kernel.name}  {'x'.join(map(str, kernel.weights.shape))}", (margin, 24), 0.6)
    for index, (name, values) in enumerate(panels):
        top = title + (index // columns) * (panel_h + margin)
        left = margin + (index % columns) * (panel_w + margin)
        _text(sheet, name, (left, top + 15), 0.45)
        colours = diverging(values.astype(np.float64), limit)
        block = cv2.resize(colours, (kw * cell, kh * cell), interpolation=cv2.INTER_NEAREST)
        sheet[top + label : top + label + kh * cell, left : left + kw * cell] = block
        cv2.rectangle(sheet, (left, top + label), (left + kw * cell - 1, top + label + kh * cell - 1), INK, 1)
        texts = {(i, j): f"{v:.3g}" for (i, j), v in np.ndenumerate(values)}
        widest = max(cv2.getTextSize(t, FONT, 1.0, 1)[0][0] for t in texts.values())
        scale = min(0.5, (cell - 6) / widest)
        if scale >= 0.3:  # values are written only where they can be read
            for (i, j), text in texts.items():
                (tw, th), _ = cv2.getTextSize(text, FONT, scale, 1)
                x = left + j * cell + (cell - tw) // 2
                y = top + label + i * cell + (cell + th) // 2
                _text(sheet, text, (x, y), scale)
    return sheet


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int = 5) -> np.ndarray:
    """Tiles of equal size (RGB uint8) in a grid, each with its name above it; returns RGB."""
    height, width = tiles[0][1].shape[:2]
    label, margin = 24, 8
    rows = -(-len(tiles) // columns)
    sheet = np.full((margin + rows * (height + label + margin), margin + columns * (width + margin), 3), 255, np.uint8)
    for index, (name, tile) in enumerate(tiles):
        top = margin + (index // columns) * (height + label + margin)
        left = margin + (index % columns) * (width + margin)
        _text(sheet, name, (left, top + 17), 0.55)
        sheet[top + label : top + label + height, left : left + width] = tile
    return sheet


def gallery(pixels: np.ndarray, tile_width: int = 240, columns: int = 5) -> np.ndarray:
    """Every built-in kernel, with its default parameters, applied to ``pixels`` (H, W, C)
    scaled to ``tile_width``: a labelled RGB contact sheet, the original first."""
    rgb = pixels[..., :3] if pixels.shape[2] >= 3 else np.repeat(pixels, 3, axis=2)
    if rgb.dtype != np.uint8:
        rgb = (rgb / 257).astype(np.uint8) if rgb.dtype == np.uint16 else np.clip(rgb, 0, 255).astype(np.uint8)
    height = max(1, round(rgb.shape[0] * tile_width / rgb.shape[1]))
    tile = cv2.resize(np.ascontiguousarray(rgb), (tile_width, height), interpolation=cv2.INTER_AREA)
    tiles = [("original", tile)]
    for name in builtin_names():
        out, _ = filter_pixels(tile, load_kernel(name))
        tiles.append((name, out if out.shape[2] == 3 else np.repeat(out[..., :1], 3, axis=2)))
    return contact_sheet(tiles, columns)
