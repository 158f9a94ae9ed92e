"""The performance suite: convfilter's engine against OpenCV, PyTorch and SciPy, and the whole
command against libvips and ImageMagick, all measured in this run on this machine.

    .venv/bin/python benchmarks/run.py                 # 12 MP (4000×3000), the full suite
    .venv/bin/python benchmarks/run.py --size 640x480  # a quick look
    .venv/bin/python benchmarks/run.py --tables depthwise  # depthwise vs OpenCV, 12 and 48 MP

Times are medians of several runs; ratios (ours / theirs, below 1 is faster) compare numbers
measured side by side, which is what stays meaningful on a shared, noisy machine. A reference
that would take minutes at full size (PyTorch on large depthwise kernels, SciPy) is timed on a
band of the image and scaled up by the band's share of the rows; the table says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
from depthwise import depthwise_table  # beside this script, which Python puts on the path
from PIL import Image as PILImage
from planning import planning_table

from convfilter import convolve

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("engine", "depthwise", "planning", "command", "batch")
SLOW_SECONDS = 3.0  # a reference slower than this per run is timed on a band of rows


def test_photo(width: int, height: int, folder: Path) -> tuple[np.ndarray, Path]:
    """The test photo, made the same way every time: the astronaut sample resized (bicubic) to
    ``width``×``height``, as RGB pixels and as a quality-95 JPEG file."""
    bgr = cv2.resize(
        cv2.imread(str(ROOT / "samples" / "astronaut.png")), (width, height), interpolation=cv2.INTER_CUBIC
    )
    path = folder / f"photo-{width}x{height}.jpg"
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return np.ascontiguousarray(bgr[:, :, ::-1]), path


def median_seconds(run, repeat: int) -> float:
    """Median wall time of ``repeat`` calls (one warm-up call first)."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_pair(first, second, repeat: int, budget: float = 2.0) -> tuple[float, float]:
    """Median wall times of two calls timed in alternation, so that a slow spell of a shared
    machine lands on both alike: at least ``repeat`` rounds, more (up to 50) while the rounds
    take less than ``budget`` seconds, so that fast cases get steadier medians."""
    first(), second()
    a, b = [], []
    begin = time.perf_counter()
    while len(a) < repeat or (len(a) < 50 and time.perf_counter() - begin < budget):
        for run, times in ((first, a), (second, b)):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def timed(band_run, rows: int, repeat: int) -> tuple[float, str]:
    """Median seconds of ``band_run(rows)``; if one call would take longer than SLOW_SECONDS
    (judged from a band of an eighth of the rows), time the band and scale it up."""
    band = min(rows, max(64, rows // 8))  # at least 64 rows, so a 31×31 kernel fits
    start = time.perf_counter()
    band_run(band)
    estimate = (time.perf_counter() - start) * rows / band
    if estimate <= SLOW_SECONDS:
        return median_seconds(lambda: band_run(rows), repeat), ""
    seconds = median_seconds(lambda: band_run(band), max(1, min(repeat, 3)))
    return seconds * rows / band, f"est. from a {band}-row band"


def peak_mib(run) -> float:
    """Peak bytes NumPy and Python allocated during ``run()``, in MiB."""
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def cases(rng: np.random.Generator) -> list[dict]:
    """The engine cases: name, weight [O, C/g, kh, kw], groups, padding mode."""
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    edge = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32) / 3
    g = cv2.getGaussianKernel(15, 2.5, cv2.CV_32F)
    return [
        {"name": "depthwise 3×3 (sharpen)", "weight": np.broadcast_to(sharpen, (3, 1, 3, 3)), "groups": 3},
        {
            "name": "depthwise 5×5 (random)",
            "weight": np.broadcast_to(rng.standard_normal((5, 5)), (3, 1, 5, 5)),
            "groups": 3,
        },
        {"name": "dense 3→3 3×3 (edge)", "weight": np.broadcast_to(edge, (3, 3, 3, 3)), "groups": 1},
        {"name": "dense 3→3 3×3 (81 random)", "weight": rng.standard_normal((3, 3, 3, 3)), "groups": 1},
        {"name": "depthwise 15×15 Gaussian", "weight": np.broadcast_to(g @ g.T, (3, 1, 15, 15)), "groups": 3},
        {
            "name": "depthwise 31×31 random",
            "weight": np.broadcast_to(rng.standard_normal((31, 31)), (3, 1, 31, 31)),
            "groups": 3,
        },
    ]


def opencv_conv(x: np.ndarray, weight: np.ndarray, groups: int) -> np.ndarray:
    """The same convolution with cv2.filter2D (reflect border, float32 out): one call for a
    depthwise kernel shared by all channels, one call per (out, in) pair otherwise."""
    if groups == x.shape[2] and np.all(weight == weight[0]):
        return cv2.filter2D(
            x, cv2.CV_32F, np.ascontiguousarray(weight[0, 0], np.float32), borderType=cv2.BORDER_REFLECT_101
        )
    out = np.zeros((*x.shape[:2], weight.shape[0]), np.float32)
    for o in range(weight.shape[0]):
        for c in range(weight.shape[1]):
            k = np.ascontiguousarray(weight[o, c], np.float32)
            out[..., o] += cv2.filter2D(x[..., c], cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT_101)
    return out


def scipy_conv(x: np.ndarray, weight: np.ndarray, groups: int):
    """scipy.ndimage.correlate per channel (depthwise only), or None where it has no such call."""
    try:
        import scipy.ndimage as ndi
    except ImportError:
        return None
    if groups != x.shape[2] or not np.all(weight == weight[0]):
        return None
    kernel = np.asarray(weight[0, 0], np.float32)
    return lambda rows: [ndi.correlate(x[:rows, :, c].astype(np.float32), kernel, mode="mirror") for c in range(3)]


def torch_conv(x: np.ndarray, weight: np.ndarray, groups: int):
    """torch.nn.functional.conv2d on the CPU (reflect padding), or None without PyTorch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    kh, kw = weight.shape[2:]
    w = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
    pads = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)

    def run(rows: int):
        with torch.no_grad():
            t = torch.from_numpy(x[:rows]).permute(2, 0, 1)[None].float()
            return F.conv2d(F.pad(t, pads, mode="reflect"), w, groups=groups)

    return run


def engine_table(x: np.ndarray, repeat: int) -> list[str]:
    """Time every case with each library and return the table's lines."""
    rows = x.shape[0]
    lines = [
        "| case | ours ms | peak MiB (out + extra) | OpenCV ms | ours/OpenCV | PyTorch ms | ours/PyTorch "
        "| SciPy ms | ours/SciPy | max diff vs OpenCV (relative) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases(np.random.default_rng(0)):
        weight, groups = case["weight"], case["groups"]

        def ours_run(weight=weight, groups=groups):
            return convolve(x, weight, groups=groups, padding_mode="reflect")

        def opencv_run(weight=weight, groups=groups):
            return opencv_conv(x, weight, groups)

        ours, cv = median_pair(ours_run, opencv_run, repeat)
        out_mib = x.shape[0] * x.shape[1] * weight.shape[0] * 4 / 2**20
        peak = peak_mib(ours_run)
        expected = opencv_run()
        diff = np.abs(ours_run() - expected) / np.abs(expected).max()
        cells = [case["name"], f"{ours * 1e3:.0f}", f"{peak:.0f} ({out_mib:.0f} + {peak - out_mib:.0f})",
                 f"{cv * 1e3:.0f}", f"{ours / cv:.2f}"]  # fmt: skip
        for reference in (torch_conv(x, weight, groups), scipy_conv(x, weight, groups)):
            if reference is None:
                cells += ["—", "—"]
                continue
            seconds, note = timed(reference, rows, repeat)
            cells += [f"{seconds * 1e3:.0f}" + ("*" if note else ""), f"{ours / seconds:.3f}"]
        cells.append(f"{diff.max():.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    if any("*" in line for line in lines[2:]):
        lines.append("")
        lines.append("\\* too slow to repeat at full size: timed on a band of rows and scaled to the whole image.")
    return lines


def run_once(argv: list[str]) -> tuple[float, float | None]:
    """Wall seconds of one run of a command, and its peak RSS in MiB.

    The peak comes from GNU time when it is installed: a child forked from this (large) process
    would report this process's size as its own high-water mark.
    """
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    with tempfile.NamedTemporaryFile("r") as report:
        wrapped = [gnu_time, "-f", "%M", "-o", report.name, *argv] if gnu_time else argv
        start = time.perf_counter()
        done = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode().strip()}")
        return seconds, (int(report.read().split()[-1]) / 1024 if gnu_time else None)


def run_alternating(commands: list[list[str]], repeat: int) -> list[tuple[float, float | None]]:
    """Median wall seconds of each command over ``repeat`` runs (after one more to warm the
    caches) and its largest peak RSS in MiB, the commands timed in alternation (a round runs each
    once), so that a slow spell of a shared machine lands on all alike."""
    runs: list[list[tuple[float, float | None]]] = [[] for _ in commands]
    for _ in range(repeat + 1):
        for argv, results in zip(commands, runs, strict=True):
            results.append(run_once(argv))
    summary = []
    for results in runs:
        peaks = [peak for _, peak in results[1:] if peak is not None]
        summary.append((statistics.median(seconds for seconds, _ in results[1:]), max(peaks) if peaks else None))
    return summary


def byte_compile() -> None:
    """Compile convfilter's modules as ``pip install`` does, so that a timed command does not
    compile them on every start (as it would where PYTHONDONTWRITEBYTECODE is set)."""
    import compileall

    compileall.compile_dir(ROOT / "convfilter", quiet=1)


MASKS = {  # vips conv masks: width height scale offset, then the rows
    "edge": "3 3 3 0\n-1 -1 -1\n-1 8 -1\n-1 -1 -1\n",
    "sharpen": "3 3 1 0\n0 -1 0\n-1 5 -1\n0 -1 0\n",
}
MAGICK = {  # ImageMagick's options for the same jobs
    "edge": ["-define", "convolve:scale=0.3333", "-morphology", "Convolve", "3x3: -1,-1,-1 -1,8,-1 -1,-1,-1"],
    "sharpen": ["-morphology", "Convolve", "3x3: 0,-1,0 -1,5,-1 0,-1,0"],
    "gaussian": ["-gaussian-blur", "0x2"],
}


def command_jobs(small: Path, large: Path, folder: Path) -> list[tuple[str, Path, list]]:
    """The whole-command jobs: a title, the input, and (name, argv) for convfilter first and each
    installed peer after it. JPEGs are written at quality 95 by all, TIFFs with LZW and the
    horizontal predictor (OpenCV's TIFF default) by all."""
    convfilter = str(Path(sys.executable).parent / "convfilter")
    vips = shutil.which("vips")
    magick = shutil.which("convert-im6.q16") or shutil.which("magick")
    tiff = large.with_suffix(".tif")
    cv2.imwrite(str(tiff), cv2.imread(str(large)))
    for name, mask in MASKS.items():
        (folder / f"{name}.mat").write_text(mask)

    def out(tool: str, suffix: str, options: str = "") -> str:
        return str(folder / f"{tool}{suffix}") + options

    jobs = []
    for kernel, params, source, peer in (
        ("edge", [], small, "conv"),
        ("sharpen", [], large, "conv"),
        ("gaussian", ["-p", "sigma=2"], large, "gaussblur"),
        ("identity", [], tiff, "copy"),
    ):
        suffix = source.suffix
        quality = "[Q=95]" if suffix == ".jpg" else "[compression=lzw,predictor=horizontal]"
        commands = [(f"convfilter {' '.join([kernel, *params])}",
                     [convfilter, kernel, *params, str(source), "-o", out("ours", suffix), "-q"])]  # fmt: skip
        if vips:
            extra = {"conv": [str(folder / f"{kernel}.mat")], "gaussblur": ["2"], "copy": []}[peer]
            commands.append((f"vips {peer}", [vips, peer, str(source), out("vips", suffix, quality), *extra]))
        if magick:
            options = MAGICK.get(kernel, [])
            encoding = ["-quality", "95"] if suffix == ".jpg" else ["-compress", "lzw", "-define", "tiff:predictor=2"]
            commands.append(("ImageMagick", [magick, str(source), *options, *encoding, out("magick", suffix)]))
        jobs.append((kernel, source, commands))
    return jobs


def command_table(small: Path, large: Path, folder: Path, repeat: int) -> list[str]:
    """Whole commands against libvips and ImageMagick where installed: wall time, peak RSS, and
    the bound convfilter aims for (the decoded input and output, plus 100 MiB)."""
    lines = [
        "| job | command | wall s | peak RSS MiB | input + output + 100 MiB | convfilter / it |",
        "|---|---|---|---|---|---|",
    ]
    for kernel, source, commands in command_jobs(small, large, folder):
        with PILImage.open(source) as image:  # the header only
            width, height = image.size
        decoded = width * height * 3 / 2**20
        job = f"{kernel}, {width}×{height} {source.suffix[1:].upper()}"
        measured = run_alternating([argv for _, argv in commands], repeat)
        results = [(name, *numbers) for (name, _), numbers in zip(commands, measured, strict=True)]
        ours = results[0][1]
        for name, seconds, rss in results:
            bound = f"{2 * decoded + 100:.0f}" if name.startswith("convfilter") else ""
            cells = [job, name, f"{seconds:.2f}", "—" if rss is None else f"{rss:.0f}", bound, f"{ours / seconds:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    missing = [tool for tool, found in (("libvips (Debian: libvips-tools)", shutil.which("vips")),
               ("ImageMagick (Debian: imagemagick)", shutil.which("convert-im6.q16") or shutil.which("magick")))
               if not found]  # fmt: skip
    if missing:
        lines += ["", "Not installed, so not compared: " + ", ".join(missing) + "."]
    return lines


def batch_photos(folder: Path, count: int, width: int, height: int) -> Path:
    """``count`` different JPEG photos of ``width``×``height``, made the same way every time from
    the samples (crops at shifting offsets, resized)."""
    sources = [cv2.imread(str(ROOT / "samples" / name)) for name in ("astronaut.png", "coffee.png", "cat.jpeg")]
    photos = folder / "photos"
    photos.mkdir()
    for i in range(count):
        source = sources[i % len(sources)]
        h, w = source.shape[:2]
        dy, dx = (i * 7) % (h // 4), (i * 11) % (w // 4)
        crop = source[dy : dy + 3 * h // 4, dx : dx + 3 * w // 4]
        photo = cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(photos / f"photo-{i:03}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return photos


def batch_table(folder: Path, count: int, width: int, height: int, repeat: int) -> list[str]:
    """A folder of JPEG photos through the 3×3 edge kernel: convfilter's batch against ImageMagick's
    mogrify and vips in xargs -P (as many processes as cores), where installed."""
    photos = batch_photos(folder, count, width, height)
    mask = folder / "edge.mat"
    mask.write_text("3 3 3 0\n-1 -1 -1\n-1 8 -1\n-1 -1 -1\n")
    cores = str(os.cpu_count() or 1)
    convfilter = Path(sys.executable).parent / "convfilter"
    commands = [
        ("convfilter edge DIR -o OUT", [str(convfilter), "edge", str(photos), "-o", str(folder / "ours"), "-q"])
    ]
    mogrify = shutil.which("mogrify-im6.q16") or shutil.which("mogrify")
    vips = shutil.which("vips")
    missing = []
    if mogrify:
        (folder / "mogrify").mkdir()
        morphology = "-define convolve:scale=0.3333 -morphology Convolve '3x3: -1,-1,-1 -1,8,-1 -1,-1,-1'"
        script = f"'{mogrify}' -path '{folder / 'mogrify'}' {morphology} '{photos}'/*.jpg"
        commands.append(("mogrify -path OUT -morphology Convolve …", ["sh", "-c", script]))
    else:
        missing.append("ImageMagick's mogrify (Debian: imagemagick)")
    if vips:
        (folder / "vips").mkdir()
        script = (
            f"cd '{photos}' && ls *.jpg | xargs -P {cores} -I{{}} '{vips}' conv {{}} '{folder / 'vips'}/{{}}' '{mask}'"
        )
        commands.append((f"vips conv in xargs -P{cores}", ["sh", "-c", script]))
    else:
        missing.append("libvips (Debian: libvips-tools)")
    measured = run_alternating([argv for _, argv in commands], repeat)
    results = [(name, seconds) for (name, _), (seconds, _) in zip(commands, measured, strict=True)]
    ours = results[0][1]
    lines = [
        f"| command ({count} photos, {width}×{height} JPEG) | wall s | files/s | convfilter / it |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {seconds:.2f} | {count / seconds:.0f} | {ours / seconds:.2f} |" for name, seconds in results]
    if missing:
        lines += ["", "Not installed, so not compared: " + ", ".join(missing) + "."]
    return lines


def machine() -> str:
    """One line on the machine and the library versions the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}", f"OpenCV {cv2.__version__}"]
    for module in ("torch", "scipy"):
        with contextlib.suppress(ImportError):
            versions.append(f"{module} {__import__(module).__version__}")
    return f"{cpu}, {os.cpu_count()} cores; " + ", ".join(versions)


def main(argv: list[str] | None = None) -> None:
    """Run the suite and print its tables as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="4000x3000", help="test photo size WIDTHxHEIGHT (default 12 MP)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--batch", default="100x1024x768", help="batch photos COUNTxWIDTHxHEIGHT")
    parser.add_argument(
        "--tables", default=",".join(TABLES), help=f"which tables, comma-separated (default all: {','.join(TABLES)})"
    )
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    tables = set(args.tables.split(","))
    if tables - set(TABLES):
        parser.error(f"--tables takes {', '.join(TABLES)}, got {args.tables!r}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        x, photo = test_photo(width, height, folder)
        print(f"Machine: {machine()}")
        print(f"Test photo: samples/astronaut.png resized to {width}×{height}, RGB uint8 in, float32 out.\n")
        if "engine" in tables:
            print("\n".join(engine_table(x, args.repeat)))
        if "depthwise" in tables:
            # the photo, and the same photo at four times the pixels (48 MP beside 12 MP)
            larger = test_photo(2 * width, 2 * height, folder)[0]
            print("\nDepthwise filters against the best OpenCV call for each (reflect borders, float32 out):\n")
            print("\n".join(depthwise_table([x, larger], args.repeat)))
            del larger
        if "planning" in tables:
            print("\nPlanning, and kernels far larger than usual (the photo, reflect borders):\n")
            print("\n".join(planning_table(x, args.repeat)))
        if {"command", "batch"} & tables:
            byte_compile()
        if "command" in tables:
            large = test_photo(2 * width, 2 * height, folder)[1]
            print(f"\nWhole commands ({width}×{height} and {2 * width}×{2 * height}), medians, peak RSS:\n")
            print("\n".join(command_table(photo, large, folder, args.repeat)))
        if "batch" in tables:
            count, batch_width, batch_height = (int(v) for v in args.batch.lower().split("x"))
            print("\nA folder of photos, 3×3 edge, medians of 3 runs:\n")
            print("\n".join(batch_table(folder, count, batch_width, batch_height, min(args.repeat, 3))))


if __name__ == "__main__":
    main()
