"""``baseline`` (Optuna random/TPE, compound scaling) and ``compare``."""

from __future__ import annotations

import argparse
import math
import os

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
        rows.append({"run": label, "path": path, "trials": int(spend["trials"]),
                     "device_hours": spend["device_hours"], "best": [best_under(points, b) for b in budgets]})
        curves[label] = points
    plot = args.plot or os.path.join(os.path.dirname(os.path.abspath(runs[0][0])), "compare.png")
    plot_compare(curves, budgets, plot)
    fmt = "json" if args.json else args.format
    if fmt == "json":  # fractions, named so: best_top1_frac[i] is the best at budgets_gflops[i]
        print(json_line(clean_nans({"budgets_gflops": budgets, "plot": plot, "runs": [
            {"run": r["run"], "path": r["path"], "trials": r["trials"], "device_hours": r["device_hours"],
             "best_top1_frac": r["best"]} for r in rows]})))
        return 0
    if fmt == "csv":
        columns = ["run", "trials", "device_hours", *[f"best_top1_frac_at_{b:.4g}" for b in budgets]]
        flat = [{"run": r["run"], "trials": r["trials"], "device_hours": r["device_hours"],
                 **dict(zip(columns[3:], r["best"]))} for r in rows]
        print(render(flat, columns, "csv"), end="")
        return 0
    headers = ["run", "trials", "device-hours", *[f"best top1 % @ {b:.4g} GF" for b in budgets]]
    shown = [{"run": r["run"], "trials": r["trials"], "device_hours": r["device_hours"],
              **{h: "" if math.isnan(v) else f"{100 * v:.1f}" for h, v in zip(headers[3:], r["best"])}}
             for r in rows]
    print(render(shown, ["run", "trials", "device_hours", *headers[3:]], fmt, headers=headers, digits=4))
    if fmt == "table":
        print(f"\nbest top1 % @ X: best val top-1 (in %) of a trained model at or under X GFLOPs (contracted "
              f"models included); trials count every attempt. plot: {plot} (and .pdf)")
    return 0
