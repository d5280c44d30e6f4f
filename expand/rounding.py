"""Every rounding rule of the project, in one place.

Two kinds of rounding exist, and mixing them up changes FLOP counts:

* architectural rounding, exactly as SlowFast does it (channel widths,
  block counts, inner widths, SE widths), which turns the continuous factors of
  an :class:`~expand.spec.ArchSpec` into the integers a network needs;
* grid rounding of the search axes (frames and strides are integers, crops a
  multiple of a divisor, multipliers on a fixed decimal grid), which decides
  which factor values the search may visit at all.
"""

from __future__ import annotations

import math

# The smallest step that two multipliers may differ by. Factors are stored
# rounded to this many decimals so that 0.1 + 0.2 style float noise never
# creates two specs that name the same network.
FACTOR_DECIMALS = 4

# Crops must be a multiple of this. 4 admits every published X3D train crop
# (160, 224, 312, 356); the search spaces round crops to a coarser divisor.
CROP_DIVISOR = 4

# Guard against ceil(2.2 * 5) == 12 from float error: SlowFast gets 11 there
# because 2.2 * 5 happens to round to exactly 11.0 in binary; any product that
# is an integer up to this tolerance is treated as that integer.
_CEIL_TOLERANCE = 1e-9


def round_width(width: float, multiplier: float, divisor: int = 1) -> int:
    """SlowFast's ``round_width`` (slowfast/models/utils.py).

    Rounds ``width * multiplier`` to the nearest multiple of ``divisor``, never
    below one divisor, and adds one divisor if that fell below 90% of the exact
    value.
    """
    scaled = width * multiplier
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def round_repeats(repeats: int, multiplier: float) -> int:
    """SlowFast's ``_round_repeats``: ``ceil(multiplier * repeats)``."""
    if not multiplier:
        return repeats
    return int(math.ceil(multiplier * repeats - _CEIL_TOLERANCE))


def inner_width(width: int, bottleneck: float) -> int:
    """Inner (bottleneck) channels of a block: ``int(BOTTLENECK_FACTOR * w_out)``."""
    return int(bottleneck * width + _CEIL_TOLERANCE)


def se_width(channels: int, ratio: float, divisor: int = 8) -> int:
    """SlowFast's ``SE._round_width``: round_width with divisor (and minimum) 8."""
    return round_width(channels, ratio, divisor)


def clean_factor(value: float) -> float:
    """A multiplier as stored in a spec: rounded to :data:`FACTOR_DECIMALS`."""
    return round(float(value), FACTOR_DECIMALS)


def format_factor(value: float) -> str:
    """2.0 -> '2.0', 2.25 -> '2.25', 1.4100 -> '1.41' (for names and tables)."""
    text = f"{value:.{FACTOR_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
