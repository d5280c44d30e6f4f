"""``compare``'s figures: each run's best top-1 under FLOP budgets, its cost, and why two rows may
not be comparable; computed once here for the CLI (which prints) and Python (a DataFrame).

Why a module of its own: a researcher comparing the expansion with baselines in a notebook
wants the numbers, not text to parse; and the CLI's table, CSV, JSON and plot must all come
from one computation, so they cannot disagree.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from expand.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

# how the frames are stored, not which: runs that differ only here trained alike
_NOT_TRAINING = ("data.cache", "data.cache_format", "data.cache_quality")


@dataclass
class ComparedRun:
    """One row: a run's best top-1 (a fraction, NaN where nothing fits) at each budget, and its cost."""

    label: str  # "expansion: demo", "random: b1"
    path: str
    kind: str
    trials: int  # every attempt counts
    device_hours: float
    best_top1: list[float]
    scored_videos: int  # 0: unknown
    binomial_se: float  # near the run's best; NaN: unknown
    points: list[tuple[float, float]] = field(repr=False, default_factory=list)  # (GFLOPs, top-1), every model


@dataclass
class Comparison:
    budgets: list[float]
    runs: list[ComparedRun]
    notes: list[str]  # why a row's top-1 may not be comparable with the first run's

    @property
    def table(self) -> "pd.DataFrame":
        """A row per run; ``best_top1_frac_at_<GF>`` per budget, as ``compare --format csv``."""
        import pandas as pd

        return pd.DataFrame([{
            "run": r.label, "kind": r.kind, "path": r.path, "trials": r.trials, "device_hours": r.device_hours,
            "scored_videos": r.scored_videos, "binomial_se_frac": r.binomial_se,
            **{budget_column(b): v for b, v in zip(self.budgets, r.best_top1)}} for r in self.runs])

    def plot(self, path: str) -> list[str]:
        """The best-top-1-under-GFLOPs lines, one per run, at ``path`` (.png, a .pdf beside it)."""
        from expand.plots import plot_compare

        check_plot_path(path)
        return plot_compare({r.label: r.points for r in self.runs}, self.budgets, path)


def budget_column(budget: float) -> str:
    return f"best_top1_frac_at_{budget:.4g}"


def compare_runs(run_dirs: Sequence[str], budgets: Optional[Sequence[float]] = None) -> Comparison:
    """Every run read once; ``budgets`` default to the first expansion's path steps."""
    from expand.api import load_run
    from expand.baselines import best_under, binomial_se, run_points, scored_videos
    from expand.preflight import check_gflops
    from expand.results import cost

    if isinstance(run_dirs, (str, os.PathLike)) or not run_dirs:
        raise InputError("compare: give a list of run folders")
    read = []
    for d in run_dirs:
        run, state, exp = load_run(os.fspath(d))
        records = run.read_trials().records
        read.append((run.path, state, exp, run_points(run.path, records), scored_videos(run.path, records)))
    twice = [p for i, (p, *_) in enumerate(read) if any(_same(p, q) for q, *_ in read[:i])]
    if twice:
        raise InputError(f"{twice[0]}: given twice; compare each run once")
    chosen = sorted(check_gflops(b, "budgets") for b in budgets) if budgets else _default_budgets(read)
    rows = []
    for (path, state, _, points, videos), name in zip(read, _names([r[0] for r in read])):
        spend = cost(path)["total"]
        kind = state.get("kind", "expansion")
        best = [best_under(points, b) for b in chosen]
        top = max((b for b in best if not math.isnan(b)), default=math.nan)
        rows.append(ComparedRun(f"{kind}: {name}", path, kind, int(spend["trials"]), spend["device_hours"], best,
                                videos, binomial_se(top, videos), points))
    labels = [r.label for r in rows]
    notes = _comparability_notes(labels, [r[1] for r in read], [r[2] for r in read]) + \
        _version_notes(labels, [r.path for r in rows])
    return Comparison(chosen, rows, notes)


