"""Search-space files -> a typed, validated :class:`SearchSpace`, and where shipped files are.

A search space says *what* may be searched: the basis, the axes, their grids and
bounds, the step rule and the selection rule. Apart from the experiment
(``expand.config``) because a space is shared by experiments and read alone
(``x3d-expand model``, the replay of X3D's path), and every check here is about
the model family, none about data or resources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from expand.errors import ConfigError, SpecError
from expand.schema import check_field, from_mapping, key_path, load_yaml, positive, positive_range, to_plain
from expand.search.axes import AXES as AXIS_TABLE
from expand.search.select import RULES
from expand.spec import CEILINGS, FACTORS, ArchSpec

# The paper's six axes, the default of every search space (the table itself is AXIS_TABLE).
AXES: tuple[str, ...] = AXIS_TABLE.names()

# Shipped search spaces and experiments are package data (expand/search_spaces, expand/experiments;
# in a checkout, links to the top-level folders). realpath: in a checkout, a shipped experiment's
# relative paths (../data/synthetic) are then relative to the top-level folder, as when named by path.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # expand/
SHIPPED_ROOT = os.path.dirname(os.path.realpath(os.path.join(_PACKAGE, "experiments", ".")))


def _axes_check(value: list[str]) -> str | None:
    unknown = [a for a in value if a not in AXIS_TABLE]
    if unknown:
        return AXIS_TABLE.unknown(unknown[0])
    if len(set(value)) != len(value):
        return "an axis is listed twice"
    if not value:
        return "at least one axis is needed"
    return None


def selection_check(value: str) -> str | None:
    """A selection rule's name (``expand.search.select.RULES``): the space's, or an experiment's override."""
    return None if value in RULES else RULES.unknown(value)


@dataclass(frozen=True)
class Grid:
    """Resolution of each factor the search may visit (frames/stride are integers)."""

    crop: int = check_field(positive, 8)
    width: float = check_field(positive, 0.01)
    bottleneck: float = check_field(positive, 0.01)
    depth: float = check_field(positive, 0.1)


def _bound(factor: str, default: list[float]) -> Any:
    """A factor's [min, max], max at most its ArchSpec ceiling: past it (a typo, 1e308) a search
    would stop with an internal error the step its expansion crossed it, not at its start."""
    why = "no X3D model needs more; expand.spec.CEILINGS"
    return check_field(lambda v: positive_range(v, CEILINGS[factor], why), default_factory=lambda: list(default))


@dataclass(frozen=True)
class Bounds:
    """Inclusive [min, max] of each factor; expansions beyond them are skipped."""

    frames: list[float] = _bound("frames", [1, 32])
    stride: list[float] = _bound("stride", [1, 64])
    crop: list[float] = _bound("crop", [32, 448])
    width: list[float] = _bound("width", [0.1, 8.0])
    bottleneck: list[float] = _bound("bottleneck", [0.1, 8.0])
    depth: list[float] = _bound("depth", [0.1, 10.0])

    def of(self, factor: str) -> tuple[float, float]:
        lo, hi = getattr(self, factor)
        return float(lo), float(hi)


@dataclass(frozen=True)
class StepRule:
    """How far one expansion goes along an axis.

    ``at_least`` is the literal rule: the smallest grid value whose GFLOPs reach
    ``flops_factor`` x the parent's (less ``tolerance``). ``nearest`` (default)
    also looks at the value just below it and keeps whichever is closer to the
    factor in log-FLOPs. Why: axes differ in granularity. On a 0.01 width grid
    the first value past 2x is 2.01x, but frames are integers and the post-pool
    head does not scale, so 1 -> 2 frames is 1.89x and the literal rule jumps to
    3 frames (2.77x), handing the coarse axes larger, unfair steps.
    """

    # at most 10x a step (the paper's is 2x): past that a step is no longer one axis's small move
    flops_factor: float = check_field(lambda v: None if 1 < v <= 10 else f"must be in (1, 10], got {v:g}", 2.0)
    mode: Literal["nearest", "at_least"] = "nearest"
    tolerance: float = check_field(lambda v: None if 0 <= v < 0.5 else "must be in [0, 0.5)", 0.0)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    basis: ArchSpec
    axes: tuple[str, ...] = AXES
    grid: Grid = field(default_factory=Grid)
    bounds: Bounds = field(default_factory=Bounds)
    step: StepRule = field(default_factory=StepRule)
    selection: str = "paper"
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "basis": self.basis.to_dict(),
            "axes": list(self.axes),
            "grid": to_plain(self.grid),
            "bounds": to_plain(self.bounds),
            "step": to_plain(self.step),
            "selection": self.selection,
        }


