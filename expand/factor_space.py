"""The six-factor space a baseline samples from: ranges, caps, grids and a cheap FLOP floor.

The baselines search the factors the expansion can reach from the basis (frames
up, stride down, crop/width/bottleneck/depth up, within the search space's
bounds), on the same grids, so a baseline can find any model the expansion can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from expand.bracketing import bracket, crossing
from expand.config import SearchSpace
from expand.rounding import clean_factor
from expand.search.axes import AXES
from expand.spec import FACTORS, MULTIPLIERS, ArchSpec


@dataclass(frozen=True)
class FactorRange:
    name: str
    low: float
    high: float
    step: float  # grid step; frames/stride are integers (step 1)


def factor_ranges(space: SearchSpace) -> dict[str, FactorRange]:
    """From the basis towards where the axes move it, up to the bounds."""
    b, bounds, grid = space.basis, space.bounds, space.grid
    out = {
        "frames": FactorRange("frames", b.frames, bounds.of("frames")[1], 1),
        "stride": FactorRange("stride", bounds.of("stride")[0], b.stride, 1),
        "crop": FactorRange("crop", b.crop, bounds.of("crop")[1], grid.crop),
    }
    for name in MULTIPLIERS:
        out[name] = FactorRange(name, getattr(b, name), bounds.of(name)[1], getattr(grid, name))
    return out


def capped_ranges(space: SearchSpace, counter: Any, cap: Optional[float]) -> dict[str, FactorRange]:
    """factor_ranges, each upper end lowered to the largest grid value that alone stays under the cap.

    No sampler should waste draws on a factor value whose model is over the cap
    even with every other factor at the basis; a few FLOP counts per factor
    (a search over its grid that starts where the FLOPs curve crosses the cap)
    save hundreds of counts of rejected samples.
    """
    ranges = factor_ranges(space)
    if cap is None:
        return ranges
    exponents = {axis.factor: axis.flops_exponent for _, axis in AXES.items()}  # crop and width: squared
    basis = space.basis
    for name, r in ranges.items():
        if name == "stride" or r.low == r.high:
            continue  # the stride does not change FLOPs
        steps = int(round((r.high - r.low) / r.step))

        def value(i: int) -> float:
            v = r.low + i * r.step
            return int(round(v)) if name in ("frames", "crop") else clean_factor(v)

        def gflops(i: int) -> float:
            return counter.gflops(basis.replace(**{name: value(i)}))

        if gflops(steps) <= cap:
            continue
        # the first level over the cap, searched from where the curve through both ends crosses it
        at = crossing(r.low, gflops(0), r.high, gflops(steps), cap, exponents.get(name, 1.0))
        guess = steps // 2 if at is None else int((at - r.low) / r.step + 1e-6) + 1
        lo, _ = bracket(lambda i: gflops(i) > cap, 0, steps, guess)  # level 0 if the basis alone is over
        ranges[name] = FactorRange(name, r.low, value(lo), r.step)
    return ranges


class FlopFloor:
    """A lower bound on a spec's FLOPs from a few counts per factor, to reject over-cap samples cheaply.

    FLOPs are a sum over layers of monomials in the factor ratios, with layers
    that grow in one factor also growing in the others, so the product of the
    single-factor ratios is at most the true ratio (measured: 0.52-0.87 of it
    on random specs of both search spaces; tests/test_baselines.py checks the
    bound). Each factor's ratio is taken at the nearest counted value below,
    which by monotonicity lowers it further: a spec whose floor is over the cap
    is over the cap, without an fvcore count.
    """

    def __init__(self, space: SearchSpace, counter: Any, ranges: dict[str, FactorRange], points: int = 8) -> None:
        self.basis, self.counter = space.basis, counter
        self.base = counter.gflops(self.basis)
        self.tables: dict[str, list[tuple[float, float]]] = {}
        for name, r in ranges.items():
            if name == "stride" or r.low == r.high:
                continue
            levels = int(round((r.high - r.low) / r.step))
            values = sorted({r.low + round(i * levels / (points - 1)) * r.step for i in range(points)})
            values = [int(round(v)) if name in ("frames", "crop") else clean_factor(v) for v in values]
            self.tables[name] = [(v, counter.gflops(self.basis.replace(**{name: v})) / self.base) for v in values]

    def gflops(self, spec: ArchSpec) -> float:
        bound = self.base
        for name, table in self.tables.items():
            v = getattr(spec, name)
            bound *= max((ratio for value, ratio in table if value <= v + 1e-9), default=1.0)
        return bound


def snap(space: SearchSpace, factors: dict[str, float], ranges: Optional[dict[str, FactorRange]] = None) -> ArchSpec:
    """Factors rounded to the search space's grids and clipped to its ranges."""
    ranges = ranges or factor_ranges(space)
    values: dict[str, Any] = {}
    for name, r in ranges.items():
        v = min(max(float(factors[name]), r.low), r.high)
        if name in ("frames", "stride"):
            values[name] = int(round(v))
        elif name == "crop":
            values[name] = int(round(v / r.step) * r.step)
        else:
            values[name] = clean_factor(round(v / r.step) * r.step)
    return space.basis.replace(**values)


__all__ = ["FACTORS", "FactorRange", "factor_ranges", "capped_ranges", "FlopFloor", "snap"]
