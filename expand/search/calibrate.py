"""``x3d-expand calibrate``: is the trial schedule long enough to rank the candidates?

A search decides each step on short trials. That is only sound if a short
trial ranks candidates as a longer one would. Calibration trains the first
step's candidates (and the basis, the parent the rule measures gains against)
at 1x, 2x and 4x the experiment's schedule, optionally with several seeds,
and reports per schedule: Kendall's tau of the candidates' mean top-1 against
the longest schedule, the seed-to-seed std, the rule's pick and whether it is
the longest schedule's. It recommends the shortest schedule that ranks like
the longest (tau at least ``min_tau`` and the same pick). The measured seed
std is what ``search.confirm.seed_std`` wants.

It is an ordinary run folder (kind ``calibration``): trials are recorded in
``trials.jsonl``, so ``resume`` retrains nothing that finished.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd

from expand.config import Experiment
from expand.run import RunDir
from expand.search.axes import AxisExhausted, expand
from expand.weights import apply_policy
from expand.search.executor import TrialExecutor
from expand.search.progress import Progress, SilentProgress
from expand.search.runners import Runner
from expand.search.time_limits import TimeLimits
from expand.search.select import Scored, select
from expand.search.trial import TrialResult, TrialSpec, derive_seed
from expand.spec import ArchSpec

DEFAULT_MULTIPLIERS = (1.0, 2.0, 4.0)
DEFAULT_MIN_TAU = 0.8


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking counted as neither concordant nor discordant)."""
    n = len(x)
    conc = disc = tie_x = tie_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tie_x += 1
            elif dy == 0:
                tie_y += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tie_x) * (conc + disc + tie_y))
    return (conc - disc) / denom if denom else math.nan


def scaled_experiment(resolved: dict[str, Any], multiplier: float) -> dict[str, Any]:
    """The experiment with its schedule ``multiplier`` times as long (epochs, or iterations if set)."""
    d = copy.deepcopy(resolved)
    sched = d["schedule"]
    if sched.get("iterations"):
        sched["iterations"] = max(1, int(round(sched["iterations"] * multiplier)))
    else:
        sched["epochs"] = sched["epochs"] * multiplier
    return d


@dataclass(frozen=True)
class Model:
    axis: str  # "basis" or the step-1 axis
    spec: ArchSpec
    gflops: float
    params: int


class Calibration:
    def __init__(self, exp: Experiment, run: RunDir, runner: Runner, counter: Any,
                 multipliers: Sequence[float] = DEFAULT_MULTIPLIERS, seeds: int = 1,
                 min_tau: float = DEFAULT_MIN_TAU, progress: Progress | None = None,
                 extra_state: dict[str, Any] | None = None) -> None:
        self.exp, self.run_dir, self.runner, self.counter = exp, run, runner, counter
        self.multipliers = sorted(set(float(m) for m in multipliers))
        self.seeds, self.min_tau = seeds, min_tau
        self.progress = progress or SilentProgress()
        self.extra_state = dict(extra_state or {})
        self.executor = TrialExecutor(run, runner, exp.retries, self.progress,
                                      limits=TimeLimits.of(exp.trial))

    def models(self) -> list[Model]:
        """The basis and its distinct expansions: the first step of a search."""
        space = self.exp.search_space
        out = [Model("basis", space.basis, self.counter.gflops(space.basis), self.counter.params(space.basis))]
        seen = {space.basis}
        for axis in space.axes:
            try:
                e = expand(space.basis, axis, space, self.counter)
            except AxisExhausted:
                continue
            if e.spec not in seen:
                seen.add(e.spec)
                out.append(Model(axis, e.spec, e.gflops, self.counter.params(e.spec)))
        return out

    def trials(self) -> list[TrialSpec]:
        run_seed = self.exp.search.seed
        resolved = self.exp.to_dict()
        out = []
        for m in self.multipliers:
            d = scaled_experiment(resolved, m)
            for s in range(self.seeds):
                # seed 1 is the search's own step-1 seed; more seeds are new, shared by all models
                seed = derive_seed(run_seed, 1) if s == 0 else derive_seed(run_seed, 1, "calibrate", s)
                for model in self.models():
                    tid = f"x{m:g}-{model.axis}-seed{s + 1}"
                    out.append(TrialSpec(tid, 0 if model.axis == "basis" else 1, model.axis, model.spec, seed,
                                         model.gflops, model.params, experiment=d,
                                         out_dir=self.run_dir.file("trials", tid)))
        return out

    def run(self) -> dict[str, Any]:
        trials = self.trials()
        self._write_state("running")
        results = self.executor.train(trials)
        # a calibration has no path: under trial.checkpoint "path" no trial keeps its weights
        apply_policy(self.run_dir.path, self.exp.trial.checkpoint, ())
        rows = candidate_rows(trials, results)
        summary = summarize(rows, self.exp.selection, self.min_tau)
        from expand.tables import machine_key

        # fractions, named so (top1_frac), as in every CSV; write_plots reads them back
        self.run_dir.write_text("calibration.csv", pd.DataFrame(rows).rename(columns=machine_key).to_csv(index=False))
        state = self._write_state("finished", rows, summary)
        from expand.plots import plot_calibration

        plot_calibration(rows, summary, self.run_dir.file("plots", "calibration.png"))
        return state

    def _write_state(self, status: str, rows: Optional[list] = None, summary: Optional[dict] = None) -> dict:
        state = {**self.extra_state, "name": self.exp.name, "kind": "calibration", "status": status,
                 "multipliers": self.multipliers, "seeds": self.seeds, "min_tau": self.min_tau,
                 "schedule": self.exp.to_dict()["schedule"], "selection": self.exp.selection,
                 "stop_reason": "calibrated" if status == "finished" else "",
                 **({"summary": summary} if summary else {})}
        self.run_dir.write_state(state)
        return state


