"""Depthwise filters against the best OpenCV call for each: every OpenCV call that computes the
same float32 result (8-bit input read directly, or converted to float32 first) is timed in the
same alternating rounds as ours, and the fastest of them is the one compared with. Run at two
sizes, it also shows whether the time per pixel holds as the image grows."""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from convfilter.engine import Convolution

REFLECT = cv2.BORDER_REFLECT_101


def _gaussian(size: int, sigma: float) -> np.ndarray:
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    return g @ g.T


def cases(x: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """Name, spatial kernel, and the OpenCV calls that compute the same result."""
    f = np.float32
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], f)
    random5 = rng.standard_normal((5, 5)).astype(f)
    random31 = rng.standard_normal((31, 31)).astype(f)
    g13 = cv2.getGaussianKernel(13, 2, cv2.CV_32F)

    def filter2d(kernel):
        return {
            "filter2D": lambda: cv2.filter2D(x, cv2.CV_32F, kernel, borderType=REFLECT),
            "filter2D (float32 in)": lambda: cv2.filter2D(x.astype(f), cv2.CV_32F, kernel, borderType=REFLECT),
        }

    return [
        {"name": "sharpen 3×3", "kernel": sharpen, "peers": filter2d(sharpen)},
        {"name": "random 5×5", "kernel": random5, "peers": filter2d(random5)},
        {"name": "Gaussian σ=2, 13×13", "kernel": _gaussian(13, 2), "peers": {
            "sepFilter2D": lambda: cv2.sepFilter2D(x, cv2.CV_32F, g13, g13, borderType=REFLECT),
            "GaussianBlur (float32 in)": lambda: cv2.GaussianBlur(x.astype(f), (13, 13), 2, borderType=REFLECT),
        }},
        {"name": "box 31×31", "kernel": np.full((31, 31), 1 / 961), "peers": {
            "boxFilter": lambda: cv2.boxFilter(x, cv2.CV_32F, (31, 31), borderType=REFLECT),
            "blur (float32 in)": lambda: cv2.blur(x.astype(f), (31, 31), borderType=REFLECT),
        }},
        {"name": "random 31×31", "kernel": random31, "peers": filter2d(random31)},
    ]  # fmt: skip


def medians(calls: dict, repeat: int, budget: float = 3.0) -> dict:
    """Median wall seconds of each call, timed in rounds that run every call once in turn (so a
    slow spell of a shared machine lands on all alike): at least ``repeat`` rounds, more (up to
    25) while they take less than ``budget`` seconds in all. One warm-up round first."""
    for run in calls.values():
        run()
    times = {name: [] for name in calls}
    begin = time.perf_counter()
    rounds = 0
    while rounds < repeat or (rounds < 25 and time.perf_counter() - begin < budget):
        for name, run in calls.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
        rounds += 1
    return {name: statistics.median(t) for name, t in times.items()}


def depthwise_table(photos: list[np.ndarray], repeat: int) -> list[str]:
    """Each case on each photo: ours, the best OpenCV call, their ratio, the largest difference
    (relative to the largest value), and the time per megapixel."""
    lines = [
        "| case | size | plan | ours ms | best OpenCV call | its ms | ours/best | ours ms/MP | max diff (relative) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in photos:
        height, width, channels = x.shape
        megapixels = height * width / 1e6
        for case in cases(x, np.random.default_rng(0)):
            weight = np.broadcast_to(case["kernel"], (channels, 1, *case["kernel"].shape))
            conv = Convolution(x, weight, groups=channels, padding_mode="reflect")
            plan = type(getattr(conv.plan, "spatial", conv.plan)).__name__
            times = medians({"ours": conv.run, **case["peers"]}, repeat)
            best = min(case["peers"], key=times.get)
            expected = case["peers"][best]()
            diff = float(np.abs(conv.run() - expected).max() / np.abs(expected).max())
            ours = times["ours"]
            cells = [case["name"], f"{width}×{height}", plan, f"{ours * 1e3:.3g}", best, f"{times[best] * 1e3:.3g}",
                     f"{ours / times[best]:.2f}", f"{ours * 1e3 / megapixels:.1f}", f"{diff:.1e}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return lines
