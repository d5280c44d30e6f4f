"""Forward expansion and backward contraction: the X3D search itself.

The coordinator is deterministic given the trial results: each step's
candidates follow from the parent spec, the trial ids from (step, axis), the
seeds from (run seed, step), the winner from the selection rule. Resume
therefore *replays* the search against ``trials.jsonl``: a trial already
finished there is never run again, and the path comes out identical to an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from expand.config import Experiment
from expand.search.axes import AxisExhausted, contract, expand
from expand.weights import apply_policy
from expand.search.decide import Decision, StepDecider
from expand.search.executor import TrialExecutor
from expand.search.lookahead import Lookahead
from expand.search.progress import Progress, SilentProgress
from expand.search.runners import Runner
from expand.search.time_limits import TimeLimits
from expand.search.select import Scored, rule_description, select
from expand.search.trial import TrialResult, TrialSpec, derive_seed
from expand.run import Candidate, PathEntry, RunDir
from expand.spec import ArchSpec
from expand.tables import clean_nans


@dataclass
class SearchOutcome:
    path: list[PathEntry]
    steps: list[dict[str, Any]]
    stop_reason: str
    contractions: list[dict[str, Any]] = field(default_factory=list)


class Coordinator:
    def __init__(
        self,
        experiment: Experiment,
        run: RunDir,
        runner: Runner,
        counter: Any,
        progress: Progress | None = None,
        extra_state: dict[str, Any] | None = None,
        lookahead: bool | None = None,
    ) -> None:
        """``lookahead``: count likely next candidates while trials run (default:
        when the runner runs trials outside this process)."""
        self.exp = experiment
        self.space = experiment.search_space
        self.run_dir = run
        self.runner = runner
        self.counter = counter
        self.progress = progress or SilentProgress()
        self.extra_state = dict(extra_state or {})
        self.executor = TrialExecutor(run, runner, experiment.retries, self.progress,
                                      on_pending=lambda ids: self._write_state(pending=ids),
                                      limits=TimeLimits.of(experiment.trial))
        self.resolved = experiment.to_dict()
        self.path: list[PathEntry] = []
        self.steps: list[dict[str, Any]] = []
        self.stop_reason = ""
        if lookahead is None:
            lookahead = not getattr(runner, "trials_in_process", True)
        self.lookahead: Lookahead | None = Lookahead(self.space, counter) if lookahead else None
        # fvcore counts each step waited for after its parent's batch: what the lookahead missed
        self.counted_between_steps: list[int] = []
        self.decider = StepDecider(experiment, self.train, self._seed_trial, note=self.progress.note)

    # ------------------------------------------------------------------ trials
    def _trial(self, step: int, axis: str, spec: ArchSpec, trial_id: str, parent_id: str | None,
               seed: int | None = None) -> TrialSpec:
        c = self.counter.count(spec)
        return TrialSpec(
            trial_id=trial_id,
            step=step,
            axis=axis,
            spec=spec,
            # shared by the step's candidates (a confirmation round shares its own new seed)
            seed=derive_seed(self.exp.search.seed, step) if seed is None else seed,
            gflops=c.gflops,
            params=c.params,
            experiment=self.resolved,
            out_dir=self.run_dir.file("trials", trial_id),
            parent_id=parent_id,
        )

    def train(self, trials: list[TrialSpec]) -> dict[str, TrialResult]:
        return self.executor.train(trials)

    def _seed_trial(self, c: Candidate, seed: int, trial_id: str) -> TrialSpec:
        """A confirmation trial: candidate ``c`` again, with another seed."""
        return self._trial(c.step, c.axis, c.spec, trial_id, self.path[-1].trial_id, seed=seed)

    def _train_counting_ahead(self, trials: list[TrialSpec], parents: list[ArchSpec],
                              on_result: Any = None) -> dict[str, TrialResult]:
        """Train ``trials`` while the lookahead expands ``parents``: the possible next parents."""
        if self.lookahead is None or not parents:
            return self.train(trials)
        self.lookahead.submit(parents)
        try:
            return self.executor.train(trials, on_result=on_result)
        finally:
            self.lookahead.cancel()

    def _train_step(self, step: int, parent: PathEntry, runnable: list[Candidate],
                    trials: list[TrialSpec]) -> dict[str, TrialResult]:
        """Train a step's trials, counting ahead for the provisional winner first."""
        if self.lookahead is None or step >= self.exp.search.max_steps:
            return self.train(trials)
        targets = self.exp.search.targets
        last = max(targets) if targets else math.inf  # a parent past it ends the search
        by_id = {c.trial_id: c for c in runnable}
        ok: list[Candidate] = []

        def provisional_winner(trial: TrialSpec, result: TrialResult) -> None:
            if result.ok and trial.trial_id in by_id:
                ok.append(dataclasses.replace(by_id[trial.trial_id], top1=result.top1))
                self.lookahead.prefer(self._winner(ok, parent).spec)

        return self._train_counting_ahead(trials, [c.spec for c in runnable if c.gflops <= last],
                                          provisional_winner)

    def _winner(self, ok: list[Candidate], parent: PathEntry) -> Candidate:
        """The selection rule's pick among trained candidates."""
        scored = [Scored(c.axis, c.gflops, c.top1) for c in ok]
        return ok[select(self.exp.selection, scored, parent.top1, parent.gflops)]

    # ------------------------------------------------------------------ steps
    def _candidates(self, step: int, parent: PathEntry) -> list[Candidate]:
        cands: list[Candidate] = []
        seen: dict[ArchSpec, Candidate] = {}
        cap = self.exp.search.max_gflops
        for axis in self.space.axes:
            try:
                e = expand(parent.spec, axis, self.space, self.counter)
            except AxisExhausted as exc:
                cands.append(Candidate(step, axis, None, status="skipped", reason=str(exc)))
                continue
            c = Candidate(step, axis, e.spec, e.gflops, self.counter.params(e.spec), e.ratio)
            if cap is not None and e.gflops > cap:
                c.status, c.reason = "skipped", f"{e.gflops:.4g} GFLOPs is over the cap {cap:g}"
            elif e.spec in seen:
                first = seen[e.spec]
                c.status, c.trial_id = "duplicate", first.trial_id
                c.reason = f"same model as {first.axis}"
            else:
                c.trial_id = f"s{step:02d}-{axis}"
                seen[e.spec] = c
            cands.append(c)
        return cands

    def _step_record(self, step: int, parent: PathEntry, cands: list[Candidate], chosen: str | None,
                     decision: Decision | None = None) -> dict[str, Any]:
        record = {
            "step": step,
            "parent_id": parent.trial_id,
            "parent_gflops": parent.gflops,
            "parent_top1": parent.top1,
            "chosen_axis": chosen,
            "rule": self.exp.selection,
            "candidates": [c.to_dict() for c in cands],
        }
        if decision is not None:
            conf = decision.confidence
            record.update(confidence=decision.winner.confidence, seed_std=conf.seed_std,
                          seed_std_source=conf.seed_std_source, confidence_method=conf.method,
                          extra_trials=decision.extra_trials)
        return record

    def _write_state(self, pending: list[str] | None = None, status: str = "running") -> None:
        self.run_dir.write_state(
            {
                **self.extra_state,
                "name": self.exp.name,
                "kind": "expansion",
                "status": status,
                "stop_reason": self.stop_reason,
                "selection": self.exp.selection,
                "selection_rule": rule_description(self.exp.selection),
                "confidence_level": self.exp.search.confirm.confidence,
                "step": len(self.path) - 1,
                "path": [p.to_dict() for p in self.path],
                "steps": self.steps,
                "pending": pending or [],
            }
        )

    def run(self) -> SearchOutcome:
        try:
            return self._run()
        finally:
            if self.lookahead is not None:
                self.lookahead.close()

    def _run(self) -> SearchOutcome:
        basis = self.space.basis
        self.progress.search_started(self.exp, len(self.space.axes))
        with self.progress.phase("counting the basis's FLOPs (fvcore)"):
            basis_trial = self._trial(0, "basis", basis, "s00-basis", None)
        # step 1's candidates are the basis's expansions: counted while the basis trains
        step1_parent = [basis] if self.exp.search.max_steps >= 1 else []
        result = self._train_counting_ahead([basis_trial], step1_parent)[basis_trial.trial_id]
        if not result.ok:
            self.stop_reason = f"the basis trial {result.status}: {result.error_line}"
            self._write_state(status="failed")
            return SearchOutcome(self.path, self.steps, self.stop_reason)
        self.decider.record(basis_trial.trial_id, result)
        self.path.append(PathEntry(0, "basis", basis_trial.trial_id, basis, basis_trial.gflops,
                                   basis_trial.params, result.top1, result.top5))
        targets = sorted(self.exp.search.targets)
        for step in range(1, self.exp.search.max_steps + 1):
            parent = self.path[-1]
            if targets and parent.gflops > targets[-1]:
                self.stop_reason = f"the path passed the largest target ({targets[-1]:g} GFLOPs)"
                break
            misses = getattr(self.counter, "misses", 0)
            with self.progress.phase(f"step {step}: counting the candidates' FLOPs (fvcore)"):
                cands = self._candidates(step, parent)
            self.counted_between_steps.append(getattr(self.counter, "misses", 0) - misses)
            runnable = [c for c in cands if c.status == "pending"]
            if not runnable:
                self.steps.append(self._step_record(step, parent, cands, None))
                self.stop_reason = f"step {step}: every axis is exhausted or over the FLOP cap"
                break
            self.steps.append(self._step_record(step, parent, cands, None))
            self.progress.step_started(step, parent, cands)
            trials = [self._trial(step, c.axis, c.spec, c.trial_id, parent.trial_id) for c in runnable]
            results = self._train_step(step, parent, runnable, trials)
            by_id = {c.trial_id: c for c in runnable}
            for c in cands:
                if c.trial_id in results:
                    r = results[c.trial_id]
                    c.top1, c.top5 = r.top1, r.top5
                    if c.status != "duplicate":
                        c.status = r.status
                        c.reason = r.error_line
            ok = [c for c in by_id.values() if c.status == "ok"]
            if not ok:
                self.steps[-1] = self._step_record(step, parent, cands, None)
                self.stop_reason = f"step {step}: no candidate trained successfully"
                break
            for c in ok:
                self.decider.record(c.trial_id, results[c.trial_id])
            decision = self.decider.decide(step, ok, parent)
            winner = decision.winner
            winner.chosen = True
            for c in cands:  # a duplicate shows its model's averages (its confidence is the original's)
                if c.status == "duplicate" and c.trial_id in by_id:
                    c.top1, c.top5, c.seeds = by_id[c.trial_id].top1, by_id[c.trial_id].top5, by_id[c.trial_id].seeds
            self.path.append(PathEntry(step, winner.axis, winner.trial_id, winner.spec,
                                       winner.gflops, winner.params, winner.top1, winner.top5))
            self.steps[-1] = self._step_record(step, parent, cands, winner.axis, decision)
            self._write_state()
            # the step is decided: under trial.checkpoint "path" only its winner keeps its weights
            apply_policy(self.run_dir.path, self.exp.trial.checkpoint, (p.trial_id for p in self.path))
            self.progress.step_finished(step, winner, parent)
            if all(c.top1 < parent.top1 for c in ok):  # the rule picked anyway; said live, and in `show`
                self.progress.note(f"step {step}: every trained candidate scored below its parent: no expansion "
                                   "paid off within a trial (if steps keep doing this, check the schedule "
                                   "with `x3d-expand calibrate`)")
        else:
            self.stop_reason = f"reached max_steps ({self.exp.search.max_steps})"
        contractions = []
        if targets:
            with self.progress.phase(f"contracting the path to {len(targets)} budget(s)"):
                contractions = contract_path(self.path, targets, self.space, self.counter)
            save_contractions(self.run_dir, contractions)
        self._write_state(status="finished")
        self.progress.search_finished(self.path, self.stop_reason)
        return SearchOutcome(self.path, self.steps, self.stop_reason, contractions)


