"""Worker processes for decoding and encoding videos that stop when the command stops.

A plain ``with ProcessPoolExecutor()`` block that is left by an exception
(Ctrl-C, or SIGTERM raised as the CLI's ``Terminated``) waits for every
submitted job, and each forked worker inherited the CLI's signal handler.
Here queued jobs are cancelled, running ones finish (so nothing is left half
written), and workers leave SIGINT and SIGHUP to the parent, which decides.
Callers map with ``chunksize=1``: a chunk already handed to a worker cannot
be cancelled, and ``data synth`` with chunks of 8 went on encoding for ~6 s
after SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator


def _leave_signals_to_the_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the whole process group
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler, inherited through fork


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose queued jobs are cancelled when the block raises."""
    pool = ProcessPoolExecutor(workers, initializer=_leave_signals_to_the_parent)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
