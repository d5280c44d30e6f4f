"""Selection rules: which trained candidate of a step becomes the next parent.

All rules see the same thing: the parent's accuracy and GFLOPs and, for each
candidate that trained successfully, its axis, GFLOPs and top-1. Ties go to
the higher accuracy, then the cheaper model, then the axis listed first in the
search space (so a rerun picks the same path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from expand.errors import ConfigError
from expand.registry import Registry

# The ``paper`` rule, honestly: the paper (X3D §3) keeps "the expansion with the best
# computation/accuracy trade-off", and with candidates of equal complexity that is the most
# accurate one. Two parts are ours, because our grids make exactly equal FLOPs impossible and
# the paper says nothing for unequal ones: candidates count as "of equal FLOPs" when the
# largest is at most this much above the smallest, and otherwise the largest top-1 gain per
# added GFLOP wins. The key stays "paper" so that existing runs and files keep working.
PAPER_EQUAL_FLOPS_BAND = 0.15


@dataclass(frozen=True)
class Scored:
    axis: str
    gflops: float
    top1: float


def gain(c: Scored, parent_top1: float) -> float:
    return c.top1 - parent_top1


def gain_per_gflop(c: Scored, parent_top1: float, parent_gflops: float) -> float:
    added = c.gflops - parent_gflops
    return gain(c, parent_top1) / added if added > 0 else math.inf * gain(c, parent_top1)


def gain_per_doubling(c: Scored, parent_top1: float, parent_gflops: float) -> float:
    doublings = math.log2(c.gflops / parent_gflops) if c.gflops > parent_gflops else 0.0
    return gain(c, parent_top1) / doublings if doublings > 0 else math.inf * gain(c, parent_top1)


def _key(c: Scored, score: Callable[[Scored], float]) -> tuple[float, float, float]:
    return (score(c), c.top1, -c.gflops)


def _best(cands: Sequence[Scored], score: Callable[[Scored], float]) -> int:
    order = {id(c): i for i, c in enumerate(cands)}
    return max(range(len(cands)), key=lambda i: (*_key(cands[i], score), -order[id(cands[i])]))


ScoreFn = Callable[[Scored], float]


@dataclass(frozen=True)
class SelectionRule:
    """A named rule: ``scorer(cands, parent_top1, parent_gflops)`` gives what it maximises.

    The scorer sees the whole step (the ``paper`` rule switches on the spread
    of the candidates' GFLOPs); ties on the score go to higher top-1, then
    fewer GFLOPs, then axis order. ``source`` says whose rule it is.
    """

    name: str
    scorer: Callable[[Sequence[Scored], float, float], ScoreFn]
    description: str
    source: str


def _paper(cands: Sequence[Scored], parent_top1: float, parent_gflops: float) -> ScoreFn:
    flops = [c.gflops for c in cands]
    if max(flops) <= min(flops) * (1 + PAPER_EQUAL_FLOPS_BAND):
        return lambda c: c.top1
    if max(gain(c, parent_top1) for c in cands) <= 0:
        return lambda c: c.top1  # nothing helps: least harm
    return lambda c: gain_per_gflop(c, parent_top1, parent_gflops)


# Registration order is the listing order of config errors and of expand.RULES.
RULES: Registry[SelectionRule] = Registry("rule")
for _rule in (
    SelectionRule(
        "paper", _paper,
        "the paper's rule, most accurate at the step's complexity, when candidates' GFLOPs are "
        f"within {PAPER_EQUAL_FLOPS_BAND:.0%} of each other (the band is ours); otherwise ours: largest "
        "top-1 gain per added GFLOP",
        "X3D §3 (Feichtenhofer, CVPR 2020), with our band for unequal GFLOPs"),
    SelectionRule("gain_per_gflop", lambda cands, p1, pg: lambda c: gain_per_gflop(c, p1, pg),
                  "largest top-1 gain per added GFLOP", "ours"),
    SelectionRule("gain_per_doubling", lambda cands, p1, pg: lambda c: gain_per_doubling(c, p1, pg),
                  "largest top-1 gain per doubling of GFLOPs", "ours"),
    SelectionRule("best_accuracy", lambda cands, p1, pg: lambda c: c.top1, "most accurate",
                  "the paper's rule without the complexity check"),
):
    RULES.register(_rule.name, _rule)


def _score(rule: str, cands: Sequence[Scored], parent_top1: float, parent_gflops: float) -> ScoreFn:
    """What the rule maximises for this set of candidates."""
    if rule not in RULES:
        raise ConfigError(f"selection: {RULES.unknown(rule)}")
    return RULES.get(rule).scorer(cands, parent_top1, parent_gflops)


def select(rule: str, cands: Sequence[Scored], parent_top1: float, parent_gflops: float) -> int:
    """Index of the chosen candidate; ``cands`` must be non-empty and all trained."""
    if not cands:
        raise ValueError("no candidate to select from")
    return _best(cands, _score(rule, cands, parent_top1, parent_gflops))


def select_tied(rule: str, cands: Sequence[Scored], parent_top1: float, parent_gflops: float) -> list[int]:
    """Every candidate the rule cannot tell from its pick except by listing order.

    ``select`` breaks such ties by the search space's axis order so that a
    rerun picks the same path; a confidence must instead share the win among
    them, or two identical networks would look like a sure pick of the first.
    """
    if not cands:
        raise ValueError("no candidate to select from")
    score = _score(rule, cands, parent_top1, parent_gflops)
    best = _key(cands[_best(cands, score)], score)
    return [i for i, c in enumerate(cands) if _key(c, score) == best]


def rule_description(rule: str) -> str:
    """What the rule does, and for ``paper`` which part is the paper's and which is ours."""
    return RULES.get(rule).description
