"""The dispatcher of a WorkerPool: one Ray actor that holds the trials waiting for a worker,
knows which worker holds which (and since when), keeps files on their way back, and
mirrors a remote trial's snapshot into its folder on the driver's disk.

Why an actor: workers come and go (Tune restarts one that dies, a node may
vanish), so the queue must live apart from any of them, on the driver's node
(the pool pins it there). It is asynchronous: ``take`` waits on the queue
while ``put``, ``reap`` and the rest keep being served.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

STOP = "__stop__"


def publish(cls: Any, name: str, namespace: dict[str, Any]) -> Any:
    """Make a class built inside a function picklable by reference, as ``name`` in the module whose
    ``globals()`` are ``namespace`` (classes built on first use, so importing Ray waits for it)."""
    cls.__qualname__ = name
    cls.__module__ = namespace["__name__"]
    namespace[name] = cls
    return cls


def dispatcher_class() -> Any:
    """The dispatcher actor class, made on first use (importing Ray costs seconds)."""
    cls = globals().get("_Dispatcher")
    if cls is not None:
        return cls
    import asyncio

    import ray

    @ray.remote(num_cpus=0)
    class _Dispatcher:
        """Trials waiting for a worker, which trial each worker holds, and files on their way back.

        Each start of a worker (a Tune trial index) is an *incarnation*,
        numbered in the order they first ask for work. A held trial is put
        back in the queue when its incarnation is known dead: Tune reported
        the worker failed (``worker_failed``, from the driver's callback), or
        a later incarnation of the same worker asks for work. Either may come
        first; the numbering makes the second a no-op, so a trial is requeued
        once per death. Past ``retries`` requeues it is handed out as crashed,
        for the next worker to report as failed. A trial held past the time
        limit is taken out of ``holding`` by :meth:`reap` before its worker is
        killed, so that death requeues nothing.
        """

        def __init__(self, retries: int) -> None:
            self.queue: asyncio.Queue = asyncio.Queue()
            # worker -> (incarnation, trial, monotonic time it was handed out, the worker's actor)
            self.holding: dict[int, tuple[int, dict, float, Any]] = {}
            self.incarnations: dict[int, dict[str, int]] = {}
            self.failures: dict[int, int] = {}
            self.crashes: dict[str, int] = {}
            self.files: dict[str, dict[str, bytes]] = {}
            self.retries = retries

        def _requeue_dead(self, worker: int, alive_from: int) -> None:
            held = self.holding.get(worker)
            if held is None or held[0] >= alive_from:
                return
            del self.holding[worker]
            trial = held[1]
            n = self.crashes[trial["trial_id"]] = self.crashes.get(trial["trial_id"], 0) + 1
            self.queue.put_nowait({"__crashed__": n, "trial": trial} if n > self.retries else trial)

        async def put(self, trials: list[dict]) -> None:
            for t in trials:
                self.queue.put_nowait(t)

        async def drain(self) -> list[str]:
            """Empty the queue of trials (not of STOPs) and say which they were."""
            kept, ids = [], []
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if item == STOP:
                    kept.append(item)
                else:
                    ids.append((item["trial"] if "__crashed__" in item else item)["trial_id"])
            for item in kept:
                self.queue.put_nowait(item)
            return ids

        async def stop(self, workers: int) -> None:
            for _ in range(workers):
                self.queue.put_nowait(STOP)

        async def take(self, worker: int, token: str, actor: Any = None) -> tuple[str, Any]:
            seen = self.incarnations.setdefault(worker, {})
            me = seen.setdefault(token, len(seen))
            self._requeue_dead(worker, me)
            item = await self.queue.get()
            if item == STOP:
                return "stop", None
            if "__crashed__" in item:
                return "crashed", (item["trial"], item["__crashed__"])
            self.holding[worker] = (me, item, time.monotonic(), actor)
            return "run", item

        async def worker_failed(self, worker: int) -> None:
            self.failures[worker] = self.failures.get(worker, 0) + 1
            self._requeue_dead(worker, self.failures[worker])

        async def reap(self, limit_s: float) -> list[tuple[dict, float, float]]:
            """Trials held longer than their limit, with their seconds and that limit; each one's
            worker is killed.

            The limit is the trial's own ``time_limit_s`` where it has one, else ``limit_s`` (0: none).
            """
            now, overdue = time.monotonic(), []
            for worker, (_, trial, since, actor) in list(self.holding.items()):
                limit = trial.get("time_limit_s") or limit_s
                if limit and now - since > limit:
                    del self.holding[worker]
                    overdue.append((trial, now - since, limit))
                    if actor is not None:
                        ray.kill(actor)  # Tune sees its worker die and restarts it
            return overdue

        async def done(self, worker: int) -> None:
            self.holding.pop(worker, None)

        async def deliver(self, trial_id: str, files: dict[str, bytes]) -> None:
            self.files[trial_id] = files

        async def collect(self, trial_id: str) -> dict[str, bytes]:
            return self.files.pop(trial_id, {})

        def _held_file(self, worker: int, name: str) -> str:
            """``name`` in the run-folder trial folder of the trial ``worker`` holds ('' if none).

            The dispatcher runs on the driver's node, so that folder is on its disk.
            """
            held = self.holding.get(worker)
            out_dir = held[1].get("out_dir") if held else ""
            if not out_dir or name != os.path.basename(name) or name.startswith("."):
                return ""
            return os.path.join(out_dir, name)

        async def mirror(self, worker: int, name: str, data: Optional[bytes]) -> None:
            """Write (or, with None, remove) a file of the held trial's folder now, not with its result.

            Why: a snapshot in a remote node's scratch folder dies with the worker;
            its copy here is what the trial's next attempt, on any node, resumes from.
            A worker whose trial was taken from it (its time limit) mirrors nothing.
            """
            from expand.fileio import atomic_write

            path = self._held_file(worker, name)
            if not path:
                return
            if data is None:
                if os.path.exists(path):
                    os.remove(path)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write(path, data)

        async def mirrored(self, worker: int, name: str) -> Optional[bytes]:
            """The held trial's mirrored file, for its attempt on a remote node to start from."""
            path = self._held_file(worker, name)
            if not path or not os.path.isfile(path):
                return None
            with open(path, "rb") as fh:
                return fh.read()

    return publish(_Dispatcher, "_Dispatcher", globals())


__all__ = ["dispatcher_class", "publish", "STOP"]
