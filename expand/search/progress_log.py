"""The run's own record of what its commands showed: ``RUN/progress.log``, with a time on every line.

A week-long search is watched on a terminal that closes, or started with
``--quiet`` under a scheduler: what it said (each trial's start and finish, the
cache build, retries, the step's pick, why it stopped) would be gone. Every
command that trains in a run folder (``search``, ``resume``, ``baseline``,
``calibrate``) appends the same plain lines ``ConsoleProgress`` prints to this
file, whatever the screen shows, each behind a wall-clock time, and a header
naming the command. The heartbeat lines of running trials are left out (the
file would grow by a line a minute per trial for days); phases and epochs stay.

The log is a record, not the truth (``trials.jsonl`` is): a disk that refuses
a line gets one warning on stderr and no more lines, and the search goes on
to the write that matters, which stops it as a full disk should.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from typing import Any, ContextManager, Iterator, Optional

from expand.errors import StopRequested
from expand.run.status import LOG_FILE, STAMP_FORMAT
from expand.search.progress import ConsoleProgress, SilentProgress


class RunLog(ConsoleProgress):
    """ConsoleProgress into ``path`` (appended), each line behind a local time."""

    def __init__(self, path: str) -> None:
        self.path = path
        # heartbeat 0: every epoch line, and no ticker (no "still training" lines); phases beat as on screen
        super().__init__(stream=None, heartbeat_s=0)
        from expand.environ import heartbeat_s

        self.phase_heartbeat_s = heartbeat_s()
        self.broken: Optional[OSError] = None
        try:
            self.out = open(path, "a", encoding="utf-8")
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        self.broken = exc
        print(f"x3d-expand: warning: cannot write {self.path} ({exc.strerror or exc}); the search goes on "
              "without its log", file=sys.stderr, flush=True)

    def _print(self, text: str) -> None:
        if self.broken is not None:
            return
        with self._lock:
            try:
                self.out.write(f"{time.strftime(STAMP_FORMAT)} {text}\n")
                self.out.flush()
            except OSError as exc:
                self._give_up(exc)

    def phase(self, label: str) -> ContextManager[None]:
        from expand.console import phase

        return phase(label, say=self._print, heartbeat_s=self.phase_heartbeat_s)

    def header(self, what: str) -> None:
        """The command that appends from here on (a run is written by several: search, then resumes)."""
        self._print(f"== {what} (pid {os.getpid()} on {socket.gethostname()})")

    def line(self, text: str) -> None:
        """A line the screen showed outside the progress events (the plan, a resume's changes)."""
        self._print(text)

    def ended(self) -> None:
        from expand.console import format_seconds

        self._print(f"== done in {format_seconds(time.perf_counter() - self.start)}")

    def stopped(self, exc: BaseException) -> None:
        """Why the command ended without finishing, as the log's last word (the screen's line is on stderr)."""
        self._print(stop_line(exc))

    def close(self) -> None:
        super().close()
        if self.out is not None and self.out is not sys.stdout:
            with contextlib.suppress(OSError):
                self.out.close()


def stop_line(exc: BaseException) -> str:
    """``stopped: <why>``, the one line that says why a command ended without finishing."""
    signum = getattr(exc, "signum", None)  # the CLI's Terminated: SIGTERM or SIGHUP
    if isinstance(signum, int):
        import signal

        return f"stopped: {signal.Signals(signum).name}"
    if isinstance(exc, StopRequested):
        return f"stopped: {exc.why}"
    first = (str(exc).splitlines() or [""])[0]
    return f"stopped: {type(exc).__name__}{': ' + first if first else ''}"


def _to_each(name: str) -> Any:
    def forward(self: "TeeProgress", *args: Any, **kwargs: Any) -> None:
        for sink in self.sinks:
            getattr(sink, name)(*args, **kwargs)

    forward.__name__ = name
    return forward


class TeeProgress(SilentProgress):
    """One progress interface over several sinks (the screen's and the run's log)."""

    def __init__(self, *sinks: SilentProgress) -> None:
        self.sinks = sinks

    search_started = _to_each("search_started")
    batch_started = _to_each("batch_started")
    trial_cached = _to_each("trial_cached")
    trial_progress = _to_each("trial_progress")
    trial_finished = _to_each("trial_finished")
    step_started = _to_each("step_started")
    step_finished = _to_each("step_finished")
    search_finished = _to_each("search_finished")
    note = _to_each("note")

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for sink in self.sinks:
                stack.enter_context(sink.phase(label))
            yield

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


__all__ = ["LOG_FILE", "RunLog", "TeeProgress", "stop_line"]
