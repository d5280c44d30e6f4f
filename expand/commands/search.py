"""``search``, ``resume`` and ``contract``: parse, call :mod:`expand.api`, print."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, Callable

from expand import api, contracting
from expand.config.settings import settings_from
from expand.tables import json_line


def run_and_report(args: argparse.Namespace, start: Callable[[], tuple[Any, Any]]) -> int:
    """Run ``start`` and print the run's table, or with ``--json`` the run as one JSON object.

    With ``--json`` everything the search prints while it runs goes to stderr,
    so stdout holds the one object a script reads.
    """
    from expand import results

    quiet = getattr(args, "quiet", False)
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):
            run, outcome = start()
            api.finish(run, quiet)
        print(results.render_run(run.path, "json"))
    else:
        run, outcome = start()
        print()
        print(api.finish(run, quiet))
    if isinstance(outcome, dict):  # a calibration's state
        return 0 if outcome.get("status") == "finished" else 1
    ok = outcome.path if hasattr(outcome, "path") else outcome.trained
    return 0 if ok else 1


def search_cmd(args: argparse.Namespace) -> int:
    settings = settings_from(args.settings)
    if args.check:
        return report_check(args, *api.check_search(
            args.experiment, out=args.out, address=args.address, settings=settings, max_steps=args.max_steps,
            targets=args.targets, seed=args.seed, runner=args.runner))
    return run_and_report(args, lambda: api.start_search(
        args.experiment, out=args.out, address=args.address, quiet=args.quiet, settings=settings,
        max_steps=args.max_steps, targets=args.targets, seed=args.seed, runner=args.runner))


def report_check(args: argparse.Namespace, exp: Any, plan: list[str], suffix: str = "") -> int:
    """``--check`` of search, baseline and calibrate: the checks passed; the plan, nothing written."""
    from expand.preflight import where_trials_run

    lines = [*plan, where_trials_run(exp, args.address)]
    out = os.path.abspath(args.out or api.default_out(exp, suffix))
    if args.json:
        print(json_line({"experiment": exp.source, "out": out, "checked": True, "plan": lines}))
        return 0
    print(f"experiment: {exp.source} (search.runner: {exp.search.runner})")
    print("\n".join(lines))
    print(f"run folder: {out}{'' if args.out else ' (the default: a new name each start)'}")
    from expand.config.settings import shown_settings

    again = shown_settings(settings_from(args.settings))
    data_check = (f"; videos are opened by 'x3d-expand data check {exp.source}{' ' + again if again else ''}'"
                  if exp.data.root else "")
    print(f"checked: nothing written, no trial run{data_check}")
    return 0


def resume_cmd(args: argparse.Namespace) -> int:
    settings = settings_from(args.settings)
    return run_and_report(args, lambda: api.resume(args.run_dir, force=args.force, runner=args.runner,
                                                   address=args.address, quiet=args.quiet,
                                                   max_steps=args.max_steps, targets=args.targets,
                                                   settings=settings))


def stop_cmd(args: argparse.Namespace) -> int:
    from expand.run.stop import request_stop, withdraw_stop

    run = os.path.abspath(args.run_dir)
    if args.cancel:
        withdrawn = withdraw_stop(run)
        print(json_line({"run": run, "withdrawn": withdrawn}) if args.json else f"{run}: " + (
            "stop request withdrawn: the search goes on" if withdrawn else "no stop request to withdraw"))
        return 0
    writer = request_stop(run)
    print(json_line({"run": run, "asked": writer}) if args.json else
          f"asked {writer} to stop: the trials running now finish and are recorded, queued ones do not start; "
          f"then 'x3d-expand resume {run}' continues ('x3d-expand stop --cancel' withdraws it)")
    return 0


def calibrate_cmd(args: argparse.Namespace) -> int:
    settings = settings_from(args.settings)
    if args.check:
        return report_check(args, *api.check_calibration(
            args.experiment, args.schedules, args.seeds, args.min_tau, out=args.out, address=args.address,
            settings=settings, seed=args.seed, runner=args.runner), "-calibration")
    return run_and_report(args, lambda: api.start_calibration(
        args.experiment, args.schedules, args.seeds, args.min_tau, out=args.out, address=args.address,
        quiet=args.quiet, settings=settings, seed=args.seed, runner=args.runner))


def contract_cmd(args: argparse.Namespace) -> int:
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        run, merged = contracting.contract(args.run_dir, args.target_gflops, train=args.train, runner=args.runner,
                                           address=args.address)
    if args.json:
        print(json_line({"run": run.path, "contractions": [c for c in merged
                                                           if c["target_gflops"] in args.target_gflops]}))
        return 0
    from expand import results

    print(results.render_contractions(merged, "table"))
    return 0


__all__ = ["search_cmd", "resume_cmd", "contract_cmd", "calibrate_cmd"]