# ---------------------------------------------------------------- contraction
def contract_path(path: list[PathEntry], targets: list[float], space: Any, counter: Any) -> list[dict[str, Any]]:
    """For each target: contract the first path step that exceeds it (paper §4)."""
    out = []
    for target in targets:
        entry: dict[str, Any] = {"target_gflops": target}
        over = next((i for i, p in enumerate(path) if p.gflops > target), None)
        if over is None:
            last = path[-1]
            entry.update(step=last.step, axis=last.axis, spec=last.spec.to_dict(), gflops=last.gflops,
                         params=counter.params(last.spec), within_tolerance=abs(last.gflops / target - 1) <= 0.02,
                         note=f"the path never exceeds {target:g} GFLOPs; its last model is "
                              f"{last.gflops:.4g}", from_trial=last.trial_id)
        elif over == 0:
            entry.update(step=0, axis="basis", spec=None, gflops=path[0].gflops, params=0,
                         within_tolerance=False,
                         note=f"impossible: the basis already needs {path[0].gflops:.4g} GFLOPs")
        else:
            parent, child = path[over - 1], path[over]
            c = contract(parent.spec, child.spec, child.axis, target, space, counter)
            entry.update(step=child.step, axis=child.axis, spec=c.spec.to_dict(), gflops=c.gflops,
                         params=counter.params(c.spec), within_tolerance=c.within_tolerance,
                         note=c.note, parent_id=parent.trial_id, child_id=child.trial_id,
                         from_trial=child.trial_id if c.spec == child.spec else
                         parent.trial_id if c.spec == parent.spec else None)
        entry["name"] = ArchSpec.from_dict(entry["spec"]).name if entry.get("spec") else None
        entry["flop_error"] = entry["gflops"] / target - 1 if entry.get("spec") else None
        out.append(reuse_trained(entry, path))
    return out


