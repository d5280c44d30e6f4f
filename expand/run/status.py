"""Whether a run is being written now, and what its log says of it: ``show``'s status line.

``state.json`` records what the writer last wrote; the lock (is anyone writing?)
and ``progress.log`` (what did the last command say, and how did it end?) say
what became of it since.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

from expand.run import RunDir

LOG_FILE = "progress.log"  # RUN/progress.log: the lines each command showed, with times
STAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # each log line's time, then a space, then the line
_STAMP_LEN = len(time.strftime(STAMP_FORMAT, time.gmtime(0)))


def live_status(run_dir: str, state: dict[str, Any]) -> tuple[str, str, Optional[str]]:
    """The run's status as it is now: (status, why, who writes it).

    ``state.json`` says ``running`` from the start of a search to its end; a search
    killed, interrupted or stopped by a full disk leaves it so. The run's lock tells
    the two apart: a run said to be running that nobody writes is ``stopped``.
    """
    status, why = state.get("status") or "?", state.get("stop_reason") or ""
    holder = RunDir(run_dir).writer()
    writer = holder.describe() if holder else None
    if status in ("starting", "running"):
        if holder is None:
            return ("stopped", f"not running: {_how_it_stopped(run_dir)}; "
                    f"'x3d-expand resume {os.path.abspath(run_dir)}' continues it", None)
        when, text = _last_logged(run_dir)
        latest = f"; last logged {when[11:]}: {' '.join(text.split())[:100]}" if when else ""
        return status, (why or f"in progress: {writer}") + latest, writer
    return status, why, writer


def _last_logged(run_dir: str) -> tuple[str, str]:
    """The time and text of the run's last progress.log line (written by expand/search/progress_log.py)."""
    try:
        with open(os.path.join(run_dir, LOG_FILE), "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "", ""  # a run from before the log, or an unreadable one
    last = lines[-1] if lines else ""
    return last[:_STAMP_LEN], last[_STAMP_LEN + 1:]


_TAIL_BYTES = 4 << 20  # a week of log lines is tens of MB; the in-flight trials' lines are at its end


def running_trials(run_dir: str) -> set[str]:
    """Trials training now, by the log of the session that writes the run: a trial said something
    (``...``, ``epoch``) since its ``start`` and has no ``finish`` yet. The others of a batch are
    queued: all start at once, and the cluster runs as many as fit. For ``show``, display only."""
    try:
        with open(os.path.join(run_dir, LOG_FILE), "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - _TAIL_BYTES))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return set()
    session = max((i for i, line in enumerate(lines) if line[_STAMP_LEN + 1:].startswith("== ")), default=0)
    running: set[str] = set()
    for line in lines[session:]:
        words = line[_STAMP_LEN + 1:].split()
        if len(words) < 2:
            continue
        verb, trial_id = words[0], words[1]
        if verb in ("...", "epoch"):
            running.add(trial_id)
        elif verb in ("start", "finish", "done"):  # a requeued attempt starts again: queued until it speaks
            running.discard(trial_id)
    return running


def _how_it_stopped(run_dir: str) -> str:
    """What the run's progress.log says of its last command's end."""
    generic = "interrupted, killed, out of disk or its Ray node lost before it finished"
    when, text = _last_logged(run_dir)
    if not when:
        return generic
    if text.startswith("stopped: "):
        return f"{text} at {when} (progress.log)"
    if text.startswith("== done"):
        return generic
    return (f"its log ends at {when} without a last word: killed (kill -9, the out-of-memory killer), its "
            "machine went down or its disk filled (the log's last line could not be written)")


__all__ = ["LOG_FILE", "STAMP_FORMAT", "live_status", "running_trials"]
