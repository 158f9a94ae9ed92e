"""Channel arithmetic shared by the engine, kernels and the report: which groups are valid.

Imports nothing heavy, so that ``convfilter list``, ``params`` and ``--help`` stay quick.
"""

from __future__ import annotations

import operator

from .errors import UsageError

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def divisors(n: int) -> list[int]:
    """Return the positive divisors of ``n`` in increasing order.

    >>> divisors(12)
    [1, 2, 3, 4, 6, 12]
    """
    return [d for d in range(1, n + 1) if n % d == 0]


def common_divisors(a: int, b: int) -> list[int]:
    """Return the numbers that divide both ``a`` and ``b``: the valid ``groups`` for a layer.

    >>> common_divisors(3, 3)
    [1, 3]
    """
    return [d for d in divisors(a) if b % d == 0]


def check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    """Raise a ``UsageError`` unless ``groups`` divides both channel counts."""
    try:
        valid_type = not isinstance(groups, bool) and operator.index(groups) == groups
    except TypeError:
        valid_type = False
    if not valid_type or groups < 1:
        raise UsageError(f"groups must be a positive integer, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        valid = ", ".join(map(str, common_divisors(in_channels, out_channels)))
        raise UsageError(
            f"groups={groups} must divide both the {in_channels} input and {out_channels} output channels; "
            f"try one of {valid}"
        )
