"""What planning and the large-kernel routes cost: trained layers with many channels, 255×255
kernels and a dilation of 10,000, each beside the best peer call for the same job where one
exists (PyTorch for a layer; OpenCV's GaussianBlur, boxFilter and filter2D for large kernels)."""

from __future__ import annotations

import time
import tracemalloc

import cv2
import numpy as np

from convfilter.engine import Convolution


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (x * x + y * y <= radius * radius).astype(np.float32)
    return disk / disk.sum()


def _gaussian(sigma: float, size: int) -> np.ndarray:
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return (np.outer(g, g) / np.outer(g, g).sum()).astype(np.float32)


def _torch_layer(x: np.ndarray, weight: np.ndarray, padding: int):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    w = torch.from_numpy(weight)

    def run():
        with torch.no_grad():
            return F.conv2d(t, w, padding=padding)

    return run


def cases(photo: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """Name, image, weight, groups, convolution arguments and the peer call (or None)."""
    big = np.zeros((4, 4, 256), np.float32)
    layer256 = rng.standard_normal((256, 256, 3, 3)).astype(np.float32)
    small = rng.standard_normal((32, 32, 128)).astype(np.float32)
    layer128 = rng.standard_normal((128, 128, 3, 3)).astype(np.float32)
    reflect = cv2.BORDER_REFLECT_101
    depthwise = {"groups": 3, "padding_mode": "reflect"}
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    return [
        {"name": "layer 256→256 3×3, 4×4 image", "x": big, "weight": layer256, "args": {"padding": 1},
         "peer": ("torch conv2d", _torch_layer(big, layer256, 1))},
        {"name": "layer 128→128 3×3, 32×32 image", "x": small, "weight": layer128, "args": {"padding": 1},
         "peer": ("torch conv2d", _torch_layer(small, layer128, 1))},
        {"name": "Gaussian σ=42, 255×255", "x": photo, "weight": np.broadcast_to(_gaussian(42, 255), (3, 1, 255, 255)),
         "args": depthwise, "peer": ("cv2.GaussianBlur", lambda: cv2.GaussianBlur(photo.astype(np.float32), (255, 255),
                                                                                   42, borderType=reflect))},
        {"name": "box 255×255", "x": photo, "weight": np.full((3, 1, 255, 255), 1 / 255**2, np.float32),
         "args": depthwise, "peer": ("cv2.boxFilter", lambda: cv2.boxFilter(photo, cv2.CV_32F, (255, 255),
                                                                            borderType=reflect))},
        {"name": "disk r=127 (255×255)", "x": photo, "weight": np.broadcast_to(_disk(127), (3, 1, 255, 255)),
         "args": depthwise, "peer": ("cv2.filter2D", lambda: cv2.filter2D(photo, cv2.CV_32F, _disk(127),
                                                                          borderType=reflect))},
        {"name": "sharpen 3×3, dilation 10000", "x": photo, "weight": np.broadcast_to(sharpen, (3, 1, 3, 3)),
         "args": {**depthwise, "dilation": 10000}, "peer": ("—", None)},
    ]  # fmt: skip


def planning_table(photo: np.ndarray, repeat: int) -> list[str]:
    """Plan time, run time and peak memory of each case, and the peer's time."""
    lines = [
        "| case | image | plan ms | run ms | peak MiB (out + extra) | peer | peer ms | ours/peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in cases(photo, np.random.default_rng(0)):
        x, weight, args = case["x"], case["weight"], case["args"]
        plans, runs = [], []
        for _ in range(max(1, repeat // 2)):
            start = time.perf_counter()
            conv = Convolution(x, weight, **args)
            planned = time.perf_counter()
            conv.run()
            plans.append(planned - start)
            runs.append(time.perf_counter() - planned)
        tracemalloc.start()
        Convolution(x, weight, **args).run()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        out_mib = np.prod(conv.shape) * 4 / 2**20
        plan_ms, run_ms = np.median(plans) * 1e3, np.median(runs) * 1e3
        peer_name, peer = case["peer"]
        peer_cells = ["—", "—"]
        if peer is not None:
            peer()
            times = []
            for _ in range(max(1, repeat // 2)):
                start = time.perf_counter()
                peer()
                times.append(time.perf_counter() - start)
            peer_ms = np.median(times) * 1e3
            peer_cells = [f"{peer_ms:.0f}", f"{(plan_ms + run_ms) / peer_ms:.2f}"]
        image = "×".join(map(str, x.shape))
        lines.append(
            f"| {case['name']} | {image} | {plan_ms:.0f} | {run_ms:.0f} | {peak:.0f} ({out_mib:.0f} + "
            f"{peak - out_mib:.0f}) | {peer_name} | " + " | ".join(peer_cells) + " |"
        )
    return lines
