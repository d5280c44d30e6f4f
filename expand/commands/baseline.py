"""``baseline`` (Optuna random/TPE, compound scaling) and ``compare``."""

from __future__ import annotations

import argparse
import math
import os
import sys


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


def compare_cmd(args: argparse.Namespace) -> int:
    from expand.comparison import budget_column, check_plot_path, compare_runs
    from expand.tables import clean_nans, json_line, render

    if args.plot:
        check_plot_path(args.plot)
    comparison = compare_runs(args.run_dirs, args.budgets)
    budgets, rows, notes = comparison.budgets, comparison.runs, comparison.notes
    plot = args.plot or os.path.join(os.path.dirname(os.path.abspath(rows[0].path)), "compare.png")
    comparison.plot(plot)
    fmt = "json" if args.json else args.format
    if fmt == "json":  # fractions, named so: best_top1_frac[i] is the best at budgets_gflops[i]
        print(json_line(clean_nans({"budgets_gflops": budgets, "plot": plot, "runs": [
            {"run": r.label, "path": r.path, "trials": r.trials, "device_hours": r.device_hours,
             "best_top1_frac": r.best_top1, "scored_videos": r.scored_videos,
             "binomial_se_frac": r.binomial_se} for r in rows], "notes": notes})))
        return 0
    if fmt == "csv":
        columns = ["run", "trials", "device_hours", *map(budget_column, budgets)]
        print(render(comparison.table.to_dict("records"), columns, "csv"), end="")
        for note in notes:  # stdout stays one CSV
            print(f"note: {note}", file=sys.stderr)
        return 0
    headers = ["run", "trials", "device-hours", *[f"best top1 % @ {b:.4g} GF" for b in budgets]]
    shown = [{"run": r.label, "trials": r.trials, "device_hours": r.device_hours,
              **{h: "" if math.isnan(v) else f"{100 * v:.1f}" for h, v in zip(headers[3:], r.best_top1)}}
             for r in rows]
    print(render(shown, ["run", "trials", "device_hours", *headers[3:]], fmt, headers=headers, digits=4))
    if fmt == "table":
        print(f"\nbest top1 % @ X: best val top-1 (in %) of a trained model at or under X GFLOPs (contracted "
              f"models included; a model trained with several seeds counts with its mean); trials count every "
              f"attempt. plot: {plot} (and .pdf)")
        sure = [f"{r.label} {100 * r.binomial_se:.1f} pts on {r.scored_videos} videos" for r in rows
                if not math.isnan(r.binomial_se)]
        if sure:
            print(f"how sure: the validation videos alone put a binomial standard error on each figure "
                  f"(near the run's best: {'; '.join(sure)}); a gap between two runs under ~3x that (95 %), "
                  f"or under their seed-to-seed noise (x3d-expand calibrate measures it), does not show one beat "
                  f"the other")
    for note in notes:
        print(f"{'% ' if fmt == 'latex' else ''}note: {note}")
    return 0
