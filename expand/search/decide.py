"""Deciding a step: the rule's pick, how sure it is, and confirmation of close calls.

With ``search.confirm.max_extra_trials: 0`` (the default) a step is decided
exactly as the selection rule decides it on one trial per candidate; the
confidence is computed and recorded, nothing else changes. With a budget, a
pick whose confidence is under ``search.confirm.confidence`` is re-examined:
the contenders (candidates with at least ``contender`` chance of being the
pick), most likely first, are trained again with one new seed shared by all of
them, so the comparison stays paired, and the step is decided on the averages.
Rounds repeat until the level is reached or the budget is spent.

Every decision here follows from recorded results and seeds derived from the
run seed, so a resumed search replays it and retrains nothing that finished.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Optional, Sequence

from expand.config import Experiment
from expand.run import Candidate, PathEntry
from expand.search.confidence import Evidence, StepConfidence, choose_seed_std, seed_spread, step_confidence
from expand.search.select import Scored, select
from expand.search.trial import TrialResult, TrialSpec, derive_seed

TrainFn = Callable[[list[TrialSpec]], dict[str, TrialResult]]
MakeTrialFn = Callable[[Candidate, int, str], TrialSpec]


def seed_trial_id(trial_id: str, seed_number: int) -> str:
    """The id of a candidate's confirmation trial: ``s01-spatial-seed2`` is its second seed."""
    return f"{trial_id}-seed{seed_number}"


def model_trial_id(trial_id: str) -> str:
    """The trial id that names a model across its seeds: ``s01-spatial`` for ``s01-spatial-seed2``
    (calibration's ``x2-depth-seed1`` and ``-seed2`` are ``x2-depth``); other ids are their own.

    A model trained with several seeds is one model: its accuracy is the mean,
    as the step decided on. Taking its luckiest seed as "the best model" would
    report a figure selected from noise.
    """
    head, sep, tail = trial_id.rpartition("-seed")
    return head if sep and head and tail.isdigit() else trial_id


@dataclasses.dataclass(frozen=True)
class ModelScore:
    """A trained model as a run reports it: named by its first trial, at its top-1 (and top-5)
    averaged over its seeds; ``seeds`` says over how many."""

    trial_id: str
    gflops: float
    top1: float
    top5: Optional[float]
    seeds: int


def model_scores(latest: Mapping[str, Sequence[Any]]) -> list[ModelScore]:
    """Each model of a run once, in the order its first trial was run, from every trial's attempts
    (``expand.run.latest_by_trial``): its ok last attempts with a top-1, averaged.

    One place for "a model's accuracy" so that ``compare``, ``Run.best`` and the baselines'
    points cannot drift apart on what a multi-seed model scored.
    """
    groups: dict[str, list[Any]] = {}
    for tid, recs in latest.items():
        result = recs[-1].result
        if result.ok and result.top1 is not None and not math.isnan(result.top1):
            groups.setdefault(model_trial_id(tid), []).append(recs[-1])
    scores = []
    for recs in groups.values():
        top5 = [r.result.top5 for r in recs if r.result.top5 is not None and not math.isnan(r.result.top5)]
        scores.append(ModelScore(recs[0].trial.trial_id, recs[0].trial.gflops,
                                 sum(r.result.top1 for r in recs) / len(recs),
                                 sum(top5) / len(top5) if top5 else None, len(recs)))
    return scores


@dataclasses.dataclass
class Decision:
    winner: Candidate
    confidence: StepConfidence
    extra_trials: int
    rounds: int


class StepDecider:
    """Keeps every ok result per candidate (all its seeds) for the whole run, and decides steps."""

    def __init__(self, experiment: Experiment, train: TrainFn, make_trial: MakeTrialFn,
                 note: Optional[Callable[[str], None]] = None) -> None:
        self.exp = experiment
        self.cfg = experiment.search.confirm
        self.train = train
        self.make_trial = make_trial
        self.note = note or (lambda text: None)
        self.results: dict[str, list[TrialResult]] = {}  # a candidate's first trial id -> its ok results

    def record(self, trial_id: str, result: TrialResult) -> None:
        if result.ok:
            self.results.setdefault(trial_id, []).append(result)

    def evidence(self, c: Candidate | PathEntry, axis: str | None = None) -> Evidence:
        return Evidence.from_results(axis or c.axis, c.gflops, self.results.get(c.trial_id or "", []))

    def confidence(self, step: int, rnd: int, ok: list[Candidate], parent: PathEntry) -> StepConfidence:
        ev = [self.evidence(c) for c in ok]
        parent_ev = self.evidence(parent, "parent") if self.results.get(parent.trial_id) else None
        std, source = choose_seed_std(self.cfg.seed_std, seed_spread(
            [r.top1 for r in rs] for rs in self.results.values()), ev)
        return step_confidence(self.exp.selection, ev, parent_ev, parent.gflops, std, source,
                               seed=derive_seed(self.exp.search.seed, step, "confidence", rnd))

    def _pick(self, ok: list[Candidate], parent: PathEntry) -> int:
        scored = [Scored(c.axis, c.gflops, self.evidence(c).top1) for c in ok]
        return select(self.exp.selection, scored, parent.top1, parent.gflops)

    def decide(self, step: int, ok: list[Candidate], parent: PathEntry) -> Decision:
        """The step's winner among trained candidates ``ok`` (updated in place: top-1 means, seeds, confidence)."""
        extra, rnd = 0, 0
        while True:
            conf = self.confidence(step, rnd, ok, parent)
            w = self._pick(ok, parent)
            left = self.cfg.max_extra_trials - extra
            if left <= 0 or math.isnan(conf.confidence[w]) or conf.confidence[w] >= self.cfg.confidence:
                break
            contenders = self._contenders(conf.confidence, w)[:left]
            rnd += 1
            seed = derive_seed(self.exp.search.seed, step, "confirm", rnd)
            trials = {c.trial_id: self.make_trial(c, seed, seed_trial_id(c.trial_id, rnd + 1))
                      for c in (ok[i] for i in contenders)}
            self.note(f"step {step}: {ok[w].axis} is the pick with confidence {conf.confidence[w]:.2f} "
                      f"< {self.cfg.confidence:g}; confirming {', '.join(ok[i].axis for i in contenders)} "
                      f"with another seed (round {rnd}, {left - len(trials)} extra trials left)")
            results = self.train(list(trials.values()))
            extra += len(trials)
            for base, t in trials.items():
                c = next(c for c in ok if c.trial_id == base)
                c.seed_trials.append(t.trial_id)
                self.record(base, results[t.trial_id])
        for i, c in enumerate(ok):
            rs = self.results.get(c.trial_id or "", [])
            c.top1 = sum(r.top1 for r in rs) / len(rs)
            c.top5 = sum(r.top5 for r in rs) / len(rs)
            c.seeds = len(rs)
            c.confidence, c.top1_se = conf.confidence[i], conf.se[i]
        return Decision(ok[w], conf, extra, rnd)

    def _contenders(self, confidence: list[float], winner: int) -> list[int]:
        """Candidates with a real chance of being the pick, most likely first; the pick and one rival at least."""
        order = sorted(range(len(confidence)), key=lambda i: (-confidence[i], i != winner, i))
        close = [i for i in order if confidence[i] >= self.cfg.contender or i == winner]
        if len(close) < 2 and len(order) > 1:
            close = order[:2] if winner in order[:2] else [winner, order[0]]
        return sorted(close, key=lambda i: (i != winner, -confidence[i], i))
