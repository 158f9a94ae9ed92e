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


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


MAX_SIDE = 4000  # the most pixels a kernel picture has on a side, however many panels
MARGIN, TITLE, LABEL = 8, 34, 20


def _grid(kernel: Kernel, count: int) -> int:
    """Columns for ``count`` panels, about as many as rows: a 4-D weight keeps each output's
    inputs side by side (whole outputs per row)."""
    if kernel.weights.ndim == 4:
        inputs = kernel.weights.shape[1]
        return inputs * max(1, round((count / inputs / inputs) ** 0.5))
    return max(1, min(count, round(count**0.5 + 0.49)))


def draw_filters(weights: np.ndarray, title: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """A first layer ``[O, 3, kh, kw]`` as the classic picture of one: each filter one RGB patch,
    stretched on its own (min..max to 0..255), in a near-square grid numbered from 0, at most
    ``max_side`` pixels a side (RGB uint8)."""
    count, _, kh, kw = weights.shape
    columns = max(1, round(count**0.5 + 0.49))
    rows = -(-count // columns)
    room = min((max_side - MARGIN) // columns, (max_side - TITLE) // rows) - MARGIN - LABEL
    cell = int(np.clip(room // max(kh, kw), 1, 32))
    patch_w, patch_h = kw * cell, kh * cell
    labelled = _text_width(str(count - 1), 0.4) <= patch_w
    label = LABEL if labelled else 0
    sheet = np.full(
        (TITLE + rows * (patch_h + label + MARGIN) + MARGIN, MARGIN + columns * (patch_w + MARGIN), 3), 255, np.uint8
    )
    _text(sheet, title, (MARGIN, 24), 0.6)
    for index in range(count):
        rgb = np.moveaxis(weights[index].astype(np.float64), 0, -1)
        low, high = rgb.min(), rgb.max()
        rgb = np.zeros_like(rgb) + 0.5 if high <= low else (rgb - low) / (high - low)
        patch = cv2.resize(np.rint(rgb * 255).astype(np.uint8), (patch_w, patch_h), interpolation=cv2.INTER_NEAREST)
        top = TITLE + (index // columns) * (patch_h + label + MARGIN)
        left = MARGIN + (index % columns) * (patch_w + MARGIN)
        if labelled:
            _text(sheet, str(index), (left, top + 14), 0.4)
        sheet[top + label : top + label + patch_h, left : left + patch_w] = patch
    return sheet


def draw_kernel(kernel: Kernel, max_side: int = MAX_SIDE) -> np.ndarray:
    """The kernel's weights as a picture (RGB uint8, at most ``max_side`` pixels a side): a
    diverging colour map, one panel per 2-D piece in a near-square grid. Labels and values are
    written on every panel or on none, as the cell size allows; panels that do not fit at one
    pixel a cell are left out, and the title says how many are shown. A first layer that takes
    R, G, B with a spatial extent (``[O, 3, kh, kw]``, kh·kw > 1) is drawn as one RGB patch per
    filter (``draw_filters``)."""
    if kernel.weights.ndim == 4 and kernel.weights.shape[1] == 3 and max(kernel.kernel_size) > 1:
        return draw_filters(kernel.weights, f"{kernel.name}  {'x'.join(map(str, kernel.weights.shape))}", max_side)
    panels = _panels(kernel)
    kh, kw = kernel.kernel_size
    fits = max(1, (max_side - TITLE) // (max(kh, kw) + MARGIN)) ** 2
    shown = panels[:fits]
    columns = _grid(kernel, len(shown))
    rows = -(-len(shown) // columns)
    labelled = 16 * columns * kw <= max_side and len(shown) > 1  # a label needs ~16 cells of width
    label = LABEL if labelled else 0
    budget = min((max_side - MARGIN) // columns - MARGIN, (max_side - TITLE - MARGIN) // rows - MARGIN - label)
    cell = int(np.clip(budget // max(kh, kw), 1, 64))
    labelled = labelled and _text_width(max(name for name, _ in shown), 0.4) <= kw * cell
    label = LABEL if labelled else 0
    panel_w, panel_h = kw * cell, kh * cell + label
    sheet = np.full(
        (TITLE + rows * (panel_h + MARGIN) + MARGIN, MARGIN + columns * (panel_w + MARGIN), 3), 255, np.uint8
    )
    title = f"{kernel.name}  {'x'.join(map(str, kernel.weights.shape))}"
    if len(shown) < len(panels):
        title += f"  (first {len(shown)} of {len(panels)} panels)"
    _text(sheet, title, (MARGIN, 24), 0.6)
    limit = float(np.abs(kernel.weights).max())
    texts = [[f"{v:.3g}" for v in values.ravel()] for _, values in shown]
    widest = max(_text_width(t, 1.0) for panel in texts for t in panel)
    scale = min(0.5, (cell - 6) / widest)  # one size for every panel's values, or none
    for index, ((name, values), panel_texts) in enumerate(zip(shown, texts, strict=True)):
        top = TITLE + (index // columns) * (panel_h + MARGIN)
        left = MARGIN + (index % columns) * (panel_w + MARGIN)
        if labelled:
            _text(sheet, name, (left, top + 14), 0.4)
        block = cv2.resize(
            diverging(values.astype(np.float64), limit), (panel_w, kh * cell), interpolation=cv2.INTER_NEAREST
        )
        sheet[top + label : top + label + kh * cell, left : left + panel_w] = block
        cv2.rectangle(sheet, (left, top + label), (left + panel_w - 1, top + label + kh * cell - 1), INK, 1)
        if scale >= 0.3:  # values are written only where they can be read
            for (i, j), text in zip(np.ndindex(values.shape), panel_texts, strict=True):
                (tw, th), _ = cv2.getTextSize(text, FONT, scale, 1)
                _text(
                    sheet, text, (left + j * cell + (cell - tw) // 2, top + label + i * cell + (cell + th) // 2), scale
                )
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
