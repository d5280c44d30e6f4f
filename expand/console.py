"""What the user sees while something slow runs: counted progress and named phases.

Two modes, picked from the stream: on a terminal a live bar (tqdm) that
redraws in place; anywhere else (a log file, CI, ``| tee``) plain lines, a
few per task, because carriage returns make logs unreadable. A phase that
runs longer than ``X3D_EXPAND_HEARTBEAT_S`` seconds (15) says it is still running at that interval,
so no step of a long search is silent for long.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from typing import Callable, Iterator, Optional, TextIO

from expand.environ import heartbeat_s as env_heartbeat_s

PHASE_QUIET_S = 1.0  # a phase shorter than this prints nothing
# The x3d-expand command line being run (the CLI sets it; '' when called from Python), for the
# header a run's progress.log gives each command that writes to it.
COMMAND_LINE: contextvars.ContextVar[str] = contextvars.ContextVar("x3d_expand_command_line", default="")


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is an interactive terminal (and the user did not ask for plain lines)."""
    if os.environ.get("X3D_EXPAND_PLAIN") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def under_live_display(stream: TextIO) -> bool:
    """True when ``stream`` is rich's proxy of a terminal that a live table redraws (the search's).

    Rich passes what is written to it above the table one whole line at a
    time, so a tqdm bar, which redraws with carriage returns and no newline,
    would never show: plain lines are used instead."""
    try:
        from rich.file_proxy import FileProxy
    except ImportError:
        return False
    return isinstance(stream, FileProxy)


class CountProgress:
    """``done`` out of ``total`` items: a tqdm bar on a terminal; elsewhere a line per ~10 %, or sooner
    when ``X3D_EXPAND_HEARTBEAT_S`` seconds passed since the last line (a slow item never leaves a log
    silent for long)."""

    def __init__(self, total: int, label: str, stream: Optional[TextIO] = None, enabled: bool = True) -> None:
        self.total, self.label, self.enabled = total, label, enabled and total > 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._bar = None
        self._next_line = 0
        self._last_line = 0.0
        self._heartbeat_s = env_heartbeat_s()
        if self.enabled and is_terminal(self.stream) and not under_live_display(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"  {label}", file=self.stream, leave=True, dynamic_ncols=True)

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        """``done`` items so far (``total`` is accepted as check_all's ``on_done(done, total)`` passes it)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if done >= self.total:
                self._bar.close()
            return
        elapsed = time.perf_counter() - self.start
        if done < self._next_line and done < self.total and elapsed - self._last_line < self._heartbeat_s:
            return
        self._next_line = done + max(1, self.total // 10)
        self._last_line = elapsed
        eta = elapsed / done * (self.total - done) if done else float("nan")
        left = f", ~{format_seconds(eta)} left" if 0 < done < self.total else ""
        print(f"  {self.label} {done}/{self.total} [{format_seconds(elapsed)}{left}]", file=self.stream, flush=True)


@contextlib.contextmanager
def phase(label: str, say: Optional[Callable[[str], None]] = None, heartbeat_s: Optional[float] = None,
          quiet_s: Optional[float] = None) -> Iterator[None]:
    """Say ``label`` once it has run ``quiet_s`` (1 s), then ``still label`` every ``heartbeat_s``, then its time.

    A phase that ends within ``quiet_s`` prints nothing, so the many quick
    phases of a search (FLOPs already counted, a warm cache) add no noise;
    one that takes longer is never silent for more than ``heartbeat_s``.
    ``say`` prints one line (default: stderr).
    """
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    every = env_heartbeat_s() if heartbeat_s is None else heartbeat_s
    first = PHASE_QUIET_S if quiet_s is None else quiet_s
    start = time.perf_counter()
    done = threading.Event()
    spoke = threading.Event()

    def beat() -> None:
        if done.wait(first):
            return
        spoke.set()
        say(f"  ... {label}")
        if every <= 0:  # no "still" lines (a wait of 0 would spin, taking a core from the work)
            return
        while not done.wait(every):
            say(f"  ... still {label} ({format_seconds(time.perf_counter() - start)})")

    ticker = threading.Thread(target=beat, name="x3d-expand-phase", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        if spoke.is_set():
            say(f"  ... {label}: done in {time.perf_counter() - start:.1f}s")


__all__ = ["CountProgress", "phase", "is_terminal", "under_live_display", "format_seconds",
           "COMMAND_LINE"]
