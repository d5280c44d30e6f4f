"""What a run checks before it writes anything: data, budgets, where its trials will run.

Apart from ``api.py`` (which starts, resumes and contracts runs) because each
check is a question about the inputs alone, asked the same way by the CLI
and the Python API; each raises an exit-2 error (``ConfigError``,
``InputError``) whose one line names the input to change.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any, Optional, Sequence

from expand.config import DEFAULT_TRIAL_FUNCTION, Experiment, load_experiment
from expand.errors import ConfigError, InputError
from expand.fileio import PROBE_PREFIX
from expand.run import PathEntry, RunDir
from expand.schema import MAX_BASELINE_TRIALS, MAX_CALIBRATION_SEEDS

# A step may overshoot the flops factor (coarse grids: frames 1 -> 2 is 1.89x, but
# crop 64 -> 96 is 2.25x); a target past basis x factor^steps x this is out of reach.
REACH_SLACK = 1.25


def apply_overrides(exp: Experiment, overrides: dict[str, Any]) -> Experiment:
    """The experiment with ``search`` keys replaced (the CLI's flags, the Python API's keywords).

    Checked as the file's own keys are: a Python caller's ``max_steps=0`` or ``seed=-1`` is
    the same one-line ConfigError, before anything is written, not a failure mid-run.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return exp
    from expand.config import SearchConfig
    from expand.schema import from_mapping, to_plain

    search = from_mapping(SearchConfig, {**to_plain(exp.search), **given}, "overrides: search")
    return dataclasses.replace(exp, search=search)


def configured(experiment: str, overrides: dict[str, Any], settings: Optional[dict[str, Any]] = None) -> Experiment:
    """The experiment file, with its ``--set`` settings, then the command's own flags (search keys)."""
    from expand.config.settings import apply_settings, checked_settings, touches

    settings = checked_settings(settings)
    for key, value in overrides.items():
        if value is not None and f"search.{key}" in settings:
            raise InputError(f"search.{key}: given twice, by --set and as {key} (a flag or keyword); give it once")
    # settings that change data.* (a recipe's placeholder root replaced) are checked after they apply
    return apply_overrides(apply_settings(load_experiment(experiment, check_paths=not touches(settings, "data")),
                                          settings), overrides)


def settings_line(settings: Optional[dict[str, Any]]) -> list[str]:
    """The plan's first line when ``--set`` changed the experiment (none when nothing did)."""
    from expand.config.settings import checked_settings, shown_settings

    text = shown_settings(checked_settings(settings))
    return [f"settings: {text} (for this run; the file is unchanged)"] if text else []


def check_manifests(exp: Experiment) -> dict[str, str]:
    """Read both splits now (exists, UTF-8, non-empty, labels in range); what a trial will see.

    Returns, per split, a line like "60000 of 240000 videos, 400 classes, 148-151 per class"
    (after the seeded, class-stratified ``max_*_videos`` subset).
    """
    from expand.data.manifest import carve_minival, class_counts, load_split, stratified_subset

    train_all, val_all = load_split(exp.data, "train"), load_split(exp.data, "val")  # each read once
    train, held = carve_minival(exp.data, train_all)
    splits = {"train": (train, len(train_all), ""), "minival": (held, len(train_all), " (selects)"),
              "val": (stratified_subset(val_all, exp.data.max_val_videos, exp.data.subset_seed), len(val_all),
                      " (reports)" if held else "")}
    seen = {}
    for split, (subset, total, role) in splits.items():
        if split == "minival" and not held:
            continue
        counts = class_counts(subset).values()
        seen[split] = (f"{len(subset)} of {total} videos{role}, {len(counts)} classes, "
                       f"{min(counts)}-{max(counts)} per class")
    return seen


def steps_to(target: float, basis: float, factor: float) -> int:
    """Steps of ``factor``x from ``basis`` GFLOPs until a model reaches ``target``."""
    # logs of each, not of the ratio: 1e308 / basis overflowed to inf
    return max(1, math.ceil((math.log(target) - math.log(basis)) / math.log(factor) - 1e-9))


