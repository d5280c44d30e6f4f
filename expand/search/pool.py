"""WorkerPool: long-lived Ray Tune workers that run search trials handed to them.

Why a pool: the expansion is a chain of small batches, each waiting for the
last. A Tune run per batch with a worker process per trial cost ~5 s of Tune
start-up per batch and ~2 s of CPU per fresh worker (importing Ray, torch and
the package): 66 % overhead on 10 s trials, measured. A pool is one Tune
experiment (run in a background thread) whose trials are ``size`` long-lived
workers (``_ray_worker``, in ``worker.py``); each takes search trials from a named dispatcher
actor (``dispatcher.py``) and reports each result through ``tune.report``; a Tune callback
forwards those reports to the pool's event queue in the driver; a Tune
searcher paces how many workers start (one first, the rest once it is up or
a batch needs them: six loading at once on 2 cores took 7 s before the first
could run anything, one alone 2 s).

On a cluster: the dispatcher is pinned to the driver's node, so it outlives
any worker node. A worker on another node runs its trial in a node-local
scratch folder and hands the files the trial wrote (weights, events) to the
dispatcher with its result; the pool writes them into the trial's folder in
the run folder on the driver's disk, so the run folder never depends on a
shared filesystem (``scratch.py``). A worker that dies (its process, or its
whole node) has the trial it held put back in the queue for any live worker, up to
``crash_retries`` times; Tune restarts the worker itself where resources
allow.

A trial past its time limit (``time_limit_s``) may be hung where no code of
ours runs (a deadlocked loader, a wedged GPU call): the worker cannot be
trusted to stop itself. The driver asks the dispatcher, every few seconds,
for trials held longer than the limit; the dispatcher kills the worker
process that holds each (``ray.kill`` of its Tune actor) and hands the trial
back to the driver, which records it ``timeout``. Tune restarts the worker
like any other that died.

Tune pickles its callback, searcher and stopper, so they find their pool
through module-level tables keyed by the pool's key; classes that subclass
Ray's are made on first use (importing Ray costs seconds) and published as
module attributes so pickle finds them by reference. Nothing outside this
module touches those tables: the public surface is the WorkerPool class.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from typing import Any, Optional, Sequence

from expand.errors import NodeLost, disk_error_in
from expand.search import liveness
from expand.search.dispatcher import dispatcher_class, publish
from expand.search.tune_output import quiet_our_kills, silent_progress_callback
from expand.search.trial import TrialSpec, timeout_result
from expand.search.worker import PROGRESS_KEY, RESULT_KEY, _ray_worker

# Restarts Tune allows each worker beyond its crash budget when trials have a time limit: each
# trial stopped at the limit costs its worker one (a worker stopped more often than this is not
# restarted; the others carry on, and a batch that finds none left starts a new pool).
_TIMEOUT_RESTARTS = 10
# How often the driver asks whether its Ray node lives (expand/search/liveness.py): one ~1 ms call,
# so often enough that trials still finishing on a dying node cannot end a step before it is seen.
_HEALTH_S = 1.0


def _publish(name: str, cls: Any) -> Any:
    """Make a class built inside a function picklable by reference, as this module's ``name``."""
    return publish(cls, name, globals())


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
                elif channel is not None and PROGRESS_KEY in result:
                    channel.put(("progress", json.loads(result[PROGRESS_KEY])))

            def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
                # A worker is up: start the rest of the pool (they load while it runs).
                _grow_pool(self.key)

            def _failed(self, trial) -> None:  # noqa: ANN001
                import ray

                # its held trial goes back to the queue for any live worker (a lost node's
                # worker may never be restarted: no resources left for it)
                try:
                    ray.get_actor(_dispatcher_name(self.key)).worker_failed.remote(trial.config.get("worker"))
                except ValueError:
                    pass  # the pool is gone

            def on_trial_recover(self, iteration, trials, trial, **info):  # noqa: ANN001
                self._failed(trial)

            def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                self._failed(trial)  # gone for good (past FailureConfig): the others carry on

        cls = _publish("_ChannelCallback", _ChannelCallback)
    return cls(key)


def _closing_stopper(key: str) -> Any:
    """A Tune stopper that ends the experiment once the pool closes.

    Why: a worker Tune restarts after its node died waits for resources that
    may never come back; without this, ``fit`` would wait for it forever.
    """
    cls = globals().get("_ClosingStopper")
    if cls is None:
        from ray.tune import Stopper

        class _ClosingStopper(Stopper):
            def __init__(self, key: str) -> None:
                self.key = key

            def __call__(self, trial_id, result) -> bool:  # noqa: ANN001
                return False

            def stop_all(self) -> bool:
                return _POOL_SIZE.get(self.key, (-1, 0))[0] < 0

        cls = _publish("_ClosingStopper", _ClosingStopper)
    return cls(key)


