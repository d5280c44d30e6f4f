"""Counting the next step's candidates while this step's trials run.

Why: before a step can start, the coordinator counts the FLOPs of its
candidates, and each axis brackets its level with several fvcore counts
(38 counts, ~6 s, for one step of the tiny CPU space on 2 cores; a count near
X3D-XL alone takes ~4.5 s). Every trial slot is idle meanwhile. The next
parent is one of the candidates now training, so a background thread expands
each of them along every axis into the shared counter; when the winner is
known, its candidates are counted already. The provisional winner (the
selection rule over the results so far) goes first.

The thread only fills the counter's cache: the search decides exactly the
same with or without it. It runs at the lowest CPU priority with one torch
thread, so where the trials share this machine's cores it takes only what
they leave idle; the coordinator uses it only when trials run outside this
process.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Sequence

from expand.search.axes import expand
from expand.spec import ArchSpec

log = logging.getLogger(__name__)


class _Superseded(Exception):
    """The work unit being counted is no longer the first wanted."""


class _GuardedCounter:
    """The shared counter, but each count first checks the unit is still wanted.

    Abandoning a unit loses nothing: the counts it made are in the cache.
    """

    def __init__(self, counter: Any, wanted: Callable[[], bool]) -> None:
        self._counter, self._wanted = counter, wanted

    def count(self, spec: ArchSpec) -> Any:
        if not self._wanted():
            raise _Superseded
        return self._counter.count(spec)

    def gflops(self, spec: ArchSpec) -> float:  # all that expand() asks of a counter
        return self.count(spec).gflops


class Lookahead:
    """A background thread expanding likely next parents along every axis."""

    def __init__(self, space: Any, counter: Any) -> None:
        self._space, self._counter = space, counter
        self._cond = threading.Condition()
        self._queue: list[tuple[ArchSpec, str]] = []  # (parent, axis), first = next
        self._generation = 0  # bumped whenever the first unit changes
        self._busy = False
        self._closed = False
        self.expanded = 0  # (parent, axis) units finished, for tests and logs
        self._thread = threading.Thread(target=self._loop, name="x3d-expand-lookahead", daemon=True)
        self._thread.start()

    def submit(self, parents: Sequence[ArchSpec]) -> None:
        """Expand these parents next, in this order, instead of whatever waits."""
        units = [(p, axis) for p in dict.fromkeys(parents) for axis in self._space.axes]
        with self._cond:
            self._queue = units
            self._generation += 1
            self._cond.notify_all()

    def prefer(self, parent: ArchSpec) -> None:
        """Move ``parent``'s units to the front: it is the provisional winner."""
        with self._cond:
            mine = [u for u in self._queue if u[0] == parent]
            if not mine or self._queue[: len(mine)] == mine:
                return
            self._queue = mine + [u for u in self._queue if u[0] != parent]
            self._generation += 1
            self._cond.notify_all()

    def cancel(self) -> None:
        """Drop every waiting unit; a count in progress still finishes (and is cached)."""
        with self._cond:
            self._queue = []
            self._generation += 1
            self._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is waiting or running; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed, self._queue = True, []
            self._generation += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ thread
    def _loop(self) -> None:
        _lower_this_threads_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                unit, generation = self._queue[0], self._generation
                self._busy = True
            finished = True
            try:
                guarded = _GuardedCounter(self._counter, lambda: self._generation == generation)
                expand(unit[0], unit[1], self._space, guarded)
            except _Superseded:
                finished = False
            except Exception as exc:  # AxisExhausted, or an error the coordinator will meet itself
                log.debug("lookahead %s/%s: %s", unit[0].name, unit[1], exc)
            with self._cond:
                self._busy = False
                if finished:
                    self.expanded += 1
                    if unit in self._queue:
                        self._queue.remove(unit)
                self._cond.notify_all()


def _lower_this_threads_priority() -> None:
    """Nice 19 for this thread only (Linux), and one torch thread for its counts."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass
    import torch

    torch.set_num_threads(1)  # per calling thread with torch's OpenMP backend