def candidate_rows(trials: list[TrialSpec], results: dict[str, TrialResult]) -> list[dict[str, Any]]:
    """One row per (schedule, model): mean and std of top-1 over the seeds that trained."""
    groups: dict[tuple[float, str], list[tuple[TrialSpec, TrialResult]]] = {}
    for t in trials:
        sched = t.experiment["schedule"]
        key = (sched.get("iterations") or sched["epochs"], t.axis)
        groups.setdefault(key, []).append((t, results[t.trial_id]))
    base = min(k[0] for k in groups)
    rows = []
    for (length, axis), items in groups.items():
        ok = [r.top1 for _, r in items if r.ok]
        t = items[0][0]
        rows.append({"multiplier": length / base, "schedule": length, "axis": axis, "model": t.spec.name,
                     "gflops": t.gflops, "top1": statistics.mean(ok) if ok else math.nan,
                     "top1_std": statistics.stdev(ok) if len(ok) > 1 else math.nan, "seeds": len(ok),
                     "failed": len(items) - len(ok), "trial_seconds": sum(r.seconds for _, r in items)})
    return rows


def summarize(rows: list[dict[str, Any]], rule: str, min_tau: float) -> dict[str, Any]:
    """Per schedule: tau against the longest, seed std, the rule's pick; and the recommendation."""
    by_m: dict[float, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_m.setdefault(r["multiplier"], {})[r["axis"]] = r
    longest = max(by_m)
    ref = by_m[longest]
    axes = [a for a in ref if a != "basis" and not math.isnan(ref[a]["top1"])]
    per: list[dict[str, Any]] = []
    for m in sorted(by_m):
        cur = by_m[m]
        common = [a for a in axes if a in cur and not math.isnan(cur[a]["top1"])]
        basis = cur.get("basis", {})
        pick = None
        if common and basis and not math.isnan(basis.get("top1", math.nan)):
            scored = [Scored(a, cur[a]["gflops"], cur[a]["top1"]) for a in common]
            pick = common[select(rule, scored, basis["top1"], basis["gflops"])]
        stds = [cur[a]["top1_std"] for a in cur if not math.isnan(cur[a]["top1_std"])]
        per.append({"multiplier": m, "kendall_tau": kendall_tau([cur[a]["top1"] for a in common],
                                                               [ref[a]["top1"] for a in common]),
                    "seed_std": math.sqrt(statistics.mean(s * s for s in stds)) if stds else math.nan,
                    "pick": pick, "mean_top1": statistics.mean(cur[a]["top1"] for a in common) if common else math.nan,
                    "trial_seconds": sum(r["trial_seconds"] for r in cur.values())})
    ref_pick = per[-1]["pick"]
    for p in per:
        p["same_pick"] = p["pick"] == ref_pick
    good = [p for p in per[:-1] if p["kendall_tau"] >= min_tau and p["same_pick"]]
    if good:
        rec = good[0]
        why = (f"the shortest schedule whose ranking matches the {longest:g}x one "
               f"(tau {rec['kendall_tau']:.2f} >= {min_tau:g}, same pick)")
    else:
        rec = per[-1]
        why = (f"no shorter schedule ranks like the {longest:g}x one (tau >= {min_tau:g} and the same pick); "
               "a longer one may rank better still")
    return {"per_schedule": per, "recommended_multiplier": rec["multiplier"], "why": why}


def render_calibration(state: dict[str, Any], fmt: str = "table") -> str:
    from expand.tables import latex_commented, render

    summary = state.get("summary")
    if not summary:
        return f"calibration {state.get('name')}: {state.get('status')} (no summary yet; resume it)"
    columns = ["multiplier", "kendall_tau", "pick", "same_pick", "mean_top1", "seed_std", "trial_seconds"]
    if fmt in ("csv", "json"):  # fractions, in *_frac columns
        return render(summary["per_schedule"], columns, fmt)
    rows = [{**p, "kendall_tau": _r(p["kendall_tau"]), "seed_std": _pct(p["seed_std"]),
             "mean_top1": _pct(p["mean_top1"]), "trial_seconds": round(p["trial_seconds"])}
            for p in summary["per_schedule"]]
    table = render(rows, columns, fmt, digits=3,
                   headers=["schedule", "kendall_tau", "pick", "same_pick", "mean top1 %", "seed std (pts)",
                            "trial-seconds"])
    sched = state.get("schedule") or {}
    length = f"{sched.get('iterations')} iterations" if sched.get("iterations") else f"{sched.get('epochs')} epochs"
    text = "\n".join([
        f"calibration of {state.get('name')}: step-1 candidates at {', '.join(f'{m:g}x' for m in state['multipliers'])} "
        f"the schedule ({length}), {state.get('seeds')} seed(s) each", "", table, "",
        f"recommended: {summary['recommended_multiplier']:g}x the schedule: {summary['why']}.",
        "kendall_tau: rank agreement of the candidates' mean top-1 with the longest schedule (1: same order); "
        "seed std: top-1 points between seeds (search.confirm.seed_std wants it as a fraction); "
        "mean top1 in %."])
    return latex_commented(text) if fmt == "latex" else text


def _pct(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _r(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"