def check_budgets(exp: Experiment, counter: Any, max_gflops: Optional[float] = None) -> float:
    """Targets and caps must be reachable from the basis in max_steps; returns the basis GFLOPs."""
    basis = counter.gflops(exp.search_space.basis)
    steps, factor = exp.search.max_steps, exp.search_space.step.flops_factor
    reach = basis * factor ** steps * REACH_SLACK
    where = exp.source or "experiment"
    for target in exp.search.targets:
        if target < basis:
            raise ConfigError(f"{where}: search.targets: {target:g} GFLOPs is below the basis "
                              f"({basis:.4g} GFLOPs): no model of the search is that small")
        if target > reach:
            raise ConfigError(f"{where}: search.targets: {target:g} GFLOPs is out of reach: about "
                              f"{steps_to(target, basis, factor)} "
                              f"steps of ~{factor:g}x from the basis ({basis:.4g} GFLOPs), "
                              f"search.max_steps is {steps}")
    for name, cap in (("search.max_gflops", exp.search.max_gflops), ("--max-gflops", max_gflops)):
        if cap is not None and cap < basis:
            raise ConfigError(f"{where}: {name}: {cap:g} GFLOPs is below the basis ({basis:.4g} GFLOPs)")
    return basis


def check_growth(kind: str, path: list[PathEntry], max_steps: Optional[int], targets: Optional[Sequence[float]],
                 run_targets: Sequence[float]) -> None:
    """``resume --max-steps/--targets`` grows a search's path; it cannot shorten one or grow a baseline.

    More steps alone cannot grow a path that already passed the run's largest target: the
    search stops there (the demo's 0.003), so the resume would train nothing and say so only
    in its last line.
    """
    if kind != "expansion":
        raise InputError(f"--max-steps/--targets: a {kind} run has no expansion path to grow; resume it "
                         "without them")
    decided = len(path) - 1
    if isinstance(max_steps, int) and max_steps < decided:  # (a wrong type: apply_overrides says so)
        raise InputError(f"--max-steps {max_steps}: the run already decided {decided} steps, and a resume "
                         "keeps them (export --step K and contract use any step of the path)")
    if isinstance(max_steps, int) and max_steps > decided and targets is None and run_targets and path \
            and path[-1].gflops > max(run_targets):
        raise InputError(f"--max-steps {max_steps}: the path ({path[-1].gflops:.4g} GFLOPs) already passed the "
                         f"run's largest target ({max(run_targets):g} GFLOPs), where the search stops; give "
                         "--targets too, with a larger budget")


def check_baseline_args(method: str, trials: Any, max_gflops: Any) -> None:
    """A baseline's own arguments, before its run folder is written: the CLI's parser checks them
    for ``x3d-expand baseline``; ``expand.baseline(...)`` from Python comes here unchecked."""
    from expand.baselines import METHODS

    if method not in METHODS:
        raise InputError(f"method {method!r}: must be one of {', '.join(METHODS)}")
    if isinstance(trials, bool) or not isinstance(trials, numbers.Integral) or not 1 <= trials <= MAX_BASELINE_TRIALS:
        raise InputError(f"trials: must be an integer 1-{MAX_BASELINE_TRIALS}, got {trials!r}")
    if max_gflops is not None:
        check_gflops(max_gflops, "max_gflops")


def check_calibration_args(exp: Experiment, multipliers: Any, seeds: Any, min_tau: Any) -> None:
    """``calibrate``'s own arguments, before its run folder is written: each scaled schedule must be
    one the experiment file could hold (``--schedules 1 1e308`` was an internal OverflowError),
    ``--seeds 1000000`` would train for ever, and a tau outside [-1, 1] recommends nothing."""
    from expand.config import experiment_from_dict
    from expand.search.calibrate import scaled_experiment

    for m in multipliers:
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not (math.isfinite(m) and m > 0):
            raise InputError(f"--schedules: each multiplier must be a finite number > 0, got {m!r}")
    if len(set(multipliers)) < 2:
        raise InputError("--schedules: give at least two different multipliers (e.g. 1 2 4)")
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral) or not 1 <= seeds <= MAX_CALIBRATION_SEEDS:
        raise InputError(f"--seeds: must be 1-{MAX_CALIBRATION_SEEDS} (seeds per model and schedule), got {seeds!r}")
    if isinstance(min_tau, bool) or not isinstance(min_tau, numbers.Real) or not -1 <= min_tau <= 1:
        raise InputError(f"--min-tau: must be in [-1, 1] (a Kendall tau), got {min_tau!r}")
    resolved = exp.to_dict()
    for m in sorted(set(multipliers)):
        try:
            experiment_from_dict(scaled_experiment(resolved, float(m)), where=f"--schedules {m:g}:")
        except ConfigError as exc:
            raise InputError(f"{exc} (the experiment's schedule x {m:g})") from None


