"""Starting and resuming runs (contracting them: ``expand/contracting.py``): what the CLI and Python
callers share.

Every function here validates everything it can *before* it writes anything
(experiment, trial function, manifests, budgets: ``preflight.py``), then holds the run's lock
for as long as it writes. Data flows one way: experiment -> run folder ->
coordinator (or baseline) -> runner -> trials -> the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any, Iterator, Optional, Sequence

from expand.config import DEFAULT_TRIAL_FUNCTION, Experiment, experiment_from_dict
from expand.errors import ConfigError, InputError
from expand.config.settings import apply_settings, checked_settings, shown_settings, touches
from expand.preflight import (apply_overrides, check_baseline, check_budgets, check_calibration, check_cluster,
                              check_growth, check_manifests, check_new_run_folder, check_search,
                              load_source_experiment, validate)
from expand.run import RunDir, RunFileError, RunOrigin, RunState


# ---------------------------------------------------------------- experiment
# ---------------------------------------------------------------- run folders
def default_out(exp: Experiment, suffix: str = "") -> str:
    return os.path.join("results", f"{exp.name}{suffix}-{time.strftime('%Y%m%d-%H%M%S')}")


def new_run(exp: Experiment, out: str, origin: RunOrigin, kind: str = "expansion",
            extra: Optional[dict[str, Any]] = None) -> RunDir:
    """A fresh run folder, locked by this process, with config.yaml and a first state.json.

    The lock is taken before the folder is looked at, so two searches started
    a second apart with the same ``--out`` cannot both pass the check.
    """
    from expand.data.manifest import write_label_map

    run = RunDir(out)
    check_new_run_folder(run)
    run.acquire(f"{kind} {exp.name}")
    try:
        if run.exists():
            raise InputError(f"{run.path}: already holds a run; use 'x3d-expand resume {run.path}'")
        run.write_config(exp.to_dict())
        if exp.data.root and exp.trial.function == DEFAULT_TRIAL_FUNCTION:
            write_label_map(exp.data, run.path)
        run.write_state(RunState(kind=kind, name=exp.name, status="starting", origin=origin,
                                 extra=dict(extra or {})))
    except BaseException:
        run.release()
        raise
    return run


def load_run(run_dir: str) -> tuple[RunDir, dict[str, Any], Experiment]:
    """A run's folder, validated state and resolved experiment; no lock (readers never block)."""
    run = RunDir(run_dir)
    if not os.path.isdir(run.path):
        raise InputError(f"{run.path}: not a run folder (no such folder)")
    state = run.read_state()
    try:
        exp = experiment_from_dict(run.read_config(), f"{run.config_path}:")
    except ConfigError as exc:
        raise RunFileError(f"{exc} (the run's config.yaml is corrupt or from another version)") from None
    return run, state, exp


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix]


# ---------------------------------------------------------------- running
def runner_for(exp: Experiment, run: RunDir, address: Optional[str]) -> Any:
    from expand.search.nodes import Requirements
    from expand.search.runners import make_runner
    from expand.search.time_limits import TimeLimits

    limits = TimeLimits.of(exp.trial)
    return make_runner(
        exp.search.runner, exp.trial.function, run.path,
        cpus_per_trial=exp.resources.cpus_per_trial, gpus_per_trial=exp.resources.gpus_per_trial,
        address=address, max_concurrent=exp.resources.max_concurrent,
        worker_crash_retries=exp.retries.worker_crash,
        requirements=Requirements.of(exp), ship_package=exp.resources.ship_package,
        time_limit_s=limits.fixed_s, trial_time_limits=limits.any,  # the executor gives each trial its own
    )


def finish(run: RunDir, quiet: bool = False) -> str:
    """Tables and plots of a run that stopped; returns the rendered table."""
    from expand import results

    try:
        results.write_steps_csv(run.path)
        results.write_plots(run.path)
    except Exception as exc:  # noqa: BLE001 - tables must not lose a finished search
        print(f"warning: could not write tables/plots: {exc}")
    return results.render_run(run.path, "table")


