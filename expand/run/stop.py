"""``x3d-expand stop RUN``: the search finishes the trials running now, starts no more, and stops.

Why not SIGTERM: a signal stops at once, and the trials in flight (hours of GPU time each, on a
week-long search) are lost and rerun by ``resume``; a signal also reaches only a process on this
machine. A request file in the run folder reaches the writer wherever it runs, and it reads the
file between trials: what is training finishes and is recorded, queued trials do not start.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from typing import Any, Optional

from expand.errors import InputError
from expand.run import RunDir

STOP_FILE = "stop-requested.json"


def request_stop(run_dir: str) -> str:
    """Ask the process writing ``run_dir`` to stop after its running trials; returns who that is."""
    from expand.fileio import atomic_write

    run = _run(run_dir)
    holder = run.writer()
    if holder is None:
        raise InputError(f"{run.path}: not running (no process writes it): nothing to stop")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    atomic_write(run.file(STOP_FILE), json.dumps({
        "requested_at": time.strftime("%Y-%m-%d %H:%M:%S"), "by": f"{user}@{socket.gethostname()}"}) + "\n")
    return holder.describe()


def stop_requested(run_dir: str) -> Optional[dict[str, Any]]:
    """The pending request ({requested_at, by}), or None; an unreadable file still asks to stop."""
    path = os.path.join(run_dir, STOP_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def withdraw_stop(run_dir: str) -> bool:
    """``stop --cancel``: forget a request not yet acted on; True if there was one."""
    return clear_stop(_run(run_dir).path)


def _run(run_dir: str) -> RunDir:
    run = RunDir(run_dir)
    if not run.exists():
        raise InputError(f"{run.path}: not a run folder (no state.json)")
    return run


def clear_stop(run_dir: str) -> bool:
    """Forget a request (a new session starts, or ``stop --cancel``); True if there was one."""
    try:
        os.remove(os.path.join(run_dir, STOP_FILE))
        return True
    except FileNotFoundError:
        return False


__all__ = ["STOP_FILE", "clear_stop", "request_stop", "stop_requested", "withdraw_stop"]
