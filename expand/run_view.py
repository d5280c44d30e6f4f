"""``Run``: a run folder as a researcher uses it from Python — tables as DataFrames, models as modules.

``expand.load_run(path)`` (and ``expand.search`` / ``expand.resume``, which
return one) reads the folder the CLI writes; nothing here writes unless you
ask it to train (``contract(..., train=True)``). Reading never takes the run's
lock, so a Run can watch a search that is still going: each property reads
the folder again.

Units: DataFrames keep fractions and say so (``top1_frac`` 0.37 is 37 %), as steps.csv does.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from expand.errors import InputError
from expand.spec import FACTORS, ArchSpec
from expand.tables import num
from expand.weights import load_weights, weights_file

if TYPE_CHECKING:
    from expand.export import ExportedModel
    import torch

    from expand.config import Experiment
    from expand.run import RunState


@dataclass(frozen=True)
class Contraction:
    """The path contracted to a FLOP budget (paper §4): the model, and its accuracy if it was trained.

    ``trial_id`` names the trial that trained exactly this model: the
    contraction's own (``contract-<gflops>``) or a path model it reuses
    (when the budget lands on one), so ``top1_frac`` and weights come from there.
    """

    target_gflops: float
    spec: Optional[ArchSpec]
    gflops: float
    params: int
    step: int
    axis: str
    within_tolerance: bool
    note: str
    top1_frac: float = math.nan
    trial_id: Optional[str] = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], trained: dict[str, float]) -> "Contraction":
        tid = d.get("trial_id") or d.get("from_trial")
        top1 = d.get("top1")
        if top1 is None and tid in trained:
            top1 = trained[tid]
        return cls(float(d["target_gflops"]), ArchSpec.from_dict(d["spec"]) if d.get("spec") else None,
                   float(d.get("gflops") or math.nan), int(d.get("params") or 0), int(d.get("step") or 0),
                   str(d.get("axis") or ""), bool(d.get("within_tolerance")), str(d.get("note") or ""),
                   math.nan if top1 is None else float(top1), tid if top1 is not None else None)


class Run:
    """One run folder (an expansion, a baseline or a calibration), read on demand."""

    def __init__(self, folder: str) -> None:
        from expand.api import load_run

        run, _, experiment = load_run(folder)  # exit-2 errors for a folder that is not a run
        self.folder: str = run.path
        self.experiment: "Experiment" = experiment
        self._dir = run

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> "RunState":
        return self._dir.state()

    @property
    def kind(self) -> str:
        return self.state.kind

    @property
    def status(self) -> str:
        """As ``show`` says it: ``stopped`` for a run state.json calls running that nobody writes."""
        from expand.run.status import live_status

        s = self.state
        return live_status(self.folder, {"status": s.status, "stop_reason": s.stop_reason})[0]

    def __repr__(self) -> str:
        s = self.state
        return f"Run({self.folder!r}, {s.kind}, {self.status}, {len(s.path)} path models)"

    # ------------------------------------------------------------------ tables
    @property
    def steps(self) -> pd.DataFrame:
        """One row per candidate (step 0 the basis), the columns of steps.csv."""
        from expand.results import step_frame

        return step_frame(self.folder)

    @property
    def path(self) -> pd.DataFrame:
        """The chosen path (for a baseline: its best model), one row per step, with where its weights are."""
        rows = []
        for p in self._path_entries():
            tid = p["trial_id"]
            file = weights_file(self.folder, tid)
            rows.append({"step": p["step"], "axis": p["axis"], **{f: p["spec"][f] for f in FACTORS},
                         "gflops": p["gflops"], "params": p["params"], "top1_frac": p["top1"], "top5_frac": p["top5"],
                         "trial_id": tid, "weights": file if os.path.isfile(file) else None})
        return pd.DataFrame(rows, columns=["step", "axis", *FACTORS, "gflops", "params", "top1_frac",
                                           "top5_frac", "trial_id", "weights"])

    @property
    def trials(self) -> pd.DataFrame:
        """Every trial's last attempt: factors, cost, accuracy, status, attempts, weights file."""
        from expand.run import latest_by_trial

        rows = []
        for tid, recs in latest_by_trial(self._dir.read_trials().records).items():
            t, r = recs[-1].trial, recs[-1].result
            file = weights_file(self.folder, tid)
            rows.append({"trial_id": tid, "step": t.step, "axis": t.axis, **t.spec.factors(),
                         "gflops": t.gflops, "params": t.params, "seed": t.seed, "status": r.status,
                         "top1_frac": num(r.top1), "top5_frac": num(r.top5), "seconds": sum(x.result.seconds for x in recs),
                         "attempts": len(recs), "device": r.device, "host": r.extra.get("host"),
                         "error": r.error or "",
                         "weights": file if os.path.isfile(file) else None})
        return pd.DataFrame(rows, columns=["trial_id", "step", "axis", *FACTORS, "gflops", "params", "seed",
                                           "status", "top1_frac", "top5_frac", "seconds", "attempts", "device", "host",
                                           "error", "weights"])

    @property
    def attempts(self) -> pd.DataFrame:
        """Every attempt of every trial as it finished (``show --trials``): retries and failures too,
        with the device, host and whole error; :attr:`trials` keeps each trial's last."""
        from expand.attempts import COLUMNS, attempt_rows
        from expand.tables import machine_key

        return pd.DataFrame(attempt_rows(self.folder), columns=COLUMNS).rename(columns=machine_key)

    @property
    def environment(self) -> pd.DataFrame:
        """One row per session that trained in the run (RUN/environment.jsonl): time, command, code
        version and git commit, Python, host, CPU, and a column per package version."""
        from expand.run import environment

        rows = [{**{k: v for k, v in s.items() if k != "packages"}, **(s.get("packages") or {})}
                for s in environment.sessions(self.folder)]
        return pd.DataFrame(rows)

    @property
    def calibration(self) -> pd.DataFrame:
        """A calibration run's verdict, one row per schedule multiple: Kendall tau against the longest,
        the rule's pick, seed std, cost, and ``recommended`` (``.attrs["why"]`` says why)."""
        state = self._dir.read_state()
        if state.get("kind") != "calibration":
            raise InputError(f"{self.folder}: not a calibration run (its kind: {state.get('kind', 'expansion')}); "
                             "'x3d-expand calibrate' makes one")
        summary = state.get("summary") or {}
        rows = [{"multiplier": p["multiplier"], "kendall_tau": p["kendall_tau"], "pick": p["pick"],
                 "same_pick": p["same_pick"], "mean_top1_frac": p["mean_top1"], "seed_std_frac": p["seed_std"],
                 "trial_seconds": p["trial_seconds"],
                 "recommended": p["multiplier"] == summary.get("recommended_multiplier")}
                for p in summary.get("per_schedule", [])]
        frame = pd.DataFrame(rows, columns=["multiplier", "kendall_tau", "pick", "same_pick", "mean_top1_frac",
                                            "seed_std_frac", "trial_seconds", "recommended"])
        frame.attrs["why"] = summary.get("why") or f"no summary yet (status {state.get('status')}; resume it)"
        return frame

    @property
    def contractions(self) -> list[Contraction]:
        """Contractions saved in the run folder (by ``contract`` or the search's targets)."""
        from expand.search.coordinator import load_contractions

        trained = self._trained_top1()
        return [Contraction.from_dict(c, trained) for c in load_contractions(self._dir)]

    # ------------------------------------------------------------------ models
    def contract(self, gflops: float, train: bool = False, runner: Optional[str] = None) -> Contraction:
        """The path contracted to ``gflops`` (computed, not saved); ``train=True`` trains and saves it."""
        from expand import contracting
        from expand.complexity import ComplexityCounter
        from expand.preflight import check_contract_targets, check_has_path
        from expand.search.coordinator import contract_path, load_contractions

        path = self.state.path
        check_has_path(self.folder, self.state.kind, path)
        check_contract_targets(path, [gflops], "gflops")
        if train:
            _, items = contracting.contract(self.folder, [gflops], train=True, runner=runner)
        else:
            items = load_contractions(self._dir)
        item = next((c for c in items if c["target_gflops"] == gflops), None)
        if item is None:  # not saved: computed now
            item = contract_path(path, [gflops], self.experiment.search_space, ComplexityCounter())[0]
        return Contraction.from_dict(item, self._trained_top1())

    def best(self, budget_gflops: Optional[float] = None) -> Optional[pd.Series]:
        """The most accurate trained model at or under the budget (any trial, contracted included).

        A model confirmed with several seeds competes with its mean (``top1_frac``,
        ``top5_frac``; ``seeds`` says how many), as its step decided: not with its
        luckiest seed. The row is its first trial's.
        """
        from expand.preflight import check_gflops
        from expand.run import latest_by_trial
        from expand.search.decide import model_scores

        if budget_gflops is not None:
            check_gflops(budget_gflops, "budget_gflops")
        models = [m for m in model_scores(latest_by_trial(self._dir.read_trials().records))
                  if budget_gflops is None or m.gflops <= budget_gflops * (1 + 1e-9)]
        if not models:
            return None
        best = min(models, key=lambda m: (-m.top1, m.gflops))  # the first trained of equals
        t = self.trials
        row = t[t.trial_id == best.trial_id].iloc[0].copy()  # its first trial's row, at the model's means
        row["top1_frac"], row["top5_frac"], row["seeds"] = best.top1, num(best.top5), best.seeds
        return row

    def stop(self) -> str:
        """``x3d-expand stop``: ask the process writing this run to stop after its running trials
        (from a notebook beside a search started elsewhere); returns who writes it."""
        from expand.run.stop import request_stop

        return request_stop(self.folder)

    def export(self, step: Optional[int] = None, budget: Optional[float] = None,
               format: str = "slowfast") -> "ExportedModel":
        """``x3d-expand export``: write a path step's or a budget's model (a baseline: its best under
        ``budget``) as a SlowFast YAML, an mmaction2 config or pytorchvideo's create_x3d keywords, under
        ``RUN/export``; the record says where, and the command that trains it (``.command``)."""
        from expand.export import FORMATS, export_run
        from expand.preflight import check_gflops

        if format not in FORMATS:
            raise InputError(f"export: format must be one of {', '.join(FORMATS)}, got {format!r}")
        if step is not None and budget is not None:
            raise InputError("export: give step or budget, not both")
        if not _a_step(step):
            raise InputError(f"export: step must be an integer, got {step!r}")
        return export_run(self.folder, step=step, target_gflops=None if budget is None else check_gflops(
            budget, "budget"), fmt=format)

    def spec(self, step: Optional[int] = None, budget: Optional[float] = None,
             trial: Optional[str] = None) -> tuple[ArchSpec, Optional[str]]:
        """The spec a :meth:`model` call means, and the trial that trained it (None: never trained)."""
        if sum(x is not None for x in (step, budget, trial)) > 1:
            raise InputError("model: give at most one of step, budget and trial")
        if not _a_step(step):
            raise InputError(f"step: must be an integer (0 = the basis), got {step!r}")
        if budget is not None:
            from expand.preflight import check_gflops

            check_gflops(budget, "budget")
        if trial is not None:
            rec = next((r for r in self._dir.read_trials().records if r.trial.trial_id == trial), None)
            if rec is None:
                raise InputError(f"trial {trial!r}: no such trial in {self.folder}")
            return rec.trial.spec, trial
        if budget is not None and self.state.kind != "expansion":  # a baseline: its best within the budget
            row = self.best(budget)
            if row is None:
                raise InputError(f"budget {budget:g} GFLOPs: the {self.state.kind} baseline trained no model "
                                 "at or under it")
            return self.spec(trial=row.trial_id)
        if budget is not None:
            c = self.contract(budget)
            if c.spec is None:
                raise InputError(f"budget {budget:g} GFLOPs: {c.note}")
            return c.spec, c.trial_id
        entries = self._path_entries()
        if not entries:
            raise InputError(f"{self.folder}: the run has no trained model yet")
        if step is None:
            entry = entries[-1]
        else:
            entry = next((p for p in entries if p["step"] == step), None)
            if entry is None:
                raise InputError(f"step {step}: the path has steps {entries[0]['step']}..{entries[-1]['step']}")
        return ArchSpec.from_dict(entry["spec"]), entry["trial_id"]

    def model(self, step: Optional[int] = None, budget: Optional[float] = None, weights: bool = True,
              trial: Optional[str] = None, device: str = "cpu") -> "torch.nn.Module":
        """A path model (default: the last step), a contracted budget's model or a trial's, in eval mode.

        ``weights=True`` loads the trained weights the trial kept
        (``trial.checkpoint``); ``weights=False`` builds a fresh network of
        that spec (for the oracle, or to train it at full length yourself).
        """
        spec, trial_id = self.spec(step, budget, trial)
        if not weights:
            from expand.models.x3d import build_x3d

            return build_x3d(spec, num_classes=spec.num_classes).to(device).eval()
        what = f"step {step}" if step is not None else f"budget {budget:g}" if budget is not None else \
            f"trial {trial}" if trial else "the last path model"
        if trial_id is None:
            raise InputError(f"{what} ({spec.name}) was not trained: run.contract({budget:g}, train=True) "
                             "trains it, or pass weights=False for a fresh network")
        file = weights_file(self.folder, trial_id)
        if not os.path.isfile(file):
            raise InputError(f"{what}: trial {trial_id} kept no weights ({file} is missing; "
                             f"trial.checkpoint is {self.experiment.trial.checkpoint!r}, and a trial "
                             "function other than the trainer may write none); pass weights=False")
        return load_weights(file, device)

    # ------------------------------------------------------------------ helpers
    def _path_entries(self) -> list[dict[str, Any]]:
        state = self.state
        if state.kind == "expansion":
            return [p.to_dict() for p in state.path]
        best = state.extra.get("best")
        if not best:
            return []
        recs = [r for r in self._dir.read_trials().records if r.trial.trial_id == best["trial_id"]]
        t, r = recs[-1].trial, recs[-1].result
        return [{"step": t.step, "axis": t.axis, "trial_id": t.trial_id, "spec": t.spec.to_dict(),
                 "gflops": t.gflops, "params": t.params, "top1": r.top1, "top5": r.top5}]

    def _trained_top1(self) -> dict[str, float]:
        t = self.trials
        return {r.trial_id: r.top1_frac for r in t.itertuples() if r.status == "ok"}


def _a_step(step: Any) -> bool:
    """None (not given) or an integer; a bool or a float is a caller's mistake, not step 1."""
    return step is None or (not isinstance(step, bool) and isinstance(step, numbers.Integral))


def load_run(path: str) -> Run:
    """A run folder as a :class:`Run` (a folder that is not a run is a one-line InputError)."""
    return Run(path)


__all__ = ["Run", "Contraction", "load_run"]
