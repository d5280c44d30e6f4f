"""WorkerPool: long-lived Ray Tune workers that run search trials handed to them.

Why a pool: the expansion is a chain of small batches, each waiting for the
last. A Tune run per batch with a worker process per trial cost ~5 s of Tune
start-up per batch and ~2 s of CPU per fresh worker (importing Ray, torch and
the package): 66 % overhead on 10 s trials, measured. A pool is one Tune
experiment (run in a background thread) whose trials are ``size`` long-lived
workers (``_ray_worker``); each takes search trials from a named dispatcher
actor and reports each result through ``tune.report``; a Tune callback
forwards those reports to the pool's event queue in the driver; a Tune
searcher paces how many workers start (one first, the rest once it is up or
a batch needs them: six loading at once on 2 cores took 7 s before the first
could run anything, one alone 2 s).

Tune pickles its callback and searcher, so they find their pool through
module-level tables keyed by the pool's key; classes that subclass Ray's are
made on first use (importing Ray costs seconds) and published as module
attributes so pickle finds them by reference. Nothing outside this module
touches those tables: the public surface is the WorkerPool class.
"""

from __future__ import annotations

import json
import queue
import threading
import os
from typing import Any, Optional, Sequence

from expand.search.trial import TrialSpec, call_safely, failed_result, load_trial_function

RESULT_KEY = "trial_result_json"  # one string: Tune flattens nested result dicts
_STOP = "__stop__"


def _publish(name: str, cls: Any) -> Any:
    """Make a class built inside a function picklable by reference, as this module's ``name``."""
    cls.__qualname__ = name
    cls.__module__ = __name__
    globals()[name] = cls
    return cls


def _dispatcher_class() -> Any:
    """The dispatcher actor class, made on first use (importing Ray costs seconds)."""
    cls = globals().get("_Dispatcher")
    if cls is not None:
        return cls
    import asyncio

    import ray

    @ray.remote(num_cpus=0)
    class _Dispatcher:
        """Trials waiting for a worker, and which trial each worker holds.

        A worker that asks for work while still holding a trial died running
        it (Tune restarted it): that trial is handed back up to ``retries``
        times, then marked crashed for the worker to report as failed.
        """

        def __init__(self, retries: int) -> None:
            self.queue: asyncio.Queue = asyncio.Queue()
            self.holding: dict[int, dict] = {}
            self.crashes: dict[str, int] = {}
            self.retries = retries

        async def put(self, trials: list[dict]) -> None:
            for t in trials:
                self.queue.put_nowait(t)

        async def stop(self, workers: int) -> None:
            for _ in range(workers):
                self.queue.put_nowait(_STOP)

        async def take(self, worker: int) -> tuple[str, Any]:
            held = self.holding.get(worker)
            if held is not None:
                n = self.crashes[held["trial_id"]] = self.crashes.get(held["trial_id"], 0) + 1
                if n > self.retries:
                    del self.holding[worker]
                    return "crashed", (held, n)
                return "run", held
            item = await self.queue.get()
            if item == _STOP:
                return "stop", None
            self.holding[worker] = item
            return "run", item

        async def done(self, worker: int) -> None:
            self.holding.pop(worker, None)

        async def held_by(self, worker: int) -> Any:
            return self.holding.pop(worker, None)

    return _publish("_Dispatcher", _Dispatcher)


def _ray_worker(config: dict[str, Any]) -> None:
    """One Tune trial = one worker for the whole search: take a trial, run it, report, repeat.

    The worker process imports torch and the package once. It reports each
    result before telling the dispatcher it is done, so a crash in between
    reruns a finished trial (the driver drops the duplicate) rather than
    losing its result.
    """
    import ray
    from ray import tune

    dispatcher = ray.get_actor(config["dispatcher"])
    worker = config["worker"]
    func = load_trial_function(config["function"])
    while True:
        what, item = ray.get(dispatcher.take.remote(worker))
        if what == "stop":
            return
        if what == "crashed":
            spec, n = item
            result = failed_result(TrialSpec.from_dict(spec), f"worker crashed running it ({n} time(s))")
        else:
            trial = TrialSpec.from_dict(item)
            result = call_safely(func, trial)
            _free_accelerator_memory()
        tune.report({RESULT_KEY: json.dumps(result.to_dict())})
        ray.get(dispatcher.done.remote(worker))


