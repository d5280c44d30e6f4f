"""expand.pools: a raising block cancels queued jobs; workers leave terminal signals to the parent."""

import os
import signal
import time

import pytest

from expand.pools import process_pool


def _slow_job(path: str) -> str:
    time.sleep(0.2)
    with open(path, "w") as fh:
        fh.write("done")
    return path


def _signal_dispositions(_: int) -> tuple:
    return (signal.getsignal(signal.SIGINT) == signal.SIG_IGN, signal.getsignal(signal.SIGHUP) == signal.SIG_IGN,
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)


def test_a_block_that_raises_cancels_the_queued_jobs(tmp_path):
    """A plain ProcessPoolExecutor ran all 60 submitted jobs (6 s) after the exception; here only
    the running ones and the few already handed to a worker finish."""
    from concurrent.futures import FIRST_COMPLETED, wait

    paths = [str(tmp_path / f"{i}.txt") for i in range(60)]
    with pytest.raises(RuntimeError, match="stop"):
        with process_pool(2) as pool:
            futures = [pool.submit(_slow_job, p) for p in paths]
            wait(futures, return_when=FIRST_COMPLETED)
            raise RuntimeError("stop")
    ran = len(os.listdir(tmp_path))
    assert 1 <= ran <= 10, ran


def test_a_block_that_ends_waits_for_every_job(tmp_path):
    paths = [str(tmp_path / f"{i}.txt") for i in range(6)]
    with process_pool(2) as pool:
        futures = [pool.submit(_slow_job, p) for p in paths]
    assert all(f.done() for f in futures) and len(os.listdir(tmp_path)) == 6


def test_workers_ignore_terminal_signals_and_do_not_inherit_the_clis_handler():
    """Forked workers inherited the CLI's SIGTERM handler (raise Terminated) and took Ctrl-C as
    KeyboardInterrupt, each printing a traceback."""
    def cli_like_handler(signum, frame):
        raise AssertionError("not in a worker")

    previous = signal.signal(signal.SIGTERM, cli_like_handler)
    try:
        with process_pool(2) as pool:
            assert list(pool.map(_signal_dispositions, range(2))) == [(True, True, True)] * 2
    finally:
        signal.signal(signal.SIGTERM, previous)
