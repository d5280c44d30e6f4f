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
import queue
import threading
from typing import Any, Callable, Protocol, Sequence

from expand.search.ray_pool import (
    _CHANNELS,
    _channel_callback,
    _close_pool,
    _dispatcher_class,
    _grow_pool,
    _open_pool,
    _pool_searcher,
    _ray_worker,
)
from expand.search import ray_session
from expand.search.trial import TrialResult, TrialSpec, call_safely, failed_result, load_trial_function

OnResult = Callable[[TrialSpec, TrialResult], None]


class Runner(Protocol):
    # True when trials run in the caller's process (and compete with it for CPU).
    trials_in_process: bool

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult) -> None: ...

    def close(self) -> None: ...

    @property
    def parallelism(self) -> int: ...


class SerialRunner:
    """Trials in this process, in order. ``function`` is a callable or 'module:function'."""

    trials_in_process = True

    def __init__(self, function: str | Callable[[TrialSpec], TrialResult]) -> None:
        self.function = load_trial_function(function) if isinstance(function, str) else function

    @property
    def parallelism(self) -> int:
        return 1

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult) -> None:
        for trial in trials:
            on_result(trial, call_safely(self.function, trial))

    def close(self) -> None:
        pass


class RayRunner:
    """Parallel trials on a pool of Ray Tune workers that lives as long as the runner.

    Why a pool: the expansion is a chain of small batches, each waiting for
    the last. A Tune run per batch with a worker process per trial cost ~5 s
    of Tune start-up per batch and ~2 s of CPU per fresh worker (importing
    Ray, torch and the package): 66 % overhead on 10 s trials, measured. Here
    one Tune experiment (started with the runner, in a background thread)
    runs ``parallelism`` long-lived workers, each a Tune trial that takes
    search trials from a dispatcher actor until :meth:`close`. It starts one
    worker, and the rest once that one is up or a batch needs them: the
    first batch is the basis alone, which then starts 2 s after Ray instead
    of 7 s (six workers loading at once on 2 cores). Results come
    back to the calling thread as trials finish. A worker that dies is
    restarted by Tune (FailureConfig) and the trial it held is rerun, up to
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
    ) -> None:
        import ray

        load_trial_function(function)  # a bad name fails here, not in every worker
        self.function = function
        self.storage_dir = os.path.abspath(storage_dir)
        self.resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
        self.max_concurrent = max_concurrent
        self.worker_crash_retries = worker_crash_retries
        self.name_prefix = name_prefix
        self._key = f"{os.getpid()}-{id(self)}"
        self._thread: threading.Thread | None = None
        self._dispatcher: Any = None
        self._workers = 0
        self._fit_error = ""
        self._abandoned = False
        self._started_ray = False
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        # Without Tune's file loggers its end-of-run summary warns, per worker, that
        # it found no metrics files: results reach us through the callback instead.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        self._run_path = os.path.dirname(self.storage_dir)  # the run folder (storage is RUN/ray)
        if not ray.is_initialized():
            if address is None:
                note = ray_session.clean_stale(self._run_path)
                if note:
                    print(note, flush=True)
            with _keep_sigterm_handler():
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    ignore_reinit_error=True,
                )
            self._started_ray = True
        try:
            self._check_resources()
            if self._started_ray and address is None:  # a cluster of our own: what a kill -9 would leave
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

        cpus = ray.cluster_resources().get("CPU", 1)
        gpus = ray.cluster_resources().get("GPU", 0)
        n = int(cpus // max(self.resources["cpu"], 1e-9))
        if self.resources["gpu"] > 0:
            n = min(n, int(gpus // self.resources["gpu"]))
        if self.max_concurrent:
            n = min(n, self.max_concurrent)
        return max(n, 1)

    def _start(self) -> "queue.Queue[tuple[str, Any]]":
        from ray import tune

        channel: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        _CHANNELS[self._key] = channel
        name = f"x3d-expand-dispatcher-{self._key}"
        self._dispatcher = _dispatcher_class().options(name=name).remote(self.worker_crash_retries)
        self._workers = self.parallelism
        _open_pool(self._key, self._workers)
        tuner = tune.Tuner(
            tune.with_resources(_ray_worker, self.resources),
            param_space={"dispatcher": name, "function": self.function},
            tune_config=tune.TuneConfig(search_alg=_pool_searcher(self._key, self._workers),
                                        num_samples=self._workers, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"{self.name_prefix}-{os.getpid()}",
                storage_path=self.storage_dir,
                # A restart per crash each trial may cause, and a few to spare.
                failure_config=tune.FailureConfig(max_failures=3 + 2 * self.worker_crash_retries),
                verbose=0,
                callbacks=[_channel_callback(self._key)],
            ),
        )

        def fit() -> None:
            try:
                tuner.fit()
            except BaseException as exc:  # noqa: BLE001 - reported to run()
                self._fit_error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            finally:
                channel.put(("stopped", None))

        self._thread = threading.Thread(target=fit, name="ray-tune-workers", daemon=True)
        self._thread.start()
        return channel

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult) -> None:
        if not trials:
            return
        import ray

        channel = _CHANNELS.get(self._key)  # there while the pool is up
        if channel is None:
            channel = self._start()
        _grow_pool(self._key, len(trials))
        by_id = {t.trial_id: t for t in trials}
        ray.get(self._dispatcher.put.remote([t.to_dict() for t in trials]))
        try:
            self._collect(channel, by_id, on_result)
        except BaseException:
            self._abandoned = True  # Ctrl-C or an error in on_result: close() does not wait for trials
            raise

    def _collect(self, channel: "queue.Queue[tuple[str, Any]]", by_id: dict[str, TrialSpec],
                 on_result: OnResult) -> None:
        import ray

        while by_id:
            what, item = channel.get()
            if what == "result":
                t = by_id.get(item.get("trial_id"))
                if t is not None and item.get("attempt", t.attempt) == t.attempt:
                    del by_id[t.trial_id]  # (else a stale report: a rerun after a crash, an earlier attempt)
                    on_result(t, TrialResult.from_dict(item))
            elif what == "worker_lost":
                held = ray.get(self._dispatcher.held_by.remote(item))
                t = by_id.pop(held["trial_id"], None) if held else None
                if t is not None:
                    on_result(t, failed_result(t, "worker crashed and Ray Tune gave up restarting it"))
            else:  # Tune itself stopped: nothing left can run; the next batch starts a new pool
                self._stop_pool(wait=0)
                why = self._fit_error or "all workers stopped"
                for t in by_id.values():
                    on_result(t, failed_result(t, f"Ray Tune stopped: {why}"))
                return

    def _stop_pool(self, wait: float) -> None:
        """Stop the workers (waiting up to ``wait`` s for Tune to finish) and drop the dispatcher."""
        _CHANNELS.pop(self._key, None)
        _close_pool(self._key)
        if self._dispatcher is None:
            return
        import ray

        try:
            ray.get(self._dispatcher.stop.remote(self._workers))
            if self._thread is not None:
                self._thread.join(timeout=wait)
        finally:
            ray.kill(self._dispatcher)  # its name is free for the next pool
            self._thread, self._dispatcher = None, None

    def close(self) -> None:
        try:
            self._stop_pool(wait=5 if self._abandoned else 120)
        finally:  # whatever stopping the pool raised (a second signal, a dead actor), Ray goes down
            if self._started_ray:
                import ray

                ray.shutdown()
                self._started_ray = False
                ray_session.forget(self._run_path)


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


def make_runner(
    kind: str,
    function: str,
    run_dir: str,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    address: str | None = None,
    max_concurrent: int | None = None,
    worker_crash_retries: int = 1,
) -> Runner:
    if kind == "serial":
        return SerialRunner(function)
    return RayRunner(
        function,
        storage_dir=os.path.join(run_dir, "ray"),
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        address=address,
        max_concurrent=max_concurrent,
        worker_crash_retries=worker_crash_retries,
    )
