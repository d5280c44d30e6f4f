"""Runners: take a batch of TrialSpecs, hand back TrialResults as they finish.

``SerialRunner`` runs trials one after another in this process (debugging,
tests). ``RayRunner`` runs them as parallel Ray Tune trials on a local cluster
(``ray.init()``) or an existing one (``address="auto"`` or ``ray://...``),
with per-trial CPUs/GPUs (fractional allowed), on a pool of long-lived Tune
workers shared by every batch of a search. Results stream back to the calling
thread, so the coordinator records each trial the moment it ends. A worker
that dies is restarted by Tune (FailureConfig), the trial it held rerun and,
past the retries, reported as a ``failed`` result: nothing here raises for a
trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

from expand.errors import DeviceBroken, NodeLost
from expand.registry import Registry
from expand.search import live, nodes, ray_session
from expand.search.nodes import Requirements
from expand.search.pool import WorkerPool
from expand.search.trial import TrialResult, TrialSpec, call_safely, failed_result, load_trial_function

OnResult = Callable[[TrialSpec, TrialResult], None]
OnProgress = Callable[[dict[str, Any]], None]  # a running trial's expand.search.live.report()


class Runner(Protocol):
    """Runs a batch; a trial's ``time_limit_s``, where set, is the attempt's limit to enforce (a
    ``timeout`` result past it, as :func:`expand.search.trial.timeout_result` makes)."""

    # True when trials run in the caller's process (and compete with it for CPU).
    trials_in_process: bool

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult,
            on_progress: Optional[OnProgress] = None) -> None: ...

    def close(self) -> None: ...

    @property
    def parallelism(self) -> int: ...


class SerialRunner:
    """Trials in this process, in order. ``function`` is a callable or 'module:function'.

    ``time_limit_s`` interrupts an attempt at its next Python instruction (a
    signal: main thread only; a C call that never returns is beyond it, and
    beyond any in-process limit — the Ray runner kills the worker instead).
    """

    trials_in_process = True

    def __init__(self, function: str | Callable[[TrialSpec], TrialResult],
                 time_limit_s: Optional[float] = None, trial_time_limits: bool = False) -> None:
        self.function = load_trial_function(function) if isinstance(function, str) else function
        self.time_limit_s = time_limit_s  # for a trial without its own TrialSpec.time_limit_s
        if (time_limit_s or trial_time_limits) and threading.current_thread() is not threading.main_thread():
            which = f"{time_limit_s:g} s" if time_limit_s else "auto"
            print(f"note: trial.time_limit_s ({which}) is not enforced: the serial runner "
                  "runs off the main thread here (the Ray runner enforces it anywhere)", flush=True)

    @property
    def parallelism(self) -> int:
        return 1

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult,
            on_progress: Optional[OnProgress] = None, should_stop: Optional[Callable[[], bool]] = None) -> None:
        for trial in trials:
            if should_stop is not None and should_stop():  # x3d-expand stop: the rest do not start
                return
            with live.reporting(on_progress):
                result = call_safely(self.function, trial, trial.time_limit_s or self.time_limit_s)
            on_result(trial, result)
            if result.device_broken:  # every later trial in this process would fail the same way
                raise DeviceBroken(f"{result.device_broken} (in {trial.trial_id}): this process cannot use its "
                                   "GPU again", result.device_broken, trial.trial_id)

    def close(self) -> None:
        pass


class _TokenAuthNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")


def _drop_token_auth_notice() -> None:
    """Ray 2.60 says "Token authentication is enabled for this Ray cluster" on every ``ray.init``
    of a new local cluster: the only line a ``--quiet`` search printed, about a safe default of a
    cluster the search starts and stops itself. Its warning that auth is *disabled* still shows."""
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenAuthNotice) for f in log.filters):
        log.addFilter(_TokenAuthNotice())


class RayRunner:
    """Parallel trials on a :class:`~expand.search.pool.WorkerPool` that lives as long as the runner.

    The pool's workers are shared by every batch of a search (see pool.py for
    why); results come back to the calling thread as trials finish. A worker
    that dies is restarted by Tune and the trial it held rerun, up to
    ``worker_crash_retries`` times, then recorded as ``failed``.

    ``storage_dir`` holds Tune's files (under the run folder). Ray is started
    once per runner (or reused if the caller already started it) and shut
    down by :meth:`close` only if this runner started it.
    """

    trials_in_process = False

    def __init__(
        self,
        function: str,
        storage_dir: str,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        address: str | None = None,
        max_concurrent: int | None = None,
        worker_crash_retries: int = 1,
        name_prefix: str = "workers",
        requirements: Optional[Requirements] = None,
        ship_package: bool = False,
        time_limit_s: Optional[float] = None,
        trial_time_limits: bool = False,
    ) -> None:
        import ray

        load_trial_function(function)  # a bad name fails here, not in every worker
        self.function = function
        self.storage_dir = os.path.abspath(storage_dir)
        self.resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
        self.max_concurrent = max_concurrent
        self.worker_crash_retries = worker_crash_retries
        self.time_limit_s = time_limit_s
        self.trial_time_limits = trial_time_limits  # trials carry their own (TrialSpec.time_limit_s)
        self.name_prefix = name_prefix
        self._pool: Optional[WorkerPool] = None
        self._abandoned = False
        self._started_ray = False
        self._own_cluster = False  # started by ray.init here, not joined (--address, RAY_ADDRESS)
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        # Without Tune's file loggers its end-of-run summary warns, per worker, that
        # it found no metrics files: results reach us through the callback instead.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
        _drop_token_auth_notice()
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        self._run_path = os.path.dirname(self.storage_dir)  # the run folder (storage is RUN/ray)
        if not ray.is_initialized():
            if address is None:
                note = ray_session.clean_stale(self._run_path)
                if note:
                    print(note, flush=True)
            # No --address: a cluster of our own, as documented. Ray's default would join whatever
            # cluster it finds on this machine (the last `ray start`, a stray one left running);
            # RAY_ADDRESS (set by `ray job submit`) still picks the cluster, as Ray intends.
            own = "local" if address is None and not os.environ.get("RAY_ADDRESS") else address
            with _keep_sigterm_handler():
                ray.init(
                    address=own,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    ignore_reinit_error=True,
                    runtime_env=_shipped_package() if ship_package else None,
                )
            self._started_ray = True
            self._own_cluster = own == "local"
        try:
            self._check_resources()
            if requirements is not None and (address is not None or len(_alive_nodes()) > 1):
                line = nodes.summary(nodes.require_nodes(requirements))  # exit 2 naming a node that cannot
                if line:
                    print(line, flush=True)
            if self._started_ray and self._own_cluster:  # a cluster of our own: what a kill -9 would leave
                ray_session.record(self._run_path, ray._private.worker._global_node.get_session_dir_path())
            self._start()  # the first worker loads while the caller counts the basis
        except BaseException:  # SIGTERM or Ctrl-C while starting: nobody else will close what we started
            self._abandoned = True
            self.close()
            raise

    def _check_resources(self) -> None:
        """A trial no node can ever hold would wait forever: say so now (exit 2)."""
        import ray

        from expand.errors import InputError

        total = ray.cluster_resources()
        for key, name in (("cpu", "CPU"), ("gpu", "GPU")):
            want, have = self.resources[key], total.get(name, 0)
            if want > have:
                raise InputError(f"resources.{key}s_per_trial: {want:g} {name}s per trial, but the Ray "
                                 f"cluster has {have:g}; lower it or add nodes")

    @property
    def parallelism(self) -> int:
        import ray

        total = ray.cluster_resources()
        return trials_at_once(total.get("CPU", 1), total.get("GPU", 0), self.resources["cpu"],
                              self.resources["gpu"], self.max_concurrent)

    def _start(self) -> WorkerPool:
        self._pool = WorkerPool(self.function, self.storage_dir, self.resources, self.parallelism,
                                self.worker_crash_retries, self.name_prefix, time_limit_s=self.time_limit_s,
                                trial_time_limits=self.trial_time_limits)
        self._pool.start()
        return self._pool

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult,
            on_progress: Optional[OnProgress] = None, should_stop: Optional[Callable[[], bool]] = None) -> None:
        if not trials:
            return
        pool = self._pool if self._pool is not None and self._pool.running else self._start()
        pool.submit(trials)
        try:
            self._collect(pool, {t.trial_id: t for t in trials}, on_result, on_progress, should_stop)
        except BaseException:
            self._abandoned = True  # Ctrl-C or an error in on_result: close() does not wait for trials
            raise

    def _collect(self, pool: WorkerPool, by_id: dict[str, TrialSpec], on_result: OnResult,
                 on_progress: Optional[OnProgress] = None, should_stop: Optional[Callable[[], bool]] = None) -> None:
        drained = False
        while by_id:
            if not drained and should_stop is not None and should_stop():  # asked between two events:
                drained = True  # the queued trials are taken back; the running ones are waited for
                for trial_id in pool.drain():
                    by_id.pop(trial_id, None)
                continue
            what, item = pool.next_event()
            if what == "progress":
                if on_progress is not None and item.get("trial_id") in by_id:
                    on_progress(item)
            elif what == "result":
                t = by_id.get(item.get("trial_id"))
                if t is not None and item.get("attempt", t.attempt) == t.attempt:
                    del by_id[t.trial_id]  # (else a stale report: a rerun after a crash, an earlier attempt)
                    on_result(t, TrialResult.from_dict(item))
            else:  # Tune itself stopped: nothing left can run; the next batch starts a new pool
                pool.stop(wait=0)
                if getattr(pool, "node_lost", ""):  # nor can a new pool: nothing here failed, so nothing is recorded
                    raise NodeLost(pool.node_lost)
                # a full disk under Tune's own files stops the search resumably, as one under a trial's
                disk_error = getattr(pool, "disk_error", None)
                for t in by_id.values():
                    on_result(t, failed_result(t, f"Ray Tune stopped: {item}", disk_error))
                return

    def close(self) -> None:
        try:
            if self._pool is not None:
                self._pool.stop(wait=5 if self._abandoned else 120)
        finally:  # whatever stopping the pool raised (a second signal, a dead actor), Ray goes down
            if self._started_ray:
                import ray

                ray.shutdown()
                self._started_ray = False
                ray_session.forget(self._run_path)


def takes(runner: Any, keyword: str) -> bool:
    """Does the runner's ``run`` take ``keyword`` (a registered runner may predate it)?"""
    import inspect

    try:
        return keyword in inspect.signature(runner.run).parameters
    except (TypeError, ValueError):
        return False