def _free_accelerator_memory() -> None:
    """The next trial on this worker starts with the GPU memory the last one freed."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _channel_callback(key: str) -> Any:
    """A Tune callback that forwards each reported result to ``_CHANNELS[key]`` in the driver.

    Made on first use and published as a module attribute so pickle stores it
    by reference; it holds only the key (Tune pickles its run config).
    """
    cls = globals().get("_ChannelCallback")
    if cls is None:
        from ray import tune

        class _ChannelCallback(tune.Callback):
            def __init__(self, key: str) -> None:
                self.key = key

            def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
                channel = _CHANNELS.get(self.key)
                if channel is not None and RESULT_KEY in result:
                    channel.put(("result", json.loads(result[RESULT_KEY])))

            def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
                # A worker is up: start the rest of the pool (they load while it runs).
                _grow_pool(self.key)

            def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                channel = _CHANNELS.get(self.key)
                if channel is not None:  # the worker is gone for good (past FailureConfig)
                    channel.put(("worker_lost", trial.config.get("worker")))

        cls = _publish("_ChannelCallback", _ChannelCallback)
    return cls(key)


# Results travel from Tune's thread to the caller's through these queues.
_CHANNELS: dict[str, "queue.Queue[tuple[str, Any]]"] = {}
# Per runner key: (workers Tune may start now, the pool's full size); -1 = stopping.
_POOL_SIZE: dict[str, tuple[int, int]] = {}
_POOL_LOCK = threading.Lock()


def _open_pool(key: str, size: int) -> None:
    """A new pool of ``size`` workers, of which one may start now."""
    with _POOL_LOCK:
        _POOL_SIZE[key] = (1, size)


def _grow_pool(key: str, workers: int | None = None) -> None:
    """Let ``workers`` (None: all) start, unless the pool is stopping."""
    with _POOL_LOCK:
        allowed, size = _POOL_SIZE.get(key, (-1, 0))
        wanted = size if workers is None else min(workers, size)
        if 0 <= allowed < wanted:
            _POOL_SIZE[key] = (wanted, size)


def _close_pool(key: str) -> None:
    """Start no more workers: the searcher reports FINISHED."""
    with _POOL_LOCK:
        if key in _POOL_SIZE:
            _POOL_SIZE[key] = (-1, 0)


def _pool_searcher(key: str, size: int) -> Any:
    """A Tune searcher that suggests the pool's workers as ``_POOL_SIZE`` allows.

    Why: six workers starting at once on two cores took 7 s before the first
    could run anything; one alone, 2 s. The first batch of a search is the
    basis, a single trial, so the pool starts one worker and lets the others
    start once it is up. Made on first use, published for pickle.
    """
    cls = globals().get("_PoolSearcher")
    if cls is None:
        from ray.tune.search import Searcher

        class _PoolSearcher(Searcher):
            def __init__(self, key: str, size: int) -> None:
                super().__init__()
                self.key, self.size, self.made = key, size, 0

            def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001
                return True

            def on_trial_complete(self, trial_id, result=None, error=False) -> None:  # noqa: ANN001
                pass  # a worker's end says nothing about the next one

            def save(self, checkpoint_path: str) -> None:
                pass  # a pool is not resumed: a new search starts a new one

            def restore(self, checkpoint_path: str) -> None:
                pass

            def suggest(self, trial_id: str) -> Any:
                allowed = _POOL_SIZE.get(self.key, (-1, 0))[0]
                if allowed < 0 or self.made >= self.size:
                    return Searcher.FINISHED
                if self.made >= allowed:
                    return None  # asked again later
                self.made += 1
                return {"worker": self.made - 1}

        cls = _publish("_PoolSearcher", _PoolSearcher)
    return cls(key, size)


class WorkerPool:
    """``size`` Tune workers with ``resources`` each, running ``function`` on trials you submit.

    Events come back in submission-independent order from :meth:`next_event`:
    ``("result", dict)`` a trial's TrialResult as a dict; ``("lost", dict)`` a
    worker gone for good (past Tune's FailureConfig) with the trial it held
    (or None); ``("stopped", why)`` Tune itself stopped, nothing more will run.
    A worker that dies is restarted by Tune and the trial it held rerun, up to
    ``crash_retries`` times, then reported as a failed result.
    """

    def __init__(self, function: str, storage_dir: str, resources: dict[str, float], size: int,
                 crash_retries: int = 1, name: str = "workers") -> None:
        self.function, self.storage_dir, self.resources = function, storage_dir, resources
        self.size, self.crash_retries, self.name = size, crash_retries, name
        self.key = f"{os.getpid()}-{id(self)}"
        self.error = ""  # why Tune stopped, when it raised
        self._thread: Optional[threading.Thread] = None
        self._dispatcher: Any = None
        self._events: "Optional[queue.Queue[tuple[str, Any]]]" = None

    @property
    def running(self) -> bool:
        return self._events is not None

    def start(self) -> None:
        """Start Tune in a background thread; one worker may start now, the rest when needed."""
        from ray import tune

        events: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self._events = _CHANNELS[self.key] = events
        name = f"x3d-expand-dispatcher-{self.key}"
        self._dispatcher = _dispatcher_class().options(name=name).remote(self.crash_retries)
        _open_pool(self.key, self.size)
        tuner = tune.Tuner(
            tune.with_resources(_ray_worker, self.resources),
            param_space={"dispatcher": name, "function": self.function},
            tune_config=tune.TuneConfig(search_alg=_pool_searcher(self.key, self.size),
                                        num_samples=self.size, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"{self.name}-{os.getpid()}",
                storage_path=self.storage_dir,
                # A restart per crash each trial may cause, and a few to spare.
                failure_config=tune.FailureConfig(max_failures=3 + 2 * self.crash_retries),
                verbose=0,
                callbacks=[_channel_callback(self.key)],
            ),
        )

        def fit() -> None:
            try:
                tuner.fit()
            except BaseException as exc:  # noqa: BLE001 - reported as the "stopped" event
                self.error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            finally:
                events.put(("stopped", None))

        self._thread = threading.Thread(target=fit, name="ray-tune-workers", daemon=True)
        self._thread.start()

    def submit(self, trials: Sequence[TrialSpec]) -> None:
        """Queue trials for the workers (starting as many workers as there are trials)."""
        import ray

        _grow_pool(self.key, len(trials))
        ray.get(self._dispatcher.put.remote([t.to_dict() for t in trials]))

    def next_event(self) -> tuple[str, Any]:
        """Block until a worker reports (see the class docstring for the events)."""
        import ray

        assert self._events is not None, "the pool is not running"
        what, item = self._events.get()
        if what == "worker_lost":
            return "lost", ray.get(self._dispatcher.held_by.remote(item))
        if what == "stopped":
            return "stopped", self.error or "all workers stopped"
        return what, item

    def stop(self, wait: float) -> None:
        """Stop the workers (waiting up to ``wait`` s for Tune to finish) and drop the dispatcher."""
        _CHANNELS.pop(self.key, None)
        _close_pool(self.key)
        self._events = None
        if self._dispatcher is None:
            return
        import ray

        try:
            ray.get(self._dispatcher.stop.remote(self.size))
            if self._thread is not None:
                self._thread.join(timeout=wait)
        finally:
            ray.kill(self._dispatcher)  # its name is free for the next pool
            self._thread, self._dispatcher = None, None


__all__ = ["WorkerPool", "RESULT_KEY"]