def validate(exp: Experiment, counter: Any, max_gflops: Optional[float] = None) -> list[str]:
    """Everything a run needs from its inputs, checked before its folder is written.

    Returns lines that say what the run will do (data each trial sees, steps and trials).
    """
    from expand.search.trial import load_trial_function

    load_trial_function(exp.trial.function)
    lines = []
    if exp.data.root or exp.trial.function == DEFAULT_TRIAL_FUNCTION:
        lines += [f"{split}: {line}" for split, line in check_manifests(exp).items()]
    basis = check_budgets(exp, counter, max_gflops)
    axes, steps = len(exp.search_space.axes), exp.search.max_steps
    if exp.search.targets:  # the search stops once the path passes the largest target
        steps = min(steps, steps_to(max(exp.search.targets), basis, exp.search_space.step.flops_factor) + 1)
    lines.append(f"plan: basis {basis:.4g} GFLOPs, up to {steps} steps x {axes} candidates: "
                 f"at most {1 + steps * axes} trials (+ retries)")
    return lines


def check_cluster(exp: Experiment, address: Optional[str]) -> None:
    """Where the trials will run can run them: exit 2 before anything is written.

    A ``--address`` nothing answers at, or one given to the serial runner (it would be ignored:
    a user who names a cluster expects the trials to run there); GPUs per trial for the
    serial runner, which trains in this process, where torch cannot use CUDA (the Ray runner
    checks the cluster's GPUs when it starts).
    """
    if address and exp.search.runner != "ray":
        raise ConfigError(f"--address {address}: joins a Ray cluster, but {exp.source or 'the experiment'} "
                          f"runs its trials in this process (search.runner: {exp.search.runner}); "
                          "add --runner ray")
    if address:
        from expand.search.nodes import check_address

        check_address(address)
    if exp.search.runner == "serial":
        check_device_here(exp, "the serial runner trains in this process")
    elif not address and not os.environ.get("RAY_ADDRESS"):  # a Ray cluster of its own, on this machine
        check_device_here(exp, "the search's own Ray cluster runs its trials on this machine")
    if exp.search.runner == "serial" and exp.resources.gpus_per_trial > 0:
        import torch

        if not torch.cuda.is_available():
            from expand.device import no_cuda_reason

            raise ConfigError(f"{exp.source or 'experiment'}: resources.gpus_per_trial: "
                              f"{exp.resources.gpus_per_trial:g} GPUs per trial, but "
                              f"the serial runner trains in this process and CUDA is not available here "
                              f"({no_cuda_reason()}); set it to 0 to train on the CPU")


def check_cache_folder(exp: Experiment, address: Optional[str]) -> None:
    """The frame cache's folder can be made, when the trials run on this machine: exit 2 before the
    run folder is written, and at ``--check``.

    A shared dataset is often on a read-only mount, and ``data.cache: auto`` puts the cache in the
    dataset's folder: the search went on to fail its first trial. An existing folder is left to
    the trials (a cache built once by someone who could write it is read, not written). On a
    cluster (``--address``) each node says for itself, before any trial (node_cache).
    """
    if address or os.environ.get("RAY_ADDRESS") or exp.data.cache == "off" or not exp.data.root:
        return
    from expand.data.cache import default_cache_dir

    folder = os.path.abspath(default_cache_dir(exp.data.root) if exp.data.cache == "auto" else exp.data.cache)
    existing = folder
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if existing != folder and os.path.isdir(existing) and not os.access(existing, os.W_OK | os.X_OK):
        where = "auto keeps the frame cache in the dataset's folder: " if exp.data.cache == "auto" else ""
        raise ConfigError(f"{exp.source or 'experiment'}: data.cache: {where}cannot create {folder}: {existing} "
                          "cannot be written here (a read-only mount?); give data.cache a folder this machine "
                          "can write (--set data.cache=/scratch/x3d-frames), or off to decode the videos as "
                          "trials read them")


