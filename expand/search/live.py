"""Progress from inside a running trial (epoch, loss, running top-1, phase) to whoever shows it.

A trial function calls :func:`report`; it is a no-op unless a runner
installed a sink with :func:`reporting`. The serial runner installs the
progress display itself; a Ray worker installs one that sends the update
through Tune to the driver (``expand/search/pool.py``). Updates are for
display only: nothing recorded depends on them, and a sink that fails is
ignored rather than failing the trial.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterator, Optional

Sink = Callable[[dict[str, Any]], None]
_local = threading.local()


def report(trial_id: str, **update: Any) -> None:
    """Tell the display how ``trial_id`` is doing, e.g. ``report(tid, epoch=3, epochs=10, loss=1.2)``."""
    sink: Optional[Sink] = getattr(_local, "sink", None)
    if sink is None:
        return
    try:
        sink({"trial_id": trial_id, "time": time.time(), **update})
    except Exception:  # noqa: BLE001 - display only: never fail a trial over it
        pass


@contextlib.contextmanager
def reporting(sink: Optional[Sink]) -> Iterator[None]:
    """Send this thread's :func:`report` calls to ``sink`` while the block runs."""
    previous = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield
    finally:
        _local.sink = previous


__all__ = ["report", "reporting", "Sink"]