def check_plot_path(plot: str) -> None:
    """Before any run is read: a --plot the figure can be written to (a .pdf goes beside it)."""
    from expand.fileio import make_folder

    if not str(plot).lower().endswith(".png"):
        raise InputError(f"--plot {plot}: give a .png path (a .pdf is written beside it)")
    if os.path.isdir(plot) or os.path.isdir(str(plot)[:-4] + ".pdf"):
        raise InputError(f"--plot {plot}: a folder has that name (or its .pdf's)")
    try:
        make_folder(os.path.dirname(os.path.abspath(plot)), "plot's folder")
    except InputError as exc:
        raise InputError(f"--plot {plot}: {exc}") from None


def _default_budgets(read: list[tuple]) -> list[float]:
    for _, state, *_ in read:
        if state.get("kind", "expansion") == "expansion" and len(state.get("path", [])) > 1:
            return [p["gflops"] for p in state["path"][1:]]
    gf = sorted(g for *_, pts, _ in read for g, _ in pts)
    if not gf:
        raise InputError("no run has a trained model to compare")
    lo, hi = math.log(gf[0]), math.log(gf[-1])
    return [math.exp(lo + (hi - lo) * i / 2) for i in range(3)]


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _names(paths: list[str]) -> list[str]:
    """Each run's folder name, or as much of its path as tells it apart (``a/demo``, ``b/demo``):
    a row and a plot curve per run, never two runs under one label."""
    parts = [os.path.abspath(p).rstrip(os.sep).split(os.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = [os.sep.join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [os.path.abspath(p) for p in paths]


def _comparability_notes(labels: list[str], states: list[dict], exps: list) -> list[str]:
    """Why a row's top-1 may not be comparable with the first run's: a table that mixes training
    settings, or a calibration's several schedule lengths, reads as a contest it is not."""
    from expand.api import diff_keys

    def training(exp: Any) -> dict:  # what a trial's top-1 depends on besides its model
        d = exp.to_dict()
        picked = {k: d[k] for k in ("data", "schedule")}
        picked["trial"] = {k: d["trial"][k] for k in ("function", "options", "precise_bn_batches")}
        return picked

    notes, first = [], training(exps[0])
    for label, state, exp in zip(labels[1:], states[1:], exps[1:]):
        keys = [k for k in diff_keys(first, training(exp)) if not k.startswith(_NOT_TRAINING)]
        if keys:
            notes.append(f"{label} trained unlike {labels[0]} ({', '.join(keys[:6])}"
                         f"{', ...' if len(keys) > 6 else ''}): its top-1s are not comparable")
    for label, state in zip(labels, states):
        if state.get("kind") == "calibration":
            lengths = ", ".join(f"{m:g}x" for m in state.get("multipliers", []))
            notes.append(f"{label} trained each candidate at {lengths} the schedule: its column is the best "
                         "over those lengths")
    return notes


def _version_notes(labels: list[str], paths: list[str]) -> list[str]:
    """A run whose sessions counted FLOPs with another fvcore, or trained under another torch, than the
    first run's (RUN/environment.jsonl; runs from before it was kept say nothing)."""
    from expand.run import environment

    kept = [environment.sessions(path) for path in paths]  # each run's file read once

    def versions(sessions: list[dict], package: str) -> set:
        return {(s.get("packages") or {}).get(package) for s in sessions}

    notes = []
    for package, why in (("fvcore", "GFLOPs counted by another fvcore: budgets may not line up"),
                         ("torch", "trained under another torch")):
        first = versions(kept[0], package)
        for label, sessions in zip(labels[1:], kept[1:]):
            mine = versions(sessions, package)
            if first and mine and mine != first:
                notes.append(f"{label}: {package} {', '.join(sorted(map(str, mine)))} against "
                             f"{', '.join(sorted(map(str, first)))} for {labels[0]} ({why})")
    return notes


__all__ = ["ComparedRun", "Comparison", "budget_column", "check_plot_path", "compare_runs"]