def _check_new(exp: Experiment, address: Optional[str], out: Optional[str],
               max_gflops: Optional[float] = None) -> list[str]:
    """The checks every new run shares (data, budgets, cluster, --out); what ``validate`` says."""
    from expand.complexity import ComplexityCounter

    lines = validate(exp, ComplexityCounter(), max_gflops)
    check_cluster(exp, address)
    check_cache_folder(exp, address)
    if out is not None:  # a new run folder takes its lock first, then these (api.new_run)
        run = RunDir(out)
        check_new_run_folder(run)
        if run.exists():
            raise InputError(f"{run.path}: already holds a run; use 'x3d-expand resume {run.path}'")
    return lines


def check_search(experiment: str, out: Optional[str] = None, address: Optional[str] = None,
                 settings: Optional[dict[str, Any]] = None, **overrides: Any) -> tuple[Experiment, list[str]]:
    """What ``search`` checks before it writes (experiment, manifests, budgets, where trials run, the
    run folder), and the lines that say what it would do; nothing is written, no Ray started.

    Why on its own (``--check``): a week-long search is often queued (sbatch, a cloud job) and
    should fail at submission, not hours later when the queue starts it. ``settings``: ``--set``'s
    dotted keys (``{"schedule.epochs": 2}``); ``overrides``: the search section's (the flags).
    """
    exp = configured(experiment, overrides, settings)
    return exp, [*settings_line(settings), *_check_new(exp, address, out)]


def check_baseline(experiment: str, method: str, trials: int, max_gflops: Optional[float] = None,
                   out: Optional[str] = None, address: Optional[str] = None,
                   settings: Optional[dict[str, Any]] = None, **overrides: Any) -> tuple[Experiment, list[str]]:
    """``check_search`` for a baseline: its own arguments too, and its plan."""
    check_baseline_args(method, trials, max_gflops)
    exp = configured(experiment, overrides, settings)
    lines = [*settings_line(settings), *_check_new(exp, address, out, max_gflops)]
    cap = max_gflops if max_gflops is not None else exp.search.max_gflops
    capped = f"models at or under {cap:g} GFLOPs" if cap is not None else "no GFLOP cap"
    return exp, [*(x for x in lines if not x.startswith("plan: ")),
                 f"plan: {method} baseline, {trials} trained trials, {capped} (+ retries)"]


def check_calibration(experiment: str, multipliers: Sequence[float], seeds: int, min_tau: float,
                      out: Optional[str] = None, address: Optional[str] = None,
                      settings: Optional[dict[str, Any]] = None, **overrides: Any) -> tuple[Experiment, list[str]]:
    """``check_search`` for ``calibrate``: its own arguments too, and its plan."""
    exp = configured(experiment, overrides, settings)
    check_calibration_args(exp, multipliers, seeds, min_tau)
    lines = [*settings_line(settings), *_check_new(exp, address, out)]
    lengths = sorted(set(float(m) for m in multipliers))
    models = 1 + len(exp.search_space.axes)
    return exp, [*(x for x in lines if not x.startswith("plan: ")),
                 f"plan: the basis and step 1's {models - 1} candidates at {', '.join(f'{m:g}x' for m in lengths)} "
                 f"the schedule, {seeds} seed(s) each: at most {models * len(lengths) * seeds} trials (+ retries)"]


def where_trials_run(exp: Experiment, address: Optional[str]) -> str:
    """A line for ``search --check``: where the trials would run, and how many at a time.

    A local Ray cluster is this machine: its CPUs (affinity, as Ray counts them) and CUDA GPUs
    are known now, so a trial no part of it can hold is the runner's exit-2 error, said now.
    """
    if exp.search.runner == "serial":
        return "trials: one at a time, in this process"
    if address or os.environ.get("RAY_ADDRESS"):
        return (f"trials: on the Ray cluster at {address or os.environ['RAY_ADDRESS']} (it answers; its CPUs "
                "and GPUs are counted when the search joins it)")
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    res = exp.resources
    for key, want, have in (("cpus", res.cpus_per_trial, cpus), ("gpus", res.gpus_per_trial, gpus)):
        if want > have:
            raise InputError(f"resources.{key}_per_trial: {want:g} {key[:-1].upper()}s per trial, but this "
                             f"machine (the search's own Ray cluster) has {have:g}; lower it or join a "
                             "cluster with --address")
    from expand.search.runners import trials_at_once

    n = trials_at_once(cpus, gpus, res.cpus_per_trial, res.gpus_per_trial, res.max_concurrent)
    return (f"trials: {n} at a time on a local Ray cluster ({cpus} CPUs, {gpus} GPUs here; "
            f"per trial {res.cpus_per_trial:g} CPU, {res.gpus_per_trial:g} GPU)")


