"""How long one attempt may run: ``trial.time_limit_s`` as a policy (none, a number, or ``auto``).

A fixed limit must be set before a search starts, when nobody knows how long
its later steps' trials take: set it tight and the large models of the last
steps are cut short; set it loose and a trial that hung in step 2 holds its
GPU for a day. ``auto`` derives each attempt's limit from what this run has
measured: ``factor`` times the seconds per GFLOP of the trials that finished,
scaled to the attempt's GFLOPs, and never under ``min_s``. Small models pay
more per GFLOP (data, start-up, evaluation), so a rate taken from earlier,
smaller steps errs on the generous side for the larger ones that follow; the
floor covers the opposite case. Before any trial has finished (the basis)
there is no limit.

Each attempt carries its limit (``TrialSpec.time_limit_s``) to the runner,
and a ``timeout`` result records the limit it ran under
(``extra.time_limit_s``, and ``extra.time_limit_factor`` under ``auto``): a
resume retrains what a smaller limit cut short, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from expand.schema import MAX_TIME_LIMIT_S
from expand.search.trial import TrialResult, TrialSpec


def whole_trial_seconds(result: TrialResult) -> float:
    """What the trial would have taken from step 0: a resumed attempt's seconds cover only the
    steps after its snapshot, and would make every estimate built on them too short."""
    steps, resumed = (result.extra or {}).get("steps"), (result.extra or {}).get("resumed_from_step") or 0
    if not steps or not 0 < resumed < steps:
        return result.seconds
    return result.seconds * steps / (steps - resumed)


def seconds_per_gflop(finished: Iterable[tuple[float, TrialResult]]) -> Optional[float]:
    """Seconds per GFLOP over finished ``(gflops, result)`` pairs (only ``ok`` ones count: a
    failed attempt's seconds say nothing of how long training takes); None with none."""
    gf = s = 0.0
    for gflops, result in finished:
        if result.ok and gflops > 0 and result.seconds > 0:
            gf, s = gf + gflops, s + whole_trial_seconds(result)
    return s / gf if gf > 0 else None


@dataclass(frozen=True)
class TimeLimits:
    """``fixed_s``: every attempt's limit; ``factor``: auto (``fixed_s`` is then unused); neither: none."""

    fixed_s: Optional[float] = None
    factor: Optional[float] = None
    min_s: float = 900.0

    @classmethod
    def of(cls, trial_config: Any) -> "TimeLimits":
        """From an experiment's ``trial`` section."""
        value = trial_config.time_limit_s
        if value == "auto":
            return cls(factor=float(trial_config.time_limit_factor), min_s=float(trial_config.time_limit_min_s))
        return cls(fixed_s=None if value is None else float(value))

    @property
    def auto(self) -> bool:
        return self.factor is not None

    @property
    def any(self) -> bool:
        """Whether an attempt may get a limit at all (the runner then watches for overdue trials)."""
        return self.auto or self.fixed_s is not None

    def for_trial(self, trial: TrialSpec, finished: Iterable[tuple[float, TrialResult]]) -> Optional[float]:
        """This attempt's limit in seconds (None: none), given the run's finished ``(gflops, result)``."""
        if not self.auto:
            return self.fixed_s
        rate = seconds_per_gflop(finished)
        if rate is None:
            return None
        assert self.factor is not None
        limit = min(self.factor * rate * trial.gflops, MAX_TIME_LIMIT_S)  # a huge factor stays a number
        return min(max(self.min_s, float(round(limit))), MAX_TIME_LIMIT_S)  # whole seconds: readable

    def stamp(self, result: TrialResult) -> TrialResult:
        """Record the policy a ``timeout`` ran under, for :meth:`cut_short` on a later resume."""
        if result.status == "timeout" and self.auto:
            result.extra = {**(result.extra or {}), "time_limit_factor": self.factor}
            result.error += f"; auto: {self.factor:g} x this run's seconds per GFLOP, at least {self.min_s:g} s"
        return result

    def cut_short(self, result: TrialResult, limit_now: Optional[float]) -> bool:
        """Was ``result`` a timeout under a smaller limit than this policy gives now (or none now)?

        Under ``auto``, a timeout recorded under ``auto`` is compared by factor, not seconds: the
        rate moves as trials finish, and a resume must not retrain a trial because it did.
        """
        if result.status != "timeout":
            return False
        if limit_now is None:
            return True
        extra = result.extra or {}
        if self.auto and extra.get("time_limit_factor") is not None:
            return float(extra["time_limit_factor"]) < float(self.factor or 0)
        limit = extra.get("time_limit_s")
        return limit is not None and float(limit) < limit_now


__all__ = ["TimeLimits", "seconds_per_gflop", "whole_trial_seconds"]