@dataclass(frozen=True)
class _SearchSpaceFile:
    name: str
    basis: dict[str, Any]
    axes: list[str] = check_field(_axes_check, default_factory=lambda: list(AXES))
    grid: Grid = field(default_factory=Grid)
    bounds: Bounds = field(default_factory=Bounds)
    step: StepRule = field(default_factory=StepRule)
    selection: str = check_field(selection_check, "paper")


def parse_search_space(data: Any, where: str, num_classes: int | None = None) -> SearchSpace:
    raw = from_mapping(_SearchSpaceFile, data, where)
    basis_data = dict(raw.basis)
    if num_classes is not None:
        basis_data["num_classes"] = num_classes
    try:
        basis = ArchSpec.from_dict(basis_data)
    except SpecError as exc:
        raise ConfigError(f"{key_path(where, 'basis')}: {exc}") from None
    for factor in ("crop", "width", "bottleneck", "depth"):  # the factors with a grid
        step, (_, hi) = getattr(raw.grid, factor), raw.bounds.of(factor)
        if step > hi:  # no level but 0 fits: the axis said "at its upper bound", whatever the basis
            raise ConfigError(f"{key_path(where, f'grid.{factor}')}: {step:g} is larger than bounds.{factor}'s "
                              f"max {hi:g}: no {factor} on the grid fits")
    if basis.crop % raw.grid.crop:
        raise ConfigError(
            f"{key_path(where, 'basis.crop')}: {basis.crop} is not a multiple of grid.crop {raw.grid.crop}"
        )
    if raw.grid.crop % 4:
        raise ConfigError(f"{key_path(where, 'grid.crop')}: must be a multiple of 4, got {raw.grid.crop}")
    for factor in FACTORS:
        lo, hi = raw.bounds.of(factor)
        value = getattr(basis, factor)
        if not lo <= value <= hi:
            raise ConfigError(
                f"{key_path(where, f'basis.{factor}')}: {value} is outside bounds.{factor} [{lo}, {hi}]"
            )
    return SearchSpace(
        name=raw.name,
        basis=basis,
        axes=tuple(raw.axes),
        grid=raw.grid,
        bounds=raw.bounds,
        step=raw.step,
        selection=raw.selection,
        source=where.split(":")[0],
    )


def resolve_search_space_path(name_or_path: str, relative_to: str | None = None) -> str:
    """A search space by path (relative to ``relative_to``) or by shipped name."""
    candidates = []
    if relative_to and not os.path.isabs(name_or_path):
        candidates.append(os.path.join(relative_to, name_or_path))
    candidates.append(name_or_path)
    return resolve_shipped("search space", "search_spaces", candidates, name_or_path)


def resolve_shipped(what: str, folder: str, candidates: list[str], name_or_path: str) -> str:
    shipped = os.path.join(SHIPPED_ROOT, folder, name_or_path)
    for path in [*candidates, shipped, shipped + ".yaml"]:
        if os.path.isfile(path):
            return os.path.abspath(path)
    names = sorted(f[:-5] for f in os.listdir(os.path.join(SHIPPED_ROOT, folder)) if f.endswith(".yaml"))
    raise ConfigError(f"{what} {name_or_path!r}: no such file (shipped: {', '.join(names)})")


def load_search_space(name_or_path: str, num_classes: int | None = None) -> SearchSpace:
    path = resolve_search_space_path(name_or_path)
    return parse_search_space(load_yaml(path), f"{path}:", num_classes)
