"""Load the next batches in a background thread while the current one trains.

With ``workers: 0`` (the CPU default: a search already runs one trial per
core, and a worker process per trial would cost ~0.4 GB and oversubscribe the
cores) a DataLoader loads each batch only when the step asks for it, so the
step waits for it. Clip sampling is mostly torch and numpy work that releases
the GIL, so a thread overlaps it with the training step: same batches, same
order, same values, less wait.

Off by default (``trial.prefetch: 0``): on the 2-core CPU machine the basis
trial's data wait fell from 9 % to 0.5 %, but its training step slowed by as
much (the thread's Python work holds the GIL the small model's forward needs),
so the wall time did not change (benchmarks/trial_overhead.py, both orders).
It is for steps that wait on a device with the GIL released: CUDA with
``workers: 0``.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator

_DONE = object()


class Prefetcher:
    """Iterates ``source`` in a daemon thread, ``depth`` items ahead.

    An exception in the thread is raised in the consumer at the item where it
    happened. ``close()`` (or leaving the ``with`` block, or breaking out of a
    for loop over it inside one) stops the thread without draining ``source``.
    """

    def __init__(self, source: Iterable[Any], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True, name="prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, source: Iterable[Any]) -> None:
        try:
            for item in source:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((_DONE, exc))
            return
        self._put((_DONE, None))

    def __iter__(self) -> Iterator[Any]:
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["Prefetcher"]
