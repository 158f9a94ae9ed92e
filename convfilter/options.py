"""Every choice convfilter accepts, spelled once — padding modes, ranges, alpha policies, combine
rules, mixes, output formats — the one parser of "an int or a pair of ints", and the option
groups that ``filter`` and ``show`` share.

The command line, the kernel format and the engine all read their choices from here. Nothing
heavy is imported: Click only inside the decorators, which only the command line applies.
"""

from __future__ import annotations

import numbers

from .errors import UsageError

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
NO_PADDING = "valid"  # the command line's --padding valid: no padding at all, a smaller output
BORDERS = (*PADDING_MODES, NO_PADDING)
RANGES = ("clip", "abs", "normalize", "offset")
ALPHAS = ("keep", "filter")
COMBINES = ("none", "magnitude", "max", "sum")
MIXES = ("depthwise", "dense")
# output extension -> the format written (the writers are in imageio.py)
FORMATS = {
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "webp": "webp",
    "bmp": "bmp",
    "tif": "tiff",
    "tiff": "tiff",
    "npy": "npy",
}
# the most rows or columns a format holds (libjpeg's and libwebp's limits)
LARGEST_SIDE = {"jpeg": 65500, "webp": 16383}


def int_pair(value: object, single: bool = True) -> tuple[int, int] | None:
    """``(y, x)`` from an int or a pair of ints (or, with ``single``, a one-element sequence, as
    ``nn.Conv2d`` takes ``(2,)`` for ``(2, 2)``); None for anything else. Bounds are the caller's.

    >>> int_pair(3), int_pair((3,)), int_pair([1, 2]), int_pair((3,), single=False), int_pair(1.5)
    ((3, 3), (3, 3), (1, 2), None, None)
    """

    def whole(v: object) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if whole(value):
        return int(value), int(value)
    if not isinstance(value, (tuple, list)) or not all(whole(v) for v in value):
        return None
    if len(value) == 2:
        return int(value[0]), int(value[1])
    if len(value) == 1 and single:
        return int(value[0]), int(value[0])
    return None


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    """``-p NAME=VALUE`` options as a mapping (values are checked by the generator)."""
    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"option -p: expected NAME=VALUE, got {item!r}")
        params[name.strip()] = value.strip()
    return params


def parse_mix(groups: int | None, depthwise: bool, dense: bool) -> str | int | None:
    """One of ``-g N``, ``--depthwise``, ``--dense`` (or none of them) as a kernel's mix."""
    if sum(bool(x) for x in (groups, depthwise, dense)) > 1:
        raise UsageError("options --groups, --depthwise and --dense exclude each other; give one")
    return groups or ("depthwise" if depthwise else "dense" if dense else None)


def param_option(command):
    """``-p NAME=VALUE``, repeatable: a generator's parameter."""
    import click

    return click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                        help="A generator parameter.")(command)  # fmt: skip


def mix_options(command):
    """``-g/--groups N``, ``--depthwise``, ``--dense``: how a kernel spreads over the channels."""
    import click

    for option in reversed(
        [
            click.option("-g", "--groups", type=click.IntRange(min=1),
                         help="Split the channels into G groups (PyTorch's groups)."),
            click.option("--depthwise", is_flag=True, help="Filter each channel on its own (groups = channels)."),
            click.option("--dense", is_flag=True, help="Every output channel sums all input channels (groups = 1)."),
        ]
    ):  # fmt: skip
        command = option(command)
    return command


def complete_kernel(ctx, param, text: str) -> list:
    """Shell completion of a KERNEL argument (``library.complete_kernel``, imported only when a
    shell asks, so that the command starts quickly)."""
    from .library import complete_kernel as complete

    return complete(ctx, param, text)


def parse_padding(value: str | None) -> str | int | tuple[int, int] | None:
    """``--padding``: a mode of ``BORDERS``, or an explicit size as ``nn.Conv2d`` takes it: ``N``
    or ``H,W`` (whole numbers ≥ 0)."""
    if value is None or value in BORDERS:
        return value
    parts = value.split(",")
    if 1 <= len(parts) <= 2 and all(p.strip().isdigit() and p.strip().isascii() and len(p) <= 12 for p in parts):
        sizes = tuple(int(part) for part in parts)
        return sizes[0] if len(sizes) == 1 else sizes
    raise UsageError(f"option --padding: {value!r} is not one of {', '.join(BORDERS)}, nor a size N or H,W")