def check_device_here(exp: Experiment, why: str) -> None:
    """An explicit ``trial.device`` this process cannot train on, for trials that run here
    (the serial runner, ``train``); on Ray each trial checks it where it runs."""
    if exp.trial.device == "auto":
        return
    from expand.device import device_problem

    problem = device_problem(exp.trial.device)
    if problem:
        raise ConfigError(f"{exp.source or 'experiment'}: {problem}, and {why}; use device: auto or cpu")


def check_new_run_folder(run: RunDir) -> None:
    """``--out`` is a new or empty folder (or a run: ``resume`` is the way on). A folder of other
    files took the run's config.yaml, state.json, trials/, plots/ and export/ among them: ``--out .``
    in an experiment folder mixed the two. Checked before the lock file is written there."""
    if not os.path.isdir(run.path) or run.exists():
        return
    try:
        # not the lock, nor the write probe of another command making this folder this very moment
        entries = sorted(e for e in os.listdir(run.path) if e != ".lock" and not e.startswith(PROBE_PREFIX))
    except OSError:
        return  # unreadable: acquiring the lock says why
    if entries:
        raise InputError(f"{run.path}: not empty and not a run folder ({len(entries)} entr"
                         f"{'y' if len(entries) == 1 else 'ies'}, e.g. {entries[0]!r}); give a new or empty "
                         "folder for the run")


def load_source_experiment(source: str, stored: Experiment, settings: Optional[dict[str, Any]] = None,
                           check_paths: bool = True) -> Experiment:
    """The experiment file a run was started from, as it is now, with the run's ``--set``; a dataset
    that moved is said so. ``check_paths=False``: this resume's own ``--set data.*`` comes next."""
    from expand.config.settings import apply_settings, touches

    settings = settings or {}
    check = check_paths and not touches(settings, "data")
    try:
        return apply_settings(load_experiment(source, check_paths=check), settings,
                              check_paths=check_paths and touches(settings, "data"))
    except ConfigError as exc:
        if stored.data.root and not os.path.isdir(stored.data.root):
            raise ConfigError(f"{exc}; moved the dataset? resume with --set data.root=WHERE_IT_IS_NOW "
                              "(only paths changed: no finished trial reruns)") from None
        raise


def check_has_path(folder: str, kind: str, path: list[PathEntry]) -> None:
    """Contraction needs an expansion path: a baseline or a calibration has none to contract."""
    if kind == "calibration":
        raise InputError(f"{folder}: a calibration run has no expansion path to contract; contract a search's run")
    if kind != "expansion":
        raise InputError(f"{folder}: a {kind} baseline has no expansion path to contract; 'x3d-expand export "
                         f"{folder} --target-gflops X' exports its most accurate model under X")
    if not path:
        raise InputError(f"{folder}: the run has no trained step yet")


def check_gflops(value: Any, name: str) -> float:
    """A GFLOP budget given from Python (the CLI's parser checks its own): a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name}: must be a positive finite number, got {value!r}")
    return float(value)


def check_contract_targets(path: list[PathEntry], targets: list[float], name: str = "--target-gflops") -> None:
    """A contraction target must lie between the basis and the path's largest model.

    ``name``: what the caller called it (``--target-gflops``; ``gflops`` or ``budget`` from Python)."""
    basis, last = path[0], max(path, key=lambda p: p.gflops)
    for t in targets:
        check_gflops(t, name)
        if t < basis.gflops:
            raise InputError(f"{name} {t:g}: impossible: the basis already needs "
                             f"{basis.gflops:.4g} GFLOPs")
        if t > last.gflops:
            raise InputError(f"{name} {t:g}: above the path's largest model ({last.gflops:.4g} "
                             f"GFLOPs at step {last.step}); resume the search with more steps to reach it")


__all__ = ["REACH_SLACK", "check_baseline_args", "check_budgets", "check_cluster", "check_contract_targets", "configured",
           "check_device_here", "check_gflops", "check_has_path", "check_manifests", "check_new_run_folder",
           "load_source_experiment", "steps_to", "validate"]
