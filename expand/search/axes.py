"""The six expansion axes: one step forward, or a contraction to a FLOP target.

Each axis is a monotone map from an integer *level* to a spec, relative to a
parent: FLOPs never decrease as the level grows, so the step ("the smallest
level whose GFLOPs reach factor x the parent's") and the contraction ("the
largest level between parent and child whose GFLOPs stay under the target")
are both binary searches over levels, and each FLOP count is cached.

How the paper's operations map onto (frames, stride, crop, width, bottleneck,
depth):

* **fast** (X-Fast): more frames over the same clip duration — frames grow to
  level L, stride becomes round(parent.frames x parent.stride / L). Not
  possible once the stride is at its lower bound (the source frame rate).
* **temporal** (X-Temporal): a longer clip at a higher frame rate — frames grow
  to L and the stride shrinks by sqrt(L / parent.frames), so duration and rate
  each take half of the growth (in log terms). With the stride at its bound,
  only the duration grows.
* **spatial** (X-Spatial): crop = L x grid.crop.
* **width**, **bottleneck**, **depth**: the factor = L x its grid step.

fast and temporal change the same FLOPs (the network never sees the stride),
so at every step they are candidates of equal cost that differ in what the
clip covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from expand.config import AXES, SearchSpace
from expand.errors import SpecError
from expand.rounding import clean_factor, format_factor
from expand.spec import ArchSpec

PAPER_NAMES = {
    "fast": "X-Fast",
    "temporal": "X-Temporal",
    "spatial": "X-Spatial",
    "width": "X-Width",
    "bottleneck": "X-Bottleneck",
    "depth": "X-Depth",
}
AXIS_FACTOR = {
    "fast": "frames",
    "temporal": "frames",
    "spatial": "crop",
    "width": "width",
    "bottleneck": "bottleneck",
    "depth": "depth",
}


class FlopCounter(Protocol):
    def gflops(self, spec: ArchSpec) -> float: ...


class AxisExhausted(Exception):
    """This axis cannot make a step from this parent (a bound, or the rate limit)."""


@dataclass(frozen=True)
class Expansion:
    axis: str
    parent: ArchSpec
    spec: ArchSpec
    parent_gflops: float
    gflops: float

    @property
    def ratio(self) -> float:
        return self.gflops / self.parent_gflops


@dataclass(frozen=True)
class Contraction:
    axis: str
    parent: ArchSpec
    child: ArchSpec
    spec: ArchSpec
    target_gflops: float
    gflops: float
    note: str = ""

    @property
    def error(self) -> float:
        """Relative distance to the target (negative: under it)."""
        return self.gflops / self.target_gflops - 1.0

    @property
    def within_tolerance(self) -> bool:
        return abs(self.error) <= 0.02


def _show(value: float) -> str:
    return str(value) if isinstance(value, int) else format_factor(value)


def _level(spec: ArchSpec, axis: str, space: SearchSpace) -> int:
    grid = space.grid
    if axis in ("fast", "temporal"):
        return spec.frames
    if axis == "spatial":
        return spec.crop // grid.crop
    step = getattr(grid, axis)
    return int(math.floor(getattr(spec, axis) / step + 1e-9))


def _stride_for(axis: str, parent: ArchSpec, frames: int) -> float:
    if axis == "fast":
        return parent.duration / frames
    return parent.stride * math.sqrt(parent.frames / frames)


def spec_at(parent: ArchSpec, axis: str, level: int, space: SearchSpace) -> Optional[ArchSpec]:
    """The spec at ``level`` along ``axis`` from ``parent``; None outside the bounds."""
    bounds = space.bounds
    if axis not in AXES:
        raise SpecError(f"unknown axis {axis!r} (axes: {', '.join(AXES)})")
    if axis in ("fast", "temporal"):
        lo, hi = bounds.of("frames")
        if not lo <= level <= hi:
            return None
        if level == parent.frames:
            return parent
        s_lo, s_hi = bounds.of("stride")
        exact = _stride_for(axis, parent, level)
        stride = int(round(exact))
        if axis == "fast" and exact < s_lo - 1e-9:
            return None  # the clip would have to shrink: no faster rate exists
        stride = int(min(max(stride, s_lo), s_hi))
        if axis == "temporal" and level * stride <= parent.duration:
            # Rounding collapsed X-Temporal into X-Fast (stride 2 x sqrt(1/2) -> 1): take the
            # smallest stride that still lengthens the clip; it is never above the parent's.
            stride = int(min(parent.duration // level + 1, s_hi))
        return parent.replace(frames=level, stride=stride)
    if axis == "spatial":
        crop = level * space.grid.crop
        lo, hi = bounds.of("crop")
        if not lo <= crop <= hi:
            return None
        return parent.replace(crop=crop)
    value = clean_factor(level * getattr(space.grid, axis))
    lo, hi = bounds.of(axis)
    if not lo - 1e-9 <= value <= hi + 1e-9:
        return None
    try:
        return parent.replace(**{axis: value})
    except SpecError:
        return None


def _max_level(parent: ArchSpec, axis: str, space: SearchSpace) -> int:
    if axis in ("fast", "temporal"):
        hi = int(space.bounds.of("frames")[1])
        if axis == "fast":
            s_lo = space.bounds.of("stride")[0]
            hi = min(hi, int(math.floor(parent.duration / s_lo + 1e-9)))
        return hi
    if axis == "spatial":
        return int(space.bounds.of("crop")[1] // space.grid.crop)
    return int(math.floor(space.bounds.of(axis)[1] / getattr(space.grid, axis) + 1e-9))


def _guess(spec: ArchSpec, axis: str, space: SearchSpace, start: int) -> int:
    """Where the step probably lands: FLOPs ~ frames, crop^2, width^2, bottleneck, depth."""
    factor = space.step.flops_factor
    if axis in ("spatial", "width"):
        factor = math.sqrt(factor)
    return max(start + 1, int(round(start * factor)))


def _bracket(reaches: Callable[[int], bool], start: int, top: int, guess: int) -> tuple[int, int]:
    """(lo, hi) with hi the smallest level in (start, top] that reaches; None-safe galloping."""
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


def expand(
    spec: ArchSpec, axis: str, space: SearchSpace, counter: FlopCounter
) -> Expansion:
    """One step along ``axis`` (see :class:`expand.config.StepRule` for the rule).

    Raises AxisExhausted (with the reason) when no level within the bounds reaches
    the step's FLOPs.
    """
    rule = space.step
    parent_gflops = counter.gflops(spec)
    goal = parent_gflops * rule.flops_factor * (1.0 - rule.tolerance)
    start = _level(spec, axis, space)
    top = _max_level(spec, axis, space)
    factor_name = AXIS_FACTOR[axis]
    if axis == "fast" and spec.stride <= space.bounds.of("stride")[0]:
        raise AxisExhausted("stride is at its lower bound: no higher frame rate to expand to")
    if top <= start:
        raise AxisExhausted(f"{factor_name} is at its upper bound ({getattr(spec, factor_name)})")

    def reaches(level: int) -> bool:
        candidate = spec_at(spec, axis, level, space)
        return candidate is not None and counter.gflops(candidate) >= goal

    try:
        lo, hi = _bracket(reaches, start, top, _guess(spec, axis, space, start))
    except LookupError:
        limit = spec_at(spec, axis, top, space)
        if rule.mode == "nearest" and limit is not None:
            ratio = counter.gflops(limit) / parent_gflops
            if ratio > math.sqrt(rule.flops_factor):  # nearer the step than the parent
                return Expansion(axis, spec, limit, parent_gflops, counter.gflops(limit))
        raise AxisExhausted(
            f"{rule.flops_factor:g}x GFLOPs needs {factor_name} beyond its bound "
            f"(at most {_show(getattr(limit or spec, factor_name))})"
        ) from None
    child = spec_at(spec, axis, hi, space)
    assert child is not None
    child_gflops = counter.gflops(child)
    below = spec_at(spec, axis, lo, space) if lo > start else None
    if rule.mode == "nearest" and below is not None and below != spec:
        below_gflops = counter.gflops(below)
        target = parent_gflops * rule.flops_factor
        if abs(math.log(below_gflops / target)) < abs(math.log(child_gflops / target)):
            child, child_gflops = below, below_gflops
    return Expansion(axis, spec, child, parent_gflops, child_gflops)


def contract(
    parent: ArchSpec,
    child: ArchSpec,
    axis: str,
    target_gflops: float,
    space: SearchSpace,
    counter: FlopCounter,
) -> Contraction:
    """The spec between ``parent`` and ``child`` along ``axis`` closest to the target from below.

    If even the parent exceeds the target the parent is returned with a note;
    if the grid has no level within 2% under the target, the nearest level
    above is reported in the note (never chosen: the budget is a ceiling).
    """
    lo = _level(parent, axis, space)
    hi = _level(child, axis, space)
    at: Callable[[int], ArchSpec] = lambda lv: spec_at(parent, axis, lv, space) or parent  # noqa: E731
    parent_gflops = counter.gflops(parent)
    if parent_gflops > target_gflops:
        return Contraction(
            axis, parent, child, parent, target_gflops, parent_gflops,
            note=f"the parent already needs {parent_gflops:.4g} GFLOPs > target",
        )
    child_gflops = counter.gflops(child)
    if child_gflops <= target_gflops:
        return Contraction(axis, parent, child, child, target_gflops, child_gflops)
    # invariant: gflops(at(lo)) <= target < gflops(at(hi))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if counter.gflops(at(mid)) <= target_gflops:
            lo = mid
        else:
            hi = mid
    best = at(lo)
    best_gflops = counter.gflops(best)
    note = ""
    if best_gflops < target_gflops * 0.98:
        above = at(hi)
        name = AXIS_FACTOR[axis]
        note = (
            f"grid too coarse for 2%: {name} {_show(getattr(best, name))} gives "
            f"{best_gflops:.4g} GFLOPs, the next value {_show(getattr(above, name))} gives "
            f"{counter.gflops(above):.4g}"
        )
    return Contraction(axis, parent, child, best, target_gflops, best_gflops, note)