@contextlib.contextmanager
def trial_session(exp: Experiment, run: RunDir, address: Optional[str], quiet: bool, what: str,
                   notes: Sequence[str] = (), lazy: bool = False) -> Iterator[Any]:
    """The progress display and the started runner of one command, both closed however it ends.

    ``notes``: what the command said before it (the data each trial sees, the plan), for the log.
    ``lazy``: start the runner only when a trial needs it (``resume`` of a finished run replays
    its log and trains nothing: no Ray cluster, no cache check). Otherwise it starts at once, so
    the first Ray worker loads while the coordinator counts the basis's FLOPs."""
    from expand.console import COMMAND_LINE
    from expand.search.progress import make_progress
    from expand.run import environment
    from expand.search.progress_log import LOG_FILE, RunLog, TeeProgress

    from expand.run.stop import clear_stop

    log = RunLog(run.file(LOG_FILE))  # what the screen shows, kept in the run folder with times
    command = COMMAND_LINE.get() or f"Python API: {what} of {exp.name!r}"
    log.header(command)
    if clear_stop(run.path):  # a request the last session ended before reading: not this one's
        log.line("note: an earlier 'x3d-expand stop' request was cleared (this session was started after it)")
    for line in notes:
        log.line(line)
    from expand.run.notify import Notifier, notify_command

    hook = notify_command()
    notifier = Notifier(hook, run.path, log.line) if hook else None
    progress = TeeProgress(make_progress(quiet), log, *([notifier] if notifier else []))

    def start() -> Any:
        from expand.search.runners import RayRunner

        changed = environment.record(run.path, command)  # the versions this session trains under
        if changed:
            progress.note(changed)
        where = f"joining the Ray cluster at {address}" if address else "starting Ray and the first trial worker"
        with progress.phase(where if exp.search.runner == "ray" else "preparing the trial runner"):
            started = runner_for(exp, run, address)
        try:
            _build_frame_caches(exp, isinstance(started, RayRunner), progress, quiet)
        except BaseException:
            started.close()
            raise
        return started

    try:
        from expand.search.runners import RUNNERS, LazyRunner

        in_process = RUNNERS.get(exp.search.runner).trials_in_process
        if lazy and in_process is not None:
            if exp.search.runner == "ray" and not address:  # what a killed earlier driver left, as at a start
                from expand.search import ray_session

                note = ray_session.clean_stale(run.path)
                if note:
                    progress.note(note)
            runner = LazyRunner(start, in_process)
        else:
            runner = start()
        try:
            yield runner, progress
        finally:
            runner.close()
        log.ended()
        if notifier:
            notifier.ended(what)
    except BaseException as exc:
        log.stopped(exc)
        if notifier:
            from expand.search.progress_log import stop_line

            notifier.stopped(stop_line(exc))
        raise
    finally:
        progress.close()


def _build_frame_caches(exp: Experiment, on_ray: bool, progress: Any, quiet: bool) -> None:
    """Decode what the frame cache lacks before the first trial, with every core of every trial machine.

    Left to the trials, the first one decodes the whole dataset in one process,
    on its time limit's clock, its GPU idle (and on a cluster, each node's first
    trials all decode the same videos); see expand/search/node_cache.py."""
    from expand.search.node_cache import CacheJob, build_before_trials

    job = CacheJob.of(exp)
    if job is not None:
        line = build_before_trials(job, on_ray, say=progress.note, progress=not quiet)
        if line:
            progress.note(line)


def execute_search(exp: Experiment, run: RunDir, address: Optional[str], quiet: bool,
                   origin: RunOrigin, notes: Sequence[str] = (), lazy: bool = False) -> Any:
    """Run (or replay) the expansion in a locked run folder; returns the SearchOutcome."""
    from expand.complexity import ComplexityCounter
    from expand.search.coordinator import Coordinator

    with trial_session(exp, run, address, quiet, "search", notes, lazy) as (runner, progress):
        return Coordinator(exp, run, runner, ComplexityCounter(), progress,
                           extra_state=_origin_dict(origin)).run()


def execute_baseline(exp: Experiment, run: RunDir, method: str, budget: int, max_gflops: Optional[float],
                     address: Optional[str], quiet: bool, extra: dict[str, Any], lazy: bool = False) -> Any:
    from expand.baselines import Baseline
    from expand.complexity import ComplexityCounter

    with trial_session(exp, run, address, quiet, f"{method} baseline", lazy=lazy) as (runner, progress):
        return Baseline(exp, run, runner, ComplexityCounter(), method, budget, max_gflops, progress,
                        extra_state=extra).run()