def _dispatcher_name(key: str) -> str:
    return f"x3d-expand-dispatcher-{key}"


# Results travel from Tune's thread to the caller's through these queues.
_CHANNELS: dict[str, "queue.Queue[tuple[str, Any]]"] = {}
# Per pool key: (workers Tune may start now, the pool's full size); -1 = stopping.
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
    """Start no more workers: the searcher reports FINISHED and the stopper ends the experiment."""
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

    Events come back in the order trials finish, from :meth:`next_event`:
    ``("result", dict)`` a trial's TrialResult as a dict (its files already
    in its ``out_dir``); ``("progress", dict)`` a running trial's
    :func:`expand.search.live.report`; ``("stopped", why)`` Tune itself stopped, nothing
    more will run. A worker that dies is restarted by Tune where resources
    allow, and the trial it held is rerun by any worker, up to
    ``crash_retries`` times, then reported as a failed result. A trial still
    held past its limit (its own ``TrialSpec.time_limit_s``, else
    ``time_limit_s``) after a worker took it comes back as a ``timeout``
    result, its worker killed (see the module doc).
    """

    def __init__(self, function: str, storage_dir: str, resources: dict[str, float], size: int,
                 crash_retries: int = 1, name: str = "workers", time_limit_s: Optional[float] = None,
                 trial_time_limits: bool = False) -> None:
        self.function, self.storage_dir, self.resources = function, storage_dir, resources
        self.size, self.crash_retries, self.name = size, crash_retries, name
        # a trial's own TrialSpec.time_limit_s, else this. trial_time_limits: trials will carry their
        # own (the executor gives each its limit, fixed or auto), so Tune is given the restarts that
        # killing workers costs
        self.time_limit_s, self.trial_time_limits = time_limit_s, trial_time_limits
        self._shortest_limit = time_limit_s or 0.0  # of the trials submitted: how often to look
        self._overdue: list[dict] = []  # timeout results reaped but not yet handed out
        self._next_reap = 0.0  # time.monotonic() of the next look for overdue trials
        self.key = f"{os.getpid()}-{id(self)}"
        self.error = ""  # why Tune stopped, when it raised
        self.disk_error: Optional[OSError] = None  # the full or broken disk that stopped Tune, if one did
        self.node_lost = ""  # why the driver's Ray node is gone (set once: nothing more will run)
        self._driver_node = ""
        self._next_health = 0.0  # time.monotonic() of the next look at the driver's node
        self._thread: Optional[threading.Thread] = None
        self._dispatcher: Any = None
        self._events: "Optional[queue.Queue[tuple[str, Any]]]" = None
        self._out_dirs: dict[str, str] = {}

    @property
    def running(self) -> bool:
        return self._events is not None

    @property
    def _limits(self) -> bool:
        return bool(self.time_limit_s) or self.trial_time_limits

    def start(self) -> None:
        """Start Tune in a background thread; one worker may start now, the rest when needed."""
        import ray
        from ray import tune
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        events: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self._events = _CHANNELS[self.key] = events
        name = _dispatcher_name(self.key)
        driver_node = self._driver_node = ray.get_runtime_context().get_node_id()
        self._next_health = time.monotonic() + _HEALTH_S
        # on the driver's node: it holds queued trials and files in flight, and must outlive any worker node
        self._dispatcher = dispatcher_class().options(
            name=name, scheduling_strategy=NodeAffinitySchedulingStrategy(driver_node, soft=False),
        ).remote(self.crash_retries)
        _open_pool(self.key, self.size)
        quiet_our_kills()
        tuner = tune.Tuner(
            tune.with_resources(_ray_worker, self.resources),
            param_space={"dispatcher": name, "function": self.function, "driver_node": driver_node},
            tune_config=tune.TuneConfig(search_alg=_pool_searcher(self.key, self.size),
                                        num_samples=self.size, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"{self.name}-{os.getpid()}",
                storage_path=self.storage_dir,
                # A restart per crash each trial may cause, and a few to spare.
                failure_config=tune.FailureConfig(max_failures=3 + 2 * self.crash_retries
                                                  + (_TIMEOUT_RESTARTS if self._limits else 0)),
                verbose=0,
                stop=_closing_stopper(self.key),
                callbacks=[_channel_callback(self.key), silent_progress_callback()],
            ),
        )

        def fit() -> None:
            try:
                tuner.fit()
            except BaseException as exc:  # noqa: BLE001 - reported as the "stopped" event
                self.error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
                self.disk_error = disk_error_in(exc)
            finally:
                events.put(("stopped", None))

        self._thread = threading.Thread(target=fit, name="ray-tune-workers", daemon=True)
        self._thread.start()

    def submit(self, trials: Sequence[TrialSpec]) -> None:
        """Queue trials for the workers (starting as many workers as there are trials)."""
        _grow_pool(self.key, len(trials))
        self._out_dirs.update({t.trial_id: t.out_dir for t in trials})
        for t in trials:
            if t.time_limit_s:
                self._shortest_limit = min(self._shortest_limit or t.time_limit_s, t.time_limit_s)
        self._ask(self._dispatcher.put.remote([t.to_dict() for t in trials]))

    def drain(self) -> list[str]:
        """Take back the trials no worker has started (``x3d-expand stop``); their ids."""
        return list(self._ask(self._dispatcher.drain.remote()))

    def next_event(self) -> tuple[str, Any]:
        """Block until a worker reports (see the class docstring for the events)."""
        assert self._events is not None, "the pool is not running"
        what, item = self._next()
        if what == "stopped":
            return "stopped", self.node_lost or self.error or "all workers stopped"
        if what == "progress":
            return what, item
        if (item.get("extra") or {}).get("files"):  # written off this node: into the run folder now
            files = self._ask(self._dispatcher.collect.remote(item["trial_id"]))
            self._materialize(item["trial_id"], files)
        return what, item

    def _next(self) -> tuple[str, Any]:
        """The next event. While waiting: the driver's node is looked at, and with a time limit,
        overdue trials are reaped (a steady stream of progress events puts off neither)."""
        assert self._events is not None
        while not self._overdue:
            due = [self._next_health, *([self._next_reap] if self._shortest_limit else [])]
            wait = min(due) - time.monotonic()
            if wait > 0:
                try:
                    return self._events.get(timeout=wait)
                except queue.Empty:
                    pass
            now = time.monotonic()
            if now >= self._next_health:
                self._next_health = now + _HEALTH_S
                lost = liveness.node_lost(self._driver_node)
                if lost:
                    self.node_lost = lost
                    return "stopped", lost
            if self._shortest_limit and now >= self._next_reap:
                self._next_reap = now + min(5.0, max(0.2, self._shortest_limit / 10))
                for trial, seconds, limit in self._ask(self._dispatcher.reap.remote(self.time_limit_s or 0.0)):
                    result = timeout_result(TrialSpec.from_dict(trial), seconds, limit, "its Ray worker was killed")
                    self._overdue.append(result.to_dict())
        return "result", self._overdue.pop(0)

    def _ask(self, call: Any) -> Any:
        """The dispatcher's answer; its death is the loss of the driver's node (:class:`NodeLost`):
        it lives there, and nothing else ends it while the pool runs."""
        import ray

        try:
            return ray.get(call)
        except ray.exceptions.RayActorError as exc:
            self.node_lost = liveness.wait_for_node_loss(self._driver_node) or (
                f"the Ray actor holding the trial queue died ({str(exc).strip().splitlines()[0][:120]})")
            raise NodeLost(self.node_lost) from None

    def _materialize(self, trial_id: str, files: dict[str, bytes]) -> None:
        from expand.fileio import atomic_write

        out_dir = self._out_dirs.get(trial_id)
        if not out_dir:
            return
        for name, data in files.items():
            path = os.path.normpath(os.path.join(out_dir, name))
            if os.path.commonpath([path, os.path.normpath(out_dir)]) != os.path.normpath(out_dir):
                continue  # a name that climbs out of the trial's folder is not ours to write
            atomic_write(path, data)

    def stop(self, wait: float) -> None:
        """Stop the workers (waiting up to ``wait`` s for Tune to finish) and drop the dispatcher."""
        _CHANNELS.pop(self.key, None)
        _close_pool(self.key)
        self._events = None
        if self._dispatcher is None:
            return
        import ray

        try:
            if not self.node_lost:  # else the dispatcher died with its node, and Tune waits for nothing
                ray.get(self._dispatcher.stop.remote(self.size))
                if self._thread is not None:
                    self._thread.join(timeout=wait)
            elif self._thread is not None:  # the closing stopper ends Tune's loop (~0.1 s, measured): let it,
                self._thread.join(timeout=10)  # as Tune touching Ray after ray.shutdown() ends the process
        finally:
            try:
                ray.kill(self._dispatcher)  # its name is free for the next pool
            except Exception:  # noqa: BLE001 - only where its node is gone
                if not self.node_lost:
                    raise
            self._thread, self._dispatcher = None, None


__all__ = ["WorkerPool", "RESULT_KEY"]
