"""The Ray and Tune side of RayRunner's worker pool.

One Tune experiment per runner: its trials are long-lived workers
(``_ray_worker``) that take search trials from a named dispatcher actor and
report each result through ``tune.report``; a Tune callback forwards those
reports to the runner's queue in ``_CHANNELS``; a Tune searcher paces how
many workers start (``_POOL_SIZE``). Classes that subclass Ray's are made on
first use (importing Ray costs seconds) and published as module attributes so
pickle finds them by reference.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

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