def reuse_trained(item: dict[str, Any], path: list[PathEntry]) -> dict[str, Any]:
    """A contraction that lands on a path model *is* that trained model: its accuracy, trial and step.

    Also fills contractions saved before this was recorded, so ``show`` and
    ``export`` of an old run see the reused model too.
    """
    entry = next((p for p in path if p.trial_id and p.trial_id == item.get("from_trial")), None)
    if entry is None or not item.get("spec") or ArchSpec.from_dict(item["spec"]) != entry.spec:
        return item
    out = dict(item, reused_step=entry.step, reused_axis=entry.axis)
    if out.get("top1") is None:
        out.update(top1=entry.top1, top5=entry.top5, trial_id=entry.trial_id)
    return out


def contractions_path(run: RunDir) -> str:
    return run.file("contractions.json")


def load_contractions(run: RunDir) -> list[dict[str, Any]]:
    import json

    try:
        with open(contractions_path(run), encoding="utf-8") as fh:
            items = json.load(fh)
    except (FileNotFoundError, ValueError):
        return []
    # Runs written before 2026-12 called the FLOP error "error", the name a trial's message has.
    return [{**{k: v for k, v in c.items() if k != "error"}, "flop_error": c["error"]}
            if "error" in c and "flop_error" not in c else c for c in items]


def saved_contractions(run: RunDir, path: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """contractions.json with reused path models filled in (older runs did not record them)."""
    entries = [PathEntry.from_dict(p) for p in path]
    return [reuse_trained(c, entries) for c in load_contractions(run)]


def save_contractions(run: RunDir, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge by target (a later contraction of the same budget replaces the earlier)."""
    import json

    merged = {c["target_gflops"]: c for c in load_contractions(run)}
    for c in new:
        old = merged.get(c["target_gflops"], {})
        if old.get("spec") == c.get("spec") and "top1" in old and "top1" not in c:
            c = dict(c, top1=old["top1"], top5=old.get("top5"), trial_id=old.get("trial_id"))
        merged[c["target_gflops"]] = c
    items = [merged[k] for k in sorted(merged)]
    run.write_text("contractions.json", json.dumps(clean_nans(items), indent=1, default=str, allow_nan=False))
    return items