def execute_calibration(exp: Experiment, run: RunDir, address: Optional[str], quiet: bool,
                        extra: dict[str, Any], lazy: bool = False) -> dict[str, Any]:
    from expand.complexity import ComplexityCounter
    from expand.search.calibrate import Calibration

    with trial_session(exp, run, address, quiet, "calibration", lazy=lazy) as (runner, progress):
        return Calibration(exp, run, runner, ComplexityCounter(), extra["multipliers"], extra["seeds"],
                           extra["min_tau"], progress, extra_state=extra).run()


def start_calibration(experiment: str, multipliers: Sequence[float] = (1.0, 2.0, 4.0), seeds: int = 1,
                      min_tau: float = 0.8, out: Optional[str] = None, address: Optional[str] = None,
                      quiet: bool = False, settings: Optional[dict[str, Any]] = None,
                      **overrides: Any) -> tuple[RunDir, dict[str, Any]]:
    """Train the first step's candidates at several schedule lengths; see expand/search/calibrate.py."""
    exp, _ = check_calibration(experiment, multipliers, seeds, min_tau, address=address, settings=settings,
                               **overrides)
    origin = RunOrigin(exp.source, overrides, address, checked_settings(settings))
    extra = {**_origin_dict(origin), "multipliers": sorted(set(float(m) for m in multipliers)), "seeds": seeds,
             "min_tau": min_tau}
    run = new_run(exp, out or default_out(exp, "-calibration"), origin, kind="calibration", extra=extra)
    if not quiet:
        print(f"run folder: {run.path}")
    try:
        return run, execute_calibration(exp, run, address, quiet, extra)
    finally:
        run.release()


def _origin_dict(origin: RunOrigin) -> dict[str, Any]:
    return {"experiment_source": origin.experiment_source, "overrides": origin.overrides,
            "settings": origin.settings, "address": origin.address}


def start_search(experiment: str, out: Optional[str] = None, address: Optional[str] = None,
                 quiet: bool = False, settings: Optional[dict[str, Any]] = None,
                 **overrides: Any) -> tuple[RunDir, Any]:
    """Load, validate, create the run folder and search; the folder's lock is released at the end.

    ``settings``: ``--set``'s dotted keys (``{"schedule.epochs": 2}``), kept with the run for resume."""
    exp, plan = check_search(experiment, address=address, settings=settings, **overrides)
    origin = RunOrigin(exp.source, overrides, address, checked_settings(settings))
    run = new_run(exp, out or default_out(exp), origin)
    if not quiet:
        print(f"run folder: {run.path}")
        print("\n".join(plan), flush=True)
    try:
        return run, execute_search(exp, run, address, quiet, origin, plan)
    finally:
        run.release()


def start_baseline(experiment: str, method: str, trials: int, max_gflops: Optional[float] = None,
                   out: Optional[str] = None, address: Optional[str] = None, quiet: bool = False,
                   settings: Optional[dict[str, Any]] = None, **overrides: Any) -> tuple[RunDir, Any]:
    exp, _ = check_baseline(experiment, method, trials, max_gflops, address=address, settings=settings,
                            **overrides)
    origin = RunOrigin(exp.source, overrides, address, checked_settings(settings))
    extra = {**_origin_dict(origin), "method": method, "trial_budget": trials, "max_gflops_arg": max_gflops}
    run = new_run(exp, out or default_out(exp, f"-{method}"), origin, kind=method, extra=extra)
    if not quiet:
        print(f"run folder: {run.path}")
    try:
        return run, execute_baseline(exp, run, method, trials, max_gflops, address, quiet, extra)
    finally:
        run.release()


