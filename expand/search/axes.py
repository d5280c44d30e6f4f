"""The six expansion axes: one step forward, or a contraction to a FLOP target.

Each axis is a monotone map from an integer *level* to a spec, relative to a
parent: FLOPs never decrease as the level grows, so the step ("the smallest
level whose GFLOPs reach factor x the parent's") and the contraction ("the
largest level between parent and child whose GFLOPs stay under the target")
are both searches over levels (expand/bracketing.py: started where a two-point
fit of the FLOPs curve crosses the goal, so a step takes 3-4 counts), and each
FLOP count is cached.

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
from typing import Any, Callable, Optional, Protocol

from expand.bracketing import bracket, crossing
from expand.errors import SpecError
from expand.registry import Registry
from expand.rounding import clean_factor, format_factor
from expand.spec import ArchSpec


class SearchSpace(Protocol):
    """What an axis reads of a search space (expand.config.SearchSpace; config imports this module)."""

    grid: Any  # per-factor step: crop, width, bottleneck, depth
    bounds: Any  # .of(factor) -> (min, max)
    step: Any  # .flops_factor, .mode, .tolerance


class Axis:
    """One expansion axis: the factor it moves and how a level maps to a spec.

    A *level* is an integer position along the axis (frames, crop / grid
    step, factor / grid step); FLOPs never decrease as it grows. Subclasses
    say how a level becomes a spec (``spec_at``), where a spec sits
    (``level``), how far the bounds let it go (``max_level``), and when no
    step is possible at all (``exhausted``).
    """

    def __init__(self, name: str, paper_name: str, factor: str, description: str, color: str = "tab:gray",
                 flops_exponent: float = 1.0) -> None:
        self.name, self.paper_name, self.factor = name, paper_name, factor
        self.description, self.color = description, color
        # FLOPs ~ factor ** flops_exponent: only a first guess for where the step lands
        self.flops_exponent = flops_exponent

    def level(self, spec: ArchSpec, space: "SearchSpace") -> int:
        step = getattr(space.grid, self.factor)
        return int(math.floor(getattr(spec, self.factor) / step + 1e-9))

    def max_level(self, parent: ArchSpec, space: "SearchSpace") -> int:
        return int(math.floor(space.bounds.of(self.factor)[1] / getattr(space.grid, self.factor) + 1e-9))

    def spec_at(self, parent: ArchSpec, level: int, space: "SearchSpace") -> Optional[ArchSpec]:
        raise NotImplementedError

    def exhausted(self, parent: ArchSpec, space: "SearchSpace") -> Optional[str]:
        """Why no step along this axis exists from ``parent`` regardless of FLOPs (None: it may)."""
        return None

    def guess(self, spec: ArchSpec, space: "SearchSpace", start: int) -> int:
        """Where the step probably lands, so the search for it starts close."""
        factor = space.step.flops_factor ** (1.0 / self.flops_exponent)
        return max(start + 1, int(round(start * factor)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, moves {self.factor})"


class MultiplierAxis(Axis):
    """X-Width, X-Bottleneck, X-Depth: the factor = level x its grid step."""

    def spec_at(self, parent: ArchSpec, level: int, space: "SearchSpace") -> Optional[ArchSpec]:
        value = clean_factor(level * getattr(space.grid, self.factor))
        lo, hi = space.bounds.of(self.factor)
        if not lo - 1e-9 <= value <= hi + 1e-9:
            return None
        try:
            return parent.replace(**{self.factor: value})
        except SpecError:
            return None


class CropAxis(Axis):
    """X-Spatial: crop = level x the grid's crop step (FLOPs grow with its square)."""

    def spec_at(self, parent: ArchSpec, level: int, space: "SearchSpace") -> Optional[ArchSpec]:
        crop = level * space.grid.crop
        lo, hi = space.bounds.of("crop")
        return parent.replace(crop=crop) if lo <= crop <= hi else None


class FramesAxis(Axis):
    """The clip axes: frames grow to the level; subclasses say what happens to the stride."""

    def __init__(self, name: str, paper_name: str, description: str, color: str = "tab:gray") -> None:
        super().__init__(name, paper_name, "frames", description, color)

    def level(self, spec: ArchSpec, space: "SearchSpace") -> int:
        return spec.frames

    def max_level(self, parent: ArchSpec, space: "SearchSpace") -> int:
        return int(space.bounds.of("frames")[1])

    def stride_for(self, parent: ArchSpec, frames: int, s_lo: float, s_hi: float) -> Optional[int]:
        raise NotImplementedError

    def spec_at(self, parent: ArchSpec, level: int, space: "SearchSpace") -> Optional[ArchSpec]:
        lo, hi = space.bounds.of("frames")
        if not lo <= level <= hi:
            return None
        if level == parent.frames:
            return parent
        stride = self.stride_for(parent, level, *space.bounds.of("stride"))
        return None if stride is None else parent.replace(frames=level, stride=stride)


class FrameRateAxis(FramesAxis):
    """X-Fast: more frames over the same duration (the stride shrinks); stops at the source rate."""

    def stride_for(self, parent: ArchSpec, frames: int, s_lo: float, s_hi: float) -> Optional[int]:
        exact = parent.duration / frames
        if exact < s_lo - 1e-9:
            return None  # the clip would have to shrink: no faster rate exists
        return int(min(max(int(round(exact)), s_lo), s_hi))

    def max_level(self, parent: ArchSpec, space: "SearchSpace") -> int:
        s_lo = space.bounds.of("stride")[0]
        return min(super().max_level(parent, space), int(math.floor(parent.duration / s_lo + 1e-9)))

    def exhausted(self, parent: ArchSpec, space: "SearchSpace") -> Optional[str]:
        if parent.stride <= space.bounds.of("stride")[0]:
            return "stride is at its lower bound: no higher frame rate to expand to"
        return None


