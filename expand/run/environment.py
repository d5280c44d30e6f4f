"""What a run's numbers were computed with: the code, the packages and the machine, one record per session.

Why: a table's GFLOPs come from fvcore's counting rules and its top-1s from torch's
kernels; a week-long search is resumed across upgrades, checkouts and machines, and
a paper needs to say which versions produced which rows. ``RUN/environment.jsonl``
gets a line each time a command starts training in the run (a search, a resume with trials
left, a baseline, ``contract --train``; a resume that only replays trains nothing and adds
none), and a session whose versions differ from the last one's says so on screen and in
progress.log. Trials record their own device and node
(trials.jsonl), so GPUs are not asked for here: naming them would start CUDA in the
driver, which then holds memory on a GPU for the whole search.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import time
from typing import Any, Optional

from expand.fileio import append_line

FILE = "environment.jsonl"
# what a table's numbers depend on (counts, kernels, decoding, scheduling, sampling), by distribution name
PACKAGES = ("torch", "fvcore", "av", "ray", "optuna", "numpy", "pandas")


def git_commit(folder: Optional[str] = None) -> Optional[str]:
    """The checkout's commit ('+dirty' when tracked files changed) when ``expand`` is run from a git
    checkout; None for an installed wheel (whose folder git does not track, even inside a repo's venv)."""
    folder = folder or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the expand package

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return None
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".") else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_cuda() -> Optional[str]:
    """The CUDA version torch was built for (None: a CPU build, or no torch), without importing torch:
    an oracle search imports nothing of it, and importing it took a second of every such command."""
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"].version.cuda
    from importlib import metadata

    try:
        text = metadata.distribution("torch").locate_file("torch/version.py").read_text(encoding="utf-8")
    except (metadata.PackageNotFoundError, OSError):
        return None
    return cuda_in_version_file(text)


def cuda_in_version_file(text: str) -> Optional[str]:
    """``cuda`` of torch/version.py's text ("cuda: Optional[str] = '12.1'"; None when it is None)."""
    match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
    return match.group(1) if match else None


def capture(command: str = "") -> dict[str, Any]:
    """This process's environment, as one session's record (no CUDA context is created)."""
    from importlib import metadata

    import expand

    packages: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "x3d_expand": expand.__version__,
            "git": git_commit(), "python": platform.python_version(), "platform": platform.platform(),
            "host": socket.gethostname(), "cpu": _cpu_model(), "cpus": os.cpu_count(), "torch_cuda": torch_cuda(),
            "packages": packages}


def sessions(run_dir: str) -> list[dict[str, Any]]:
    """Every session's record, oldest first ([] for a run from before they were kept); a damaged line is skipped."""
    try:
        with open(os.path.join(run_dir, FILE), encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _versions(env: dict[str, Any]) -> dict[str, Any]:
    return {"x3d-expand": env.get("x3d_expand"), "git": env.get("git"), "python": env.get("python"),
            "CUDA build": env.get("torch_cuda"), **(env.get("packages") or {})}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """'torch 2.13.0 -> 2.14.0' for each version that differs between two sessions."""
    a, b = _versions(before), _versions(after)
    return [f"{k} {a.get(k)} -> {b.get(k)}" for k in b if a.get(k) != b.get(k)]


def record(run_dir: str, command: str = "") -> Optional[str]:
    """Append this session's record; returns a note when its versions differ from the last session's."""
    earlier = sessions(run_dir)
    env = capture(command)
    append_line(os.path.join(run_dir, FILE), json.dumps(env) + "\n")
    if not earlier:
        return None
    changed = changes(earlier[-1], env)
    if not changed:
        return None
    return (f"environment changed since the last session ({earlier[-1].get('time', '?')}): {', '.join(changed)}; "
            "trials from here on run under the new versions")


def summary(run_dir: str) -> str:
    """One line for ``show``: the first session's versions, and what changed in later ones ('' if none kept)."""
    kept = sessions(run_dir)
    if not kept:
        return ""
    first = kept[0]
    pk = first.get("packages") or {}
    code = f"x3d-expand {first.get('x3d_expand')}" + (f" (git {first['git']})" if first.get("git") else "")
    line = (f"environment: {code}, torch {pk.get('torch')}" + (f" (CUDA {first['torch_cuda']})"
                                                               if first.get("torch_cuda") else "")
            + f", fvcore {pk.get('fvcore')}, Python {first.get('python')} on {first.get('host')} ({first.get('cpu')})")
    changed = sorted({c.split(" ")[0] for i in range(1, len(kept)) for c in changes(kept[i - 1], kept[i])})
    if len(kept) > 1:
        line += f"; {len(kept)} sessions" + (f", changed: {', '.join(changed)}" if changed else ", same versions")
    return line + f" ({FILE})"


__all__ = ["FILE", "PACKAGES", "capture", "changes", "git_commit", "record", "sessions", "summary"]
