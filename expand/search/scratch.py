"""A trial's node-local scratch folder, for a trial that runs off the driver's node.

Such a trial writes its files (weights, events) into a fresh folder in the
node's temporary directory; the worker reads them back to send to the head
(``pool.py``) and removes the folder. A worker killed mid-trial never gets to
remove it, so each folder names the process that made it, and a worker
starting a trial on a node sweeps those of dead processes.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from expand.search.ray_session import pid_alive

SCRATCH_PREFIX = "x3d-expand-scratch-"  # + the worker's pid, "-", the trial id, "-", a random tail


def make_scratch(trial_id: str) -> str:
    """A new empty folder for ``trial_id`` in this node's temporary directory."""
    return tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{trial_id}-")


def remove_scratch(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def read_files(folder: str) -> dict[str, bytes]:
    """Every file a trial wrote under ``folder`` (relative path -> bytes)."""
    out = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


def sweep_dead_scratch(root: str = "") -> list[str]:
    """Remove the scratch folders in ``root`` (this node's temporary directory) of worker processes
    no longer alive; returns their names.

    A worker killed mid-trial (a time limit, a crash) never reaches its own
    clean-up, and a checkpointing trial's scratch folder can hold gigabytes.
    A folder names the pid that made it: one whose process is gone is
    garbage; one whose pid is alive is kept (another worker's, or a reused pid: safe either way).
    """
    root = root or tempfile.gettempdir()
    removed = []
    for name in os.listdir(root):
        pid = name[len(SCRATCH_PREFIX):].split("-", 1)[0] if name.startswith(SCRATCH_PREFIX) else ""
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(name)
    return removed
