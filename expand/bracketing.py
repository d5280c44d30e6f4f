"""Finding the first grid level whose FLOPs reach a goal, in as few fvcore counts as possible.

A count of a large spec takes a second or more, and a search makes many: each
step's six candidates, a contraction between two steps, a baseline's cap per
factor. FLOPs never fall as a factor grows, so the answer is one level on a
grid; where the search starts changes only how many counts it takes.
"""

from __future__ import annotations

from typing import Callable, Optional


def bracket(reaches: Callable[[int], bool], start: int, top: int, guess: int) -> tuple[int, int]:
    """(lo, hi): hi the smallest level in (start, top] that reaches, lo the one below it.

    Gallops from ``guess`` (down if it reaches, up if not), then bisects; raises
    LookupError when no level up to ``top`` reaches."""
    g = min(max(guess, start + 1), top)
    if reaches(g):
        lo, hi, jump = start, g, 1
        while hi - jump > start:
            probe = hi - jump
            if not reaches(probe):
                lo = probe
                break
            hi, jump = probe, jump * 2
    else:
        lo, jump = g, 1
        while True:
            if lo >= top:
                raise LookupError
            probe = min(lo + jump, top)
            if reaches(probe):
                hi = probe
                break
            lo, jump = probe, jump * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def crossing(lo: float, f_lo: float, hi: float, f_hi: float, goal: float, exponent: float) -> Optional[float]:
    """Where ``a + b * level ** exponent`` through (lo, f_lo) and (hi, f_hi) meets ``goal``.

    Only the stem and head do not grow along an axis, so FLOPs are close to
    this two-point fit: a search that starts at the fitted level needs about
    two counts to confirm it, where galloping from a pure power law took up to
    ten (an X3D-L depth step: six counts of 2-3 s each). None when the two
    points do not fit a growing curve.
    """
    if hi == lo or f_hi <= f_lo:
        return None
    b = (f_hi - f_lo) / (hi ** exponent - lo ** exponent)
    x = (goal - (f_lo - b * lo ** exponent)) / b
    return x ** (1.0 / exponent) if x > 0 else None
