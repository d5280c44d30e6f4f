"""``baseline`` (Optuna random/TPE, compound scaling) and ``compare``."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from expand.errors import InputError


def baseline_cmd(args: argparse.Namespace) -> int:
    from expand import api
    from expand.commands.search import run_and_report

    return run_and_report(args, lambda: api.start_baseline(
        args.experiment, args.method, args.trials, args.max_gflops, out=args.out, address=args.address,
        quiet=args.quiet, seed=args.seed, runner=args.runner))


def _default_budgets(runs: list[tuple[str, dict, list]]) -> list[float]:
    for _, state, _ in runs:
        if state.get("kind", "expansion") == "expansion" and len(state.get("path", [])) > 1:
            return [p["gflops"] for p in state["path"][1:]]
    gf = sorted(g for _, _, pts in runs for g, _ in pts)
    if not gf:
        raise InputError("no run has a trained model to compare")
    lo, hi = math.log(gf[0]), math.log(gf[-1])
    return [math.exp(lo + (hi - lo) * i / 2) for i in range(3)]


def compare_cmd(args: argparse.Namespace) -> int:
    from expand import results
    from expand.baselines import best_under, run_points
    from expand.api import load_run
    from expand.plots import plot_compare
    from expand.tables import clean_nans, json_line, render

    runs = []
    for d in args.run_dirs:
        run, state, _ = load_run(d)
        runs.append((run.path, state, run_points(run.path)))
    budgets = sorted(args.budgets or _default_budgets(runs))
    rows, curves = [], {}
    for path, state, points in runs:
        spend = results.cost(path)["total"]
        label = f"{state.get('kind', 'expansion')}: {os.path.basename(os.path.normpath(path))}"
        row = {"run": label, "trials": int(spend["trials"]), "device_hours": spend["device_hours"]}
        for b in budgets:
            row[f"best@{b:.4g}"] = best_under(points, b)
        rows.append(row)
        curves[label] = points
    columns = ["run", "trials", "device_hours", *[f"best@{b:.4g}" for b in budgets]]
    plot = args.plot or os.path.join(os.path.dirname(os.path.abspath(runs[0][0])), "compare.png")
    plot_compare(curves, budgets, plot)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json_line(clean_nans({"budgets": budgets, "runs": rows, "plot": plot})))
        return 0
    print(render(rows, columns, fmt, digits=4))
    if fmt == "table":
        print(f"\nbest@X: best val top-1 of a trained model at or under X GFLOPs (contracted models included); "
              f"trials count every attempt. plot: {plot}")
    return 0