class DurationAxis(FramesAxis):
    """X-Temporal: a longer clip at a higher rate; duration and rate each take half the growth."""

    def stride_for(self, parent: ArchSpec, frames: int, s_lo: float, s_hi: float) -> Optional[int]:
        stride = int(min(max(int(round(parent.stride * math.sqrt(parent.frames / frames))), s_lo), s_hi))
        if frames * stride <= parent.duration:
            # Rounding collapsed X-Temporal into X-Fast (stride 2 x sqrt(1/2) -> 1): take the
            # smallest stride that still lengthens the clip; it is never above the parent's.
            stride = int(min(parent.duration // frames + 1, s_hi))
        return stride


# The paper's six axes (X3D §3, Fig. 2), in its order: the order is the tie-break between
# equally good candidates, so a rerun picks the same path.
AXES: Registry[Axis] = Registry("axis")
for _axis in (
    FrameRateAxis("fast", "X-Fast", "more frames over the same clip: a higher frame rate", "tab:blue"),
    DurationAxis("temporal", "X-Temporal", "more frames over a longer clip at a higher rate", "tab:cyan"),
    CropAxis("spatial", "X-Spatial", "crop", "a larger input resolution", "tab:orange", flops_exponent=2),
    MultiplierAxis("width", "X-Width", "width", "wider layers (all channels)", "tab:green", flops_exponent=2),
    MultiplierAxis("bottleneck", "X-Bottleneck", "bottleneck", "a wider inner (bottleneck) width", "tab:olive"),
    MultiplierAxis("depth", "X-Depth", "depth", "more blocks per stage", "tab:red"),
):
    AXES.register(_axis.name, _axis)


def axes_table() -> list[dict[str, str]]:
    """The axes as rows (name, paper name, factor, what it does): the paper's Fig. 2 legend."""
    return [{"axis": n, "paper": a.paper_name, "factor": a.factor, "kind": type(a).__name__,
             "description": a.description} for n, a in AXES.items()]


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


def spec_at(parent: ArchSpec, axis: str, level: int, space: "SearchSpace") -> Optional[ArchSpec]:
    """The spec at ``level`` along ``axis`` from ``parent``; None outside the bounds."""
    if axis not in AXES:
        raise SpecError(AXES.unknown(axis))
    return AXES.get(axis).spec_at(parent, level, space)


def expand(
    spec: ArchSpec, axis: str, space: "SearchSpace", counter: FlopCounter
) -> Expansion:
    """One step along ``axis`` (see :class:`expand.config.StepRule` for the rule).

    Raises AxisExhausted (with the reason) when no level within the bounds reaches
    the step's FLOPs.
    """
    rule = space.step
    parent_gflops = counter.gflops(spec)
    goal = parent_gflops * rule.flops_factor * (1.0 - rule.tolerance)
    along = AXES.get(axis)
    start = along.level(spec, space)
    top = along.max_level(spec, space)
    factor_name = along.factor
    why = along.exhausted(spec, space)
    if why:
        raise AxisExhausted(why)
    if top <= start:
        raise AxisExhausted(f"{factor_name} is at its upper bound ({getattr(spec, factor_name)})")

    def reaches(level: int) -> bool:
        candidate = spec_at(spec, axis, level, space)
        return candidate is not None and counter.gflops(candidate) >= goal

    guess = min(max(along.guess(spec, space, start), start + 1), top)
    probe = spec_at(spec, axis, guess, space)
    if probe is not None:  # the guess's count (needed anyway) and the parent's fit the curve
        level = crossing(start, parent_gflops, guess, counter.gflops(probe), goal, along.flops_exponent)
        guess = guess if level is None else math.ceil(level - 1e-6)
    try:
        lo, hi = bracket(reaches, start, top, guess)
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
    space: "SearchSpace",
    counter: FlopCounter,
) -> Contraction:
    """The spec between ``parent`` and ``child`` along ``axis`` closest to the target from below.

    If even the parent exceeds the target the parent is returned with a note;
    if the grid has no level within 2% under the target, the nearest level
    above is reported in the note (never chosen: the budget is a ceiling).
    """
    along = AXES.get(axis)
    lo = along.level(parent, space)
    hi = along.level(child, space)
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
    # invariant: gflops(at(lo)) <= target < gflops(at(hi)); the first level over the
    # target is searched from where the curve through both ends crosses it
    level = crossing(lo, parent_gflops, hi, child_gflops, target_gflops, along.flops_exponent)
    guess = (lo + hi) // 2 if level is None else math.floor(level + 1e-6) + 1
    try:
        lo, hi = bracket(lambda lv: counter.gflops(at(lv)) > target_gflops, lo, hi, guess)
    except LookupError:  # no level up to the child's is over (an off-grid end): the level below it
        lo = max(lo, hi - 1)
    best = at(lo)
    best_gflops = counter.gflops(best)
    note = ""
    if best_gflops < target_gflops * 0.98:
        above = at(hi)
        name = along.factor
        above_gflops = counter.gflops(above)
        # how far each side is: a value 0.7% over may be worth a budget of its own (--target-gflops)
        note = (
            f"grid too coarse for 2%: {name} {_show(getattr(best, name))} gives "
            f"{best_gflops:.4g} GFLOPs ({100 * (best_gflops / target_gflops - 1):+.1f}%), the next value "
            f"{_show(getattr(above, name))} gives {above_gflops:.4g} ({100 * (above_gflops / target_gflops - 1):+.1f}%), "
            "over the budget"
        )
    return Contraction(axis, parent, child, best, target_gflops, best_gflops, note)
