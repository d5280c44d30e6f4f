"""``baseline`` (Optuna random/TPE, compound scaling) and ``compare``."""

from __future__ import annotations

import argparse
import math
import os
import sys

from expand.errors import InputError


def baseline_cmd(args: argparse.Namespace) -> int:
    from expand import api
    from expand.commands.search import report_check, run_and_report
    from expand.config.settings import settings_from

    settings = settings_from(args.settings)
    if args.check:
        return report_check(args, *api.check_baseline(
            args.experiment, args.method, args.trials, args.max_gflops, out=args.out, address=args.address,
            settings=settings, seed=args.seed, runner=args.runner), f"-{args.method}")
    return run_and_report(args, lambda: api.start_baseline(
        args.experiment, args.method, args.trials, args.max_gflops, out=args.out, address=args.address,
        quiet=args.quiet, settings=settings, seed=args.seed, runner=args.runner))


def _default_budgets(runs: list[tuple[str, dict, list]]) -> list[float]:
    for _, state, _ in runs:
        if state.get("kind", "expansion") == "expansion" and len(state.get("path", [])) > 1:
            return [p["gflops"] for p in state["path"][1:]]
    gf = sorted(g for _, _, pts in runs for g, _ in pts)
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


# how the frames are stored, not which: runs that differ only here trained alike
_NOT_TRAINING = ("data.cache", "data.cache_format", "data.cache_quality")


def _comparability_notes(labels: list[str], states: list[dict], exps: list) -> list[str]:
    """Why a row's top-1 may not be comparable with the first run's: a table that mixes training
    settings, or a calibration's several schedule lengths, reads as a contest it is not."""
    from expand.api import diff_keys

    def training(exp) -> dict:  # what a trial's top-1 depends on besides its model
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


def _check_plot_path(plot: str) -> None:
    """Before any run is read: a --plot the figure can be written to (a .pdf goes beside it)."""
    from expand.fileio import make_folder

    if not plot.lower().endswith(".png"):
        raise InputError(f"--plot {plot}: give a .png path (a .pdf is written beside it)")
    if os.path.isdir(plot) or os.path.isdir(plot[:-4] + ".pdf"):
        raise InputError(f"--plot {plot}: a folder has that name (or its .pdf's)")
    try:
        make_folder(os.path.dirname(os.path.abspath(plot)), "plot's folder")
    except InputError as exc:
        raise InputError(f"--plot {plot}: {exc}") from None


def compare_cmd(args: argparse.Namespace) -> int:
    from expand import results
    from expand.baselines import best_under, binomial_se, run_points, scored_videos
    from expand.api import load_run
    from expand.plots import plot_compare
    from expand.tables import clean_nans, json_line, render

    if args.plot:
        _check_plot_path(args.plot)
    runs, exps = [], []
    for d in args.run_dirs:
        run, state, exp = load_run(d)
        runs.append((run.path, state, run_points(run.path)))
        exps.append(exp)
    twice = [p for i, (p, _, _) in enumerate(runs) if any(_same(p, q) for q, _, _ in runs[:i])]
    if twice:
        raise InputError(f"{twice[0]}: given twice; compare each run once")
    budgets = sorted(args.budgets or _default_budgets(runs))
    rows, curves = [], {}
    for (path, state, points), name in zip(runs, _names([p for p, _, _ in runs])):
        spend = results.cost(path)["total"]
        label = f"{state.get('kind', 'expansion')}: {name}"
        best = [best_under(points, b) for b in budgets]
        videos = scored_videos(path)
        top = max((b for b in best if not math.isnan(b)), default=math.nan)
        rows.append({"run": label, "path": path, "trials": int(spend["trials"]),
                     "device_hours": spend["device_hours"], "best": best, "videos": videos,
                     "se": binomial_se(top, videos)})
        curves[label] = points
    notes = _comparability_notes([r["run"] for r in rows], [state for _, state, _ in runs], exps) + \
        _version_notes([r["run"] for r in rows], [r["path"] for r in rows])
    plot = args.plot or os.path.join(os.path.dirname(os.path.abspath(runs[0][0])), "compare.png")
    plot_compare(curves, budgets, plot)
    fmt = "json" if args.json else args.format
    if fmt == "json":  # fractions, named so: best_top1_frac[i] is the best at budgets_gflops[i]
        print(json_line(clean_nans({"budgets_gflops": budgets, "plot": plot, "runs": [
            {"run": r["run"], "path": r["path"], "trials": r["trials"], "device_hours": r["device_hours"],
             "best_top1_frac": r["best"], "scored_videos": r["videos"],
             "binomial_se_frac": r["se"]} for r in rows], "notes": notes})))
        return 0
    if fmt == "csv":
        columns = ["run", "trials", "device_hours", *[f"best_top1_frac_at_{b:.4g}" for b in budgets]]
        flat = [{"run": r["run"], "trials": r["trials"], "device_hours": r["device_hours"],
                 **dict(zip(columns[3:], r["best"]))} for r in rows]
        print(render(flat, columns, "csv"), end="")
        for note in notes:  # stdout stays one CSV
            print(f"note: {note}", file=sys.stderr)
        return 0
    headers = ["run", "trials", "device-hours", *[f"best top1 % @ {b:.4g} GF" for b in budgets]]
    shown = [{"run": r["run"], "trials": r["trials"], "device_hours": r["device_hours"],
              **{h: "" if math.isnan(v) else f"{100 * v:.1f}" for h, v in zip(headers[3:], r["best"])}}
             for r in rows]
    print(render(shown, ["run", "trials", "device_hours", *headers[3:]], fmt, headers=headers, digits=4))
    if fmt == "table":
        print(f"\nbest top1 % @ X: best val top-1 (in %) of a trained model at or under X GFLOPs (contracted "
              f"models included; a model trained with several seeds counts with its mean); trials count every "
              f"attempt. plot: {plot} (and .pdf)")
        sure = [f"{r['run']} {100 * r['se']:.1f} pts on {r['videos']} videos" for r in rows if not math.isnan(r["se"])]
        if sure:
            print(f"how sure: the validation videos alone put a binomial standard error on each figure "
                  f"(near the run's best: {'; '.join(sure)}); a gap between two runs under ~3x that (95 %), "
                  f"or under their seed-to-seed noise (x3d-expand calibrate measures it), does not show one beat "
                  f"the other")
    for note in notes:
        print(f"{'% ' if fmt == 'latex' else ''}note: {note}")
    return 0
