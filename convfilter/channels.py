"""Channel arithmetic shared by the engine, kernels and the report: which groups are valid.

Imports nothing heavy, so that ``convfilter list``, ``params`` and ``--help`` stay quick.
"""

from __future__ import annotations

import math
import operator

from .errors import UsageError

# The most channels a layer may count: listing the divisors of up to 2^40 takes a second at most.
MAX_CHANNELS = 2**40


def divisors(n: int) -> list[int]:
    """Return the positive divisors of ``n`` in increasing order, in ``√n`` steps.

    >>> divisors(12), divisors(1), divisors(49)
    ([1, 2, 3, 4, 6, 12], [1], [1, 7, 49])
    """
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def common_divisors(a: int, b: int) -> list[int]:
    """Return the numbers that divide both ``a`` and ``b``: the valid ``groups`` for a layer.

    >>> common_divisors(3, 3), common_divisors(12, 18)
    ([1, 3], [1, 2, 3, 6])
    """
    return divisors(math.gcd(a, b))


def listing(values: list[int], most: int = 10) -> str:
    """``values`` joined by commas, the middle left out past ``most`` of them.

    >>> listing([1, 2, 3]), listing(list(range(1, 101)), most=4)
    ('1, 2, 3', '1, 2, 3, …, 100 (100 in all)')
    """
    if len(values) <= most:
        return ", ".join(map(str, values))
    return f"{', '.join(map(str, values[: most - 1]))}, …, {values[-1]} ({len(values)} in all)"


def check_groups(in_channels: int, out_channels: int, groups: int, error: type[UsageError] = UsageError) -> None:
    """Raise ``error`` unless ``groups`` divides both channel counts."""
    try:
        valid_type = not isinstance(groups, bool) and operator.index(groups) == groups
    except TypeError:
        valid_type = False
    if not valid_type or groups < 1:
        raise error(f"groups must be a positive integer, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        valid = listing(common_divisors(in_channels, out_channels))
        raise error(
            f"groups={groups} must divide both the {in_channels} input and {out_channels} output channels; "
            f"try one of {valid}"
        )