def resume(run_dir: str, force: bool = False, runner: Optional[str] = None, address: Optional[str] = None,
           quiet: bool = False, max_steps: Optional[int] = None,
           targets: Optional[Sequence[float]] = None, settings: Optional[dict[str, Any]] = None) -> tuple[RunDir, Any]:
    """Continue a run (expansion or baseline); finished trials of the same model are never retrained.

    ``max_steps``/``targets`` grow a search further (a finished one too): the steps it decided
    replay from their trials, and the new values stay with the run for later resumes.
    ``settings`` (``--set``) change keys for the rest of the run; one that trials' fingerprints
    read (the schedule, the data, ...) needs ``force``, as an edited file does.
    """
    from expand.search.trial import reruns_trials

    asked = checked_settings(settings)
    for key in ("search.max_steps", "search.targets"):
        if key in asked:
            raise InputError(f"--set {key}: on resume, grow the search with --{key[7:].replace('_', '-')} "
                             "(it checks the steps already decided)")
    run, _, stored = load_run(run_dir)
    run.acquire("resume")
    notes: list[str] = []
    try:
        state = run.state()  # read again under the lock: the last writer may just have finished
        grown = {k: v for k, v in (("max_steps", max_steps), ("targets", targets)) if v is not None}
        exp, base, edited = stored, stored, []
        source = state.origin.experiment_source
        if source and os.path.isfile(source):
            base = apply_overrides(load_source_experiment(source, stored, state.origin.settings,
                                                          check_paths=not touches(asked, "data")),
                                   state.origin.overrides)
            edited = diff_keys(stored.to_dict(), base.to_dict())
            if edited and not force:
                kept = not any(reruns_trials(k) for k in edited)
                raise InputError(f"{source} changed since the run started ({', '.join(edited[:8])}); "
                                 "use --force to resume with the new file ("
                                 + ("no trial's fingerprint reads these: no finished trial reruns)" if kept
                                    else "trials of changed models rerun)"))
        current = apply_settings(base, asked)
        changed = diff_keys(stored.to_dict(), current.to_dict())
        rerun = [k for k in changed if reruns_trials(k)]
        if rerun and not force:  # only --set's keys are left: the file is as the run started
            raise InputError(f"--set: {', '.join(rerun[:8])} changes the models' trials (their fingerprints read "
                             "it): finished trials of changed models would rerun; add --force to resume so")
        if changed:
            exp = current
            why = [f"--force: {source} changed ({', '.join(edited[:8])})"] if edited else []
            why += [shown_settings(asked)] if asked else []
            notes = [f"resumed with {' and '.join(why)}"
                     + ("; trials of changed models rerun" if rerun else "; no finished trial reruns")]
        if asked:  # kept for later resumes; a flag's value it replaces (search.seed for --seed) goes
            flags = {k: v for k, v in state.origin.overrides.items() if f"search.{k}" not in asked}
            state.origin = dataclasses.replace(state.origin, settings={**state.origin.settings, **asked},
                                               overrides=flags)
        if grown:  # checked against the experiment this resume runs (the edited file's, with --force)
            from expand.complexity import ComplexityCounter

            check_growth(state.kind, state.path, max_steps, targets, exp.search.targets)
            exp = apply_overrides(exp, grown)
            check_budgets(dataclasses.replace(exp, source="resume --max-steps/--targets"), ComplexityCounter())
            notes.append("resumed to grow the search: " + ", ".join(f"search.{k} {v}" for k, v in grown.items()))
        recorded = exp  # what config.yaml says once every check has passed (not this resume's --runner)
        if runner:
            exp = apply_overrides(exp, {"runner": runner})
        # the cluster the run was started on, while its trials still run on Ray (not after --runner serial)
        address = address or (state.origin.address if exp.search.runner == "ray" else None)
        check_cluster(exp, address)
        if grown:
            state.origin = dataclasses.replace(state.origin, overrides={**state.origin.overrides, **grown})
        if changed or grown:
            run.write_config(recorded.to_dict())
        if not quiet:
            print(f"resuming {run.path}")
        lazy = state.status == "finished" and not notes  # likely nothing to train: start Ray only if needed
        if state.kind == "calibration":
            extra = {**_origin_dict(state.origin), **{k: state.extra[k] for k in ("multipliers", "seeds", "min_tau")}}
            return run, execute_calibration(exp, run, address, quiet, extra, lazy)
        if state.kind != "expansion":
            extra = {**_origin_dict(state.origin),
                     **{k: state.extra.get(k) for k in ("method", "trial_budget", "max_gflops_arg")}}
            return run, execute_baseline(exp, run, state.kind, int(state.extra["trial_budget"]),
                                         state.extra.get("max_gflops_arg"), address, quiet, extra, lazy)
        return run, execute_search(exp, run, address, quiet, state.origin, notes, lazy)
    finally:
        run.release()


__all__ = [
    "apply_overrides", "check_budgets", "check_manifests", "validate", "new_run", "load_run",
    "start_search", "start_baseline", "resume", "finish", "runner_for", "trial_session",
]
