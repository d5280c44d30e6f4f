"""What a killed search leaves of its local Ray cluster, and cleaning it up.

A search that started its own local cluster (``ray.init()`` without an
address) shuts it down on exit, Ctrl-C and SIGTERM. After kill -9 nothing
runs that code: Ray takes its GCS server and raylet down with the driver,
but the raylet's agents and idle workers are orphaned and linger (measured:
see the README's "Bad input and reliability"). So the runner records its
cluster's session in ``RUN/ray-session.json`` while it runs, and the next
writer of the run (``resume`` holds the run's lock, so the recorded driver
is known to be gone) stops every process of that session: those whose
command line names the session folder, and all their descendants (workers
and agents are the raylet's children and do not name it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Optional

FILE = "ray-session.json"


def record(run_path: str, session_dir: str) -> None:
    from expand.fileio import atomic_write

    atomic_write(os.path.join(run_path, FILE), json.dumps(
        {"driver_pid": os.getpid(), "host": socket.gethostname(), "session_dir": session_dir}))


def forget(run_path: str) -> None:
    try:
        os.unlink(os.path.join(run_path, FILE))
    except FileNotFoundError:
        pass


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie does not; someone else's does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat", encoding="utf-8") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(name)] = (ppid, cmd)
    return out


def _holds_files_in(pid: int, folder: str) -> bool:
    """Does the process have a file open under ``folder`` (Ray's workers log into the session)?"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder):
                return True
        except OSError:
            continue
    return False


def session_processes(session_dir: str) -> list[int]:
    """Processes of a Ray session: those naming its folder or holding files in it, and their descendants.

    Why both: Ray kills its GCS server and raylet with the driver (they share
    its fate), but the raylet's children — agents and idle workers — are
    reparented to init, do not name the session on their command line, and
    linger; each keeps its log files in the session folder open.
    """
    procs = _processes()
    folder = session_dir.rstrip("/")
    marker = os.path.basename(folder)
    if not marker.startswith("session_"):
        return []  # never match by a path that is not a Ray session's folder
    found = {pid for pid, (_, cmd) in procs.items()
             if pid != os.getpid() and (marker in cmd or _holds_files_in(pid, folder + "/"))}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    found.discard(os.getpid())
    return sorted(found)


def stop_processes(pids: list[int], grace: float = 5.0) -> int:
    """SIGTERM, then SIGKILL what is left after ``grace`` seconds; returns how many were running."""
    running = [p for p in pids if pid_alive(p)]
    for p in running:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in running):
        time.sleep(0.1)
    for p in running:
        if pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return len(running)


def clean_stale(run_path: str) -> Optional[str]:
    """Stop what a killed earlier driver of this run left; returns a line saying what was done."""
    path = os.path.join(run_path, FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
        pid, host, session = int(info["driver_pid"]), str(info["host"]), str(info["session_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return f"a Ray session of this run on {host} may still be running ({session}); stop it there"
    if pid != os.getpid() and pid_alive(pid):
        return None  # not ours to stop (the lock says it is not writing this run: a reused pid)
    n = stop_processes(session_processes(session))
    forget(run_path)
    return f"stopped {n} process(es) left by a killed search's Ray session" if n else None


__all__ = ["record", "forget", "clean_stale", "session_processes", "stop_processes"]
