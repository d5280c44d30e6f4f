"""``search``, ``resume`` and ``contract``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

from expand.complexity import ComplexityCounter
from expand.config import Experiment, experiment_from_dict, load_experiment
from expand.errors import InputError
from expand.search.coordinator import Coordinator, PathEntry, contract_path, load_contractions, save_contractions
from expand.search.progress import ConsoleProgress, SilentProgress
from expand.search.runners import make_runner
from expand.config import DEFAULT_TRIAL_FUNCTION
from expand.data.manifest import write_label_map
from expand.search.state import RunDir
from expand.tables import json_line


def _apply_overrides(exp: Experiment, overrides: dict[str, Any]) -> Experiment:
    search = dataclasses.replace(exp.search, **{k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(exp, search=search)


def _runner_for(exp: Experiment, run: RunDir, address: str | None):
    return make_runner(
        exp.search.runner,
        exp.trial.function,
        run.path,
        cpus_per_trial=exp.resources.cpus_per_trial,
        gpus_per_trial=exp.resources.gpus_per_trial,
        address=address,
        max_concurrent=exp.resources.max_concurrent,
        worker_crash_retries=exp.retries.worker_crash,
    )


def _default_out(exp: Experiment) -> str:
    return os.path.join("results", f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _finish(run: RunDir, outcome: Any) -> None:
    from expand import results

    try:
        results.write_steps_csv(run.path)
        results.write_plots(run.path)
    except Exception as exc:  # noqa: BLE001 - tables must not lose a finished search
        print(f"warning: could not write tables/plots: {exc}")
    print()
    print(results.render_run(run.path, "table"))


def execute(exp: Experiment, run: RunDir, address: str | None, quiet: bool, state_extra: dict) -> int:
    runner = _runner_for(exp, run, address)
    try:
        coordinator = Coordinator(
            exp, run, runner, ComplexityCounter(),
            SilentProgress() if quiet else ConsoleProgress(), extra_state=state_extra,
        )
        outcome = coordinator.run()
    finally:
        runner.close()
    _finish(run, outcome)
    return 0 if outcome.path else 1


def search_cmd(args: argparse.Namespace) -> int:
    overrides = {"max_steps": args.max_steps, "seed": args.seed, "runner": args.runner}
    exp = _apply_overrides(load_experiment(args.experiment), overrides)
    run, extra = new_run(exp, args, args.out or _default_out(exp), overrides)
    return execute(exp, run, args.address, args.quiet, extra)


def new_run(exp: Experiment, args: argparse.Namespace, out: str,
            overrides: dict[str, Any]) -> tuple[RunDir, dict[str, Any]]:
    """A fresh run folder (search or baseline) and the state resume needs to reload its experiment."""
    from expand.search.trial import load_trial_function

    load_trial_function(exp.trial.function)  # a bad trial function is bad input: nothing written
    run = RunDir(out)
    if run.exists():
        raise InputError(f"{run.path}: already holds a run; use 'x3d-expand resume {run.path}'")
    run.create()
    run.write_config(exp.to_dict())
    if exp.data.root and exp.trial.function == DEFAULT_TRIAL_FUNCTION:
        write_label_map(exp.data, run.path)
    print(f"run folder: {run.path}")
    return run, {"experiment_source": os.path.abspath(args.experiment), "overrides": overrides,
                 "address": args.address}


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        out: list[str] = []
        for k in keys:
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix]


def load_run(run_dir: str) -> tuple[RunDir, dict[str, Any], Experiment]:
    run = RunDir(run_dir)
    if not os.path.isfile(run.config_path) or not os.path.isfile(run.state_path):
        raise InputError(f"{run.path}: not a run folder (no config.yaml/state.json)")
    state = run.read_state()
    exp = experiment_from_dict(run.read_config(), f"{run.config_path}:")
    return run, state, exp


def resume_cmd(args: argparse.Namespace) -> int:
    run, state, stored = load_run(args.run_dir)
    exp = stored
    source = state.get("experiment_source")
    if source and os.path.isfile(source):
        current = _apply_overrides(load_experiment(source), state.get("overrides") or {})
        changed = _diff_keys(stored.to_dict(), current.to_dict())
        if changed and not args.force:
            raise InputError(
                f"{source} changed since the run started ({', '.join(changed[:8])}); "
                "use --force to resume with the new file"
            )
        if changed:
            exp = current
            run.write_config(exp.to_dict())
    if args.runner:
        exp = _apply_overrides(exp, {"runner": args.runner})
    extra = {k: state.get(k) for k in ("experiment_source", "overrides", "address")}
    print(f"resuming {run.path}")
    if state.get("kind", "expansion") != "expansion":
        from expand.commands.baseline import execute_baseline

        extra.update({k: state.get(k) for k in ("method", "trial_budget", "max_gflops_arg")})
        return execute_baseline(exp, run, state["kind"], int(state["trial_budget"]), state.get("max_gflops_arg"),
                                args.address or state.get("address"), args.quiet, extra)
    return execute(exp, run, args.address or state.get("address"), args.quiet, extra)


def contract_cmd(args: argparse.Namespace) -> int:
    run, state, exp = load_run(args.run_dir)
    path = [PathEntry.from_dict(p) for p in state.get("path", [])]
    if not path:
        raise InputError(f"{run.path}: the run has no trained step yet")
    counter = ComplexityCounter()
    items = contract_path(path, sorted(args.target_gflops), exp.search_space, counter)
    if args.train:
        items = _train_contracted(run, exp, items, counter, args)
    merged = save_contractions(run, items)
    if args.json:
        print(json_line({"run": run.path, "contractions": [c for c in merged
                                                           if c["target_gflops"] in args.target_gflops]}))
        return 0
    from expand import results

    print(results.render_contractions(merged, "table"))
    return 0


def _train_contracted(run: RunDir, exp: Experiment, items: list, counter: Any, args: Any) -> list:
    from expand.search.trial import TrialSpec, derive_seed
    from expand.spec import ArchSpec

    if args.runner:
        exp = _apply_overrides(exp, {"runner": args.runner})
    from expand.search.executor import TrialExecutor

    runner = _runner_for(exp, run, args.address)
    # an executor, not a Coordinator: training contracted models must not rewrite state.json
    executor = TrialExecutor(run, runner, exp.retries, ConsoleProgress())
    trials = {}
    for c in items:
        if not c.get("spec"):
            continue
        spec = ArchSpec.from_dict(c["spec"])
        tid = f"contract-{c['target_gflops']:g}"
        trials[tid] = TrialSpec(tid, c["step"], f"contract:{c['axis']}", spec,
                                derive_seed(exp.search.seed, c["step"]), counter.gflops(spec),
                                counter.params(spec), exp.to_dict(), run.file("trials", tid))
        c["trial_id"] = tid
    try:
        results = executor.train(list(trials.values()))
    finally:
        runner.close()
    for c in items:
        r = results.get(c.get("trial_id"))
        if r is not None:
            c.update(top1=r.top1, top5=r.top5, status=r.status)
    return items


__all__ = ["search_cmd", "resume_cmd", "contract_cmd", "load_run", "load_contractions"]
