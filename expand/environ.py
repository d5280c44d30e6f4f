"""Settings read from the environment, each checked: a bad value is an exit-2 line naming the variable.

They were parsed at import (``float(os.environ[...])``), so ``X3D_EXPAND_HEARTBEAT_S=abc``
failed every command, ``presets`` included, with a traceback, and
``X3D_EXPAND_COUNT_MEMORY_GB=0.5`` with "internal error: ValueError". The CLI checks them
all before a command runs (:func:`check_environment`); the library reads them when used.
"""

from __future__ import annotations

import math
import os

from expand.errors import InputError


def env_float(name: str, default: float, what: str, high: float) -> float:
    """``name`` as a number in (0, ``high``], or ``default`` when unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= high:
        raise InputError(f"{name}={text!r}: must be a number > 0 and at most {high:g} ({what})")
    return value


def heartbeat_s() -> float:
    """Seconds between the "still running" lines of a long item (X3D_EXPAND_HEARTBEAT_S, default 15)."""
    return env_float("X3D_EXPAND_HEARTBEAT_S", 15.0, "seconds between a running item's lines", 86400)


def count_memory_limit() -> float:
    """Bytes fvcore's trace may take before a count is refused (X3D_EXPAND_COUNT_MEMORY_GB, default 6)."""
    return env_float("X3D_EXPAND_COUNT_MEMORY_GB", 6.0, "GiB a FLOP count may take", 1e6) * 2**30


def check_environment() -> None:
    """Every setting above, so a bad one stops a command before it starts (exit 2)."""
    heartbeat_s()
    count_memory_limit()


__all__ = ["env_float", "heartbeat_s", "count_memory_limit", "check_environment"]