def trials_at_once(cpus: float, gpus: float, cpus_per_trial: float, gpus_per_trial: float,
                   max_concurrent: Optional[int] = None) -> int:
    """Trials a cluster of ``cpus`` and ``gpus`` runs side by side (at least one): the Ray runner's
    parallelism, and what ``search --check`` says of a local cluster before one is started."""
    n = int(cpus // max(cpus_per_trial, 1e-9))
    if gpus_per_trial > 0:
        n = min(n, int(gpus // gpus_per_trial))
    if max_concurrent:
        n = min(n, max_concurrent)
    return max(n, 1)


def _alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _shipped_package() -> dict[str, Any]:
    """A runtime_env that uploads this checkout's ``expand`` to the cluster (a bare cluster needs only the
    dependencies installed: torch, ray, fvcore, av, ...)."""
    import expand

    return {"py_modules": [os.path.dirname(os.path.abspath(expand.__file__))]}


@contextlib.contextmanager
def _keep_sigterm_handler() -> Any:
    """ray.init installs its own SIGTERM handler (a stack dump, then exit); keep the caller's.

    The CLI turns SIGTERM into an orderly stop (close the pool, shut Ray down,
    release the run's lock); Ray's handler would skip all of that.
    """
    import signal

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


class LazyRunner:
    """A runner started when a trial first needs it (``start`` builds it), not when the command starts.

    Why: ``resume`` of a finished run, or of one whose next trials all finished before
    it stopped, replays the log and trains nothing; starting a Ray cluster and checking
    every video's cache entry for it cost seconds to minutes. ``trials_in_process`` is
    the kind's own (the coordinator asks before anything runs).
    """

    def __init__(self, start: Callable[[], Runner], trials_in_process: bool) -> None:
        self._start = start
        self._runner: Optional[Runner] = None
        self.trials_in_process = trials_in_process

    @property
    def started(self) -> bool:
        return self._runner is not None

    def _get(self) -> Runner:
        if self._runner is None:
            self._runner = self._start()
        return self._runner

    @property
    def parallelism(self) -> int:
        return self._get().parallelism

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult,
            on_progress: Optional[OnProgress] = None, should_stop: Optional[Callable[[], bool]] = None) -> None:
        inner = self._get()
        inner.run(trials, on_result, on_progress=on_progress,
                  **({"should_stop": should_stop} if takes(inner, "should_stop") else {}))

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()


@dataclass(frozen=True)
class RunnerKind:
    """A named way to run trials: ``make(function, options)`` builds the Runner."""

    name: str
    make: Callable[[str, "RunnerOptions"], Runner]
    description: str
    # whether its trials run in the caller's process, known before it is built; a kind that says
    # (True or False) may be started lazily (LazyRunner), one that does not (None) starts at once
    trials_in_process: Optional[bool] = None


@dataclass(frozen=True)
class RunnerOptions:
    """What every runner is built from (the experiment's resources and retries, the run folder)."""

    run_dir: str
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: Optional[str] = None
    max_concurrent: Optional[int] = None
    worker_crash_retries: int = 1
    requirements: Optional[Requirements] = None  # checked on every node before the first trial
    ship_package: bool = False  # upload this expand to the cluster (Ray runtime_env py_modules)
    time_limit_s: Optional[float] = None  # per attempt (trial.time_limit_s); None: none
    trial_time_limits: bool = False  # trials carry their own limits (TrialSpec.time_limit_s: fixed or auto)


RUNNERS: Registry[RunnerKind] = Registry("runner")
RUNNERS.register("ray", RunnerKind(
    "ray", lambda function, o: RayRunner(
        function, storage_dir=os.path.join(o.run_dir, "ray"), cpus_per_trial=o.cpus_per_trial,
        gpus_per_trial=o.gpus_per_trial, address=o.address, max_concurrent=o.max_concurrent,
        worker_crash_retries=o.worker_crash_retries, requirements=o.requirements,
        ship_package=o.ship_package, time_limit_s=o.time_limit_s, trial_time_limits=o.trial_time_limits),
    "parallel trials on a Ray cluster (local by default, --address for an existing one)", trials_in_process=False))
RUNNERS.register("serial", RunnerKind(
    "serial", lambda function, o: SerialRunner(function, time_limit_s=o.time_limit_s,
                                               trial_time_limits=o.trial_time_limits),
    "one trial after another in this process (debugging, tests)", trials_in_process=True))


def make_runner(
    kind: str,
    function: str,
    run_dir: str,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    address: str | None = None,
    max_concurrent: int | None = None,
    worker_crash_retries: int = 1,
    requirements: Optional[Requirements] = None,
    ship_package: bool = False,
    time_limit_s: Optional[float] = None,
    trial_time_limits: bool = False,
) -> Runner:
    options = RunnerOptions(run_dir, cpus_per_trial, gpus_per_trial, address, max_concurrent, worker_crash_retries,
                            requirements, ship_package, time_limit_s, trial_time_limits)
    return RUNNERS.get(kind).make(function, options)
