"""Contracting a run's path to FLOP budgets (paper §4), and training the contracted models:
the ``contract`` command and ``Run.contract``.

The path is read, never rewritten: contracted models go to ``contractions.json``
(merged by target), and their trials, when trained, to ``trials.jsonl`` under the
run's lock like any other, through an executor rather than a Coordinator.
"""

from __future__ import annotations

from typing import Any, Optional

from expand.api import apply_overrides, load_run, trial_session
from expand.config import Experiment
from expand.preflight import check_cluster, check_contract_targets, check_has_path
from expand.run import RunDir


def contract(run_dir: str, targets: list[float], train: bool = False, runner: Optional[str] = None,
             address: Optional[str] = None) -> tuple[RunDir, list[dict[str, Any]]]:
    """Contract the path to each target (paper §4); with ``train``, train the contracted models."""
    from expand.complexity import ComplexityCounter
    from expand.search.coordinator import contract_path, save_contractions

    run, _, exp = load_run(run_dir)
    state = run.state()
    path = state.path
    check_has_path(run.path, state.kind, path)
    check_contract_targets(path, targets)
    if train:
        exp = apply_overrides(exp, {"runner": runner})  # the trials' runner (no runner: the experiment's)
        check_cluster(exp, address)
    run.acquire("contract")
    try:
        from expand.console import phase

        counter = ComplexityCounter()
        with phase(f"contracting the path to {len(targets)} budget(s) (fvcore counts)"):
            items = contract_path(path, sorted(targets), exp.search_space, counter)
        if train:
            items = _train_contracted(run, exp, items, counter, address)
        return run, save_contractions(run, items)
    finally:
        run.release()


def _train_contracted(run: RunDir, exp: Experiment, items: list, counter: Any, address: Optional[str]) -> list:
    from expand.search.executor import TrialExecutor
    from expand.search.time_limits import TimeLimits
    from expand.search.trial import TrialSpec, derive_seed
    from expand.spec import ArchSpec

    trials = {}
    for c in items:
        if not c.get("spec") or c.get("top1") is not None:  # impossible, or a trained path model reused
            continue
        spec = ArchSpec.from_dict(c["spec"])
        tid = f"contract-{c['target_gflops']:g}"
        trials[tid] = TrialSpec(tid, c["step"], f"contract:{c['axis']}", spec,
                                derive_seed(exp.search.seed, c["step"]), counter.gflops(spec),
                                counter.params(spec), exp.to_dict(), run.file("trials", tid))
        c["trial_id"] = tid
    if not trials:  # every budget is impossible or reuses a trained path model: nothing to start
        return items
    with trial_session(exp, run, address, False, "training of contracted models") as (runner, progress):
        # an executor, not a Coordinator: training contracted models must not rewrite state.json
        budgets = " ".join(f"{c['target_gflops']:g}" for c in items)
        again = f"x3d-expand contract {run.path} --target-gflops {budgets} --train"
        executor = TrialExecutor(run, runner, exp.retries, progress, limits=TimeLimits.of(exp.trial), again=again)
        results = executor.train(list(trials.values()))
    for c in items:
        r = results.get(c.get("trial_id"))
        if r is not None:
            c.update(top1=r.top1, top5=r.top5, status=r.status)
    return items


__all__ = ["contract"]
