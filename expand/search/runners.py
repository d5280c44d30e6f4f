"""Runners: take a batch of TrialSpecs, hand back TrialResults as they finish.

``SerialRunner`` runs trials one after another in this process (debugging,
tests). ``RayRunner`` runs them as parallel Ray Tune trials on a local cluster
(``ray.init()``) or an existing one (``address="auto"`` or ``ray://...``),
with per-trial CPUs/GPUs (fractional allowed). Results stream back through a
Tune callback in the driver, so the coordinator records each trial the moment
it ends. A worker that dies is retried by Tune (FailureConfig) and, past
that, reported as a ``failed`` result: nothing here raises for a trial.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Protocol, Sequence

from expand.search.trial import TrialResult, TrialSpec, call_safely, load_trial_function

OnResult = Callable[[TrialSpec, TrialResult], None]
log = logging.getLogger(__name__)


class Runner(Protocol):
    def run(self, trials: Sequence[TrialSpec], on_result: OnResult) -> None: ...

    def close(self) -> None: ...

    @property
    def parallelism(self) -> int: ...


class SerialRunner:
    """Trials in this process, in order. ``function`` is a callable or 'module:function'."""

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


# Tune pickles its run config, callbacks included: the callback holds only a key
# into this registry of live handlers in the driver process.
_HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {}


def _stream_callback(key: str) -> Any:
    """A Tune callback that forwards results to ``_HANDLERS[key]``.

    The class is made on first use (importing Ray Tune costs seconds) and
    published as a module attribute so pickle stores it by reference.
    """
    cls = globals().get("_StreamCallback")
    if cls is None:
        from ray import tune

        class _StreamCallback(tune.Callback):
            def __init__(self, key: str) -> None:
                self.key = key

            def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
                result = (trial.last_result or {}).get("trial_result")
                handler = _HANDLERS.get(self.key)
                if result is not None and handler is not None:
                    handler(result)

        _StreamCallback.__qualname__ = "_StreamCallback"
        _StreamCallback.__module__ = __name__
        globals()["_StreamCallback"] = cls = _StreamCallback
    return cls(key)


def _ray_trainable(config: dict[str, Any]) -> None:
    """Runs inside a Ray worker: rebuild the TrialSpec, call the function, report."""
    from ray import tune

    trial = TrialSpec.from_dict(config["trial"])
    func = load_trial_function(config["function"])
    result = call_safely(func, trial)
    tune.report({"trial_result": result.to_dict(), "done": True})


class RayRunner:
    """Parallel trials through Ray Tune.

    ``storage_dir`` holds Tune's own files (under the run folder); ``name_prefix``
    names each batch's Tune experiment. Ray is started once per runner (or
    reused if the caller already started it) and shut down by :meth:`close`
    only if this runner started it.
    """

    def __init__(
        self,
        function: str,
        storage_dir: str,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        address: str | None = None,
        max_concurrent: int | None = None,
        worker_crash_retries: int = 1,
        name_prefix: str = "batch",
    ) -> None:
        import ray

        load_trial_function(function)  # a bad name fails here, not in every worker
        self.function = function
        self.storage_dir = os.path.abspath(storage_dir)
        self.resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
        self.max_concurrent = max_concurrent
        self.worker_crash_retries = worker_crash_retries
        self.name_prefix = name_prefix
        self._batches = 0
        self._started_ray = False
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        if not ray.is_initialized():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                ignore_reinit_error=True,
            )
            self._started_ray = True

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

    def run(self, trials: Sequence[TrialSpec], on_result: OnResult) -> None:
        if not trials:
            return
        from ray import tune

        by_id = {t.trial_id: t for t in trials}
        reported: set[str] = set()

        def handle(result: dict[str, Any]) -> None:
            res = TrialResult.from_dict(result)
            if res.trial_id in by_id and res.trial_id not in reported:
                reported.add(res.trial_id)
                on_result(by_id[res.trial_id], res)

        self._batches += 1
        key = f"{os.getpid()}-{id(self)}-{self._batches}"
        _HANDLERS[key] = handle
        trainable = tune.with_resources(_ray_trainable, self.resources)
        param_space = {
            "function": self.function,
            "trial": tune.grid_search([t.to_dict() for t in trials]),
        }
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                num_samples=1,
                max_concurrent_trials=self.max_concurrent or len(trials),
                reuse_actors=False,
            ),
            run_config=tune.RunConfig(
                name=f"{self.name_prefix}-{os.getpid()}-{self._batches:03d}",
                storage_path=self.storage_dir,
                failure_config=tune.FailureConfig(max_failures=self.worker_crash_retries),
                verbose=0,
                callbacks=[_stream_callback(key)],
            ),
        )
        try:
            grid = tuner.fit()
        finally:
            _HANDLERS.pop(key, None)
        # Trials whose worker died past the retries never reported: failed results.
        for i in range(len(grid)):
            res = grid[i]
            trial_cfg = (res.config or {}).get("trial") or {}
            trial_id = trial_cfg.get("trial_id")
            if trial_id in by_id and trial_id not in reported:
                reported.add(trial_id)
                error = str(res.error).strip().splitlines()[-1] if res.error else "no result"
                on_result(
                    by_id[trial_id],
                    TrialResult(trial_id, "failed", error=f"worker crashed: {error}",
                                seed=by_id[trial_id].seed, attempt=by_id[trial_id].attempt),
                )
        for trial_id in by_id.keys() - reported:
            t = by_id[trial_id]
            on_result(t, TrialResult(trial_id, "failed", error="Ray returned no result",
                                     seed=t.seed, attempt=t.attempt))

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


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
