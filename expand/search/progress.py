"""What a search shows while it runs: a line per event, a live table on a terminal, ETAs from measured times.

Three sinks share one interface (the coordinator, the baselines and the
calibration call them): ``SilentProgress`` (``--quiet``, tests),
``ConsoleProgress`` (plain lines, for logs and CI: a line per trial start and
finish, a line per running trial at most every ``X3D_EXPAND_HEARTBEAT_S`` seconds, and a line for
any phase that runs over a second) and ``LiveProgress`` (a terminal: the same
lines scroll above a live table of the step's trials, with state, elapsed,
epoch, loss and running top-1). :func:`make_progress` picks one.

ETAs come from what this search measured: a running trial's own epochs when
it reports them, else seconds per GFLOP of the trials finished so far.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, ContextManager, Optional, TextIO

from expand.console import format_seconds, is_terminal, phase
from expand.environ import heartbeat_s as env_heartbeat_s
from expand.search.time_limits import whole_trial_seconds
from expand.search.trial import TrialResult, TrialSpec


class SilentProgress:
    """The do-nothing progress sink (tests, --quiet)."""

    def search_started(self, exp: Any, n_axes: int) -> None: ...
    def batch_started(self, trials: list[TrialSpec], parallelism: int) -> None: ...
    def trial_cached(self, trial: TrialSpec, result: TrialResult) -> None: ...
    def trial_progress(self, update: dict[str, Any]) -> None: ...
    def trial_finished(self, trial: TrialSpec, result: TrialResult) -> None: ...
    def step_started(self, step: int, parent: Any, candidates: list[Any]) -> None: ...
    def step_finished(self, step: int, winner: Any, parent: Any) -> None: ...
    def search_finished(self, path: list[Any], reason: str) -> None: ...
    def note(self, text: str) -> None: ...

    def phase(self, label: str) -> ContextManager[None]:
        """A named stretch of work (counting FLOPs, starting Ray, contracting)."""
        return contextlib.nullcontext()

    def close(self) -> None: ...


Progress = SilentProgress


def _pct(x: float) -> str:
    return "   -  " if x != x else f"{100 * x:5.1f}%"


@dataclass
class _Running:
    trial: TrialSpec
    state: str = "queued"
    epoch: int = 0
    epochs: int = 0
    loss: float = math.nan
    top1: float = math.nan
    first_report: float = 0.0
    last_line: float = 0.0
    last_update: float = 0.0
    seconds: float = math.nan  # the finished trial's own time
    # the first epoch count this attempt reported, and when: a trial resumed from a snapshot at
    # epoch 5 has run (epoch - 5) epochs since, not epoch
    epoch_base: int = 0
    epoch_base_t: float = 0.0


_ENDED = ("done", "failed", "oom", "diverged", "timeout")


class Eta:
    """Remaining time of a batch and of the search, from this search's own measurements."""

    def __init__(self) -> None:
        self.finished: list[tuple[float, float]] = []  # (GFLOPs, seconds) of every finished trial

    def seconds_per_gflop(self) -> float:
        gf = sum(g for g, _ in self.finished)
        return sum(s for _, s in self.finished) / gf if gf > 0 else math.nan

    def remaining(self, r: _Running, now: float) -> float:
        since = r.epoch_base_t or r.first_report
        if r.epoch > r.epoch_base and r.epochs > 0 and since:
            per_epoch = (now - since) / (r.epoch - r.epoch_base)
            return per_epoch * (r.epochs - r.epoch)
        rate = self.seconds_per_gflop()
        if math.isnan(rate):
            return math.nan
        spent = now - r.first_report if r.first_report else 0.0
        return max(rate * r.trial.gflops - spent, 0.0)

    def batch(self, running: list[_Running], parallelism: int, now: float) -> float:
        left = [self.remaining(r, now) for r in running]
        if not left or any(math.isnan(x) for x in left):
            return math.nan
        return sum(left) / max(1, min(parallelism, len(left)))

    def later_steps(self, steps_left: int, n_axes: int, step_trials: list[float], parallelism: int) -> float:
        """Each later step trains ``n_axes`` candidates of about twice this step's GFLOPs (and time)."""
        if not step_trials or steps_left <= 0:
            return 0.0
        mean = sum(step_trials) / len(step_trials)
        return sum(n_axes * mean * 2 ** j for j in range(1, steps_left + 1)) / max(parallelism, 1)


class ConsoleProgress(SilentProgress):
    """Plain progress lines on a stream (stdout by default): readable in a log file."""

    def __init__(self, stream: Optional[TextIO] = None, heartbeat_s: Optional[float] = None) -> None:
        self.out = stream or sys.stdout
        self.heartbeat_s = env_heartbeat_s() if heartbeat_s is None else heartbeat_s
        self.start = time.perf_counter()
        self.eta = Eta()
        self.step_seconds: list[float] = []
        self.running: dict[str, _Running] = {}
        self.max_steps = 0
        self.n_axes = 6
        self.step = 0
        self.parallelism = 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def _elapsed(self) -> str:
        return format_seconds(time.perf_counter() - self.start)

    def _eta_text(self) -> str:
        now = time.time()
        left = [r for r in self.running.values() if r.state not in _ENDED]
        batch = self.eta.batch(left, self.parallelism, now) if left else 0.0
        if math.isnan(batch):
            return ""
        later = self.eta.later_steps(self.max_steps - self.step, self.n_axes, self.step_seconds, self.parallelism)
        text = f", step ~{format_seconds(batch)} left" if left else ""
        if later:
            text += f", search ~{format_seconds(batch + later)} left if every step runs"
        return text

    def phase(self, label: str) -> ContextManager[None]:
        return phase(label, say=self._print, heartbeat_s=self.heartbeat_s)

    def search_started(self, exp: Any, n_axes: int) -> None:
        self.max_steps = exp.search.max_steps
        self.n_axes = n_axes
        self._print(f"search {exp.name!r}: up to {self.max_steps} steps x {n_axes} axes, "
                    f"selection {exp.selection}")

    def batch_started(self, trials: list[TrialSpec], parallelism: int) -> None:
        self.parallelism = parallelism
        for t in trials:
            self.running[t.trial_id] = _Running(t)
            retry = f" (attempt {t.attempt})" if t.attempt > 1 else ""
            limit = f" (limit {format_seconds(t.time_limit_s)})" if t.time_limit_s else ""
            self._print(f"  start  {t.trial_id:22s} {t.spec.name:36s} {t.gflops:8.4f} GF{retry}{limit}")
        self._start_ticker()

    def _start_ticker(self) -> None:
        """A line for each running trial that has said nothing for ``heartbeat_s`` (a long epoch, a cache build)."""
        if self._ticker is not None or self.heartbeat_s <= 0:
            return
        self._stop.clear()

        def tick() -> None:
            while not self._stop.wait(self.heartbeat_s):
                now = time.time()
                for r in list(self.running.values()):
                    if r.first_report and r.state not in _ENDED and now - max(r.last_line, r.last_update) >= \
                            self.heartbeat_s:
                        r.last_line = now
                        self._print(f"  ...    {r.trial.trial_id:22s} still {r.state} "
                                    f"({format_seconds(now - r.first_report)})")

        self._ticker = threading.Thread(target=tick, name="x3d-expand-progress", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None

    def trial_cached(self, trial: TrialSpec, result: TrialResult) -> None:
        self._print(f"  done   {trial.trial_id:22s} (finished before resume) top1 {_pct(result.top1)}")

    def _update(self, update: dict[str, Any]) -> Optional[_Running]:
        r = self.running.get(update.get("trial_id", ""))
        if r is None:
            return None
        now = time.time()
        if not r.first_report:
            r.first_report = now
        r.last_update = now
        if "phase" in update:
            r.state = str(update["phase"]).split(" (")[0]
        # each attempt's training begins with a "training" phase and its epoch: a trial that Ray
        # requeued after its worker died is timed from its new attempt, not from the lost one
        starts = str(update.get("phase", "")).startswith("training")
        if "epoch" in update and (starts or not r.epoch_base_t):
            r.epoch_base, r.epoch_base_t = int(update["epoch"]), now
        for key in ("epoch", "epochs"):
            if key in update:
                setattr(r, key, int(update[key]))
        for key in ("loss", "top1"):
            if key in update:
                setattr(r, key, float(update[key]))
        return r

    def trial_progress(self, update: dict[str, Any]) -> None:
        r = self._update(update)
        if r is None:
            return
        now = time.time()
        if "phase" in update and update["phase"] != "training":
            self._print(f"  ...    {r.trial.trial_id:22s} {update['phase']}")
        elif now - r.last_line >= self.heartbeat_s and r.epoch:
            r.last_line = now
            top1 = f" top1 {_pct(r.top1)}" if not math.isnan(r.top1) else ""
            left = self.eta.remaining(r, now)
            eta = f", ~{format_seconds(left)} left" if not math.isnan(left) else ""
            self._print(f"  epoch  {r.trial.trial_id:22s} {r.epoch}/{r.epochs} loss {r.loss:.3f}{top1}"
                        f"  [{format_seconds(now - r.first_report)}{eta}]")

    def trial_finished(self, trial: TrialSpec, result: TrialResult) -> None:
        whole = whole_trial_seconds(result)
        self.eta.finished.append((trial.gflops, whole))
        self.step_seconds.append(whole)
        r = self.running.get(trial.trial_id)
        if r is not None:
            r.state, r.top1, r.seconds = "done" if result.ok else result.status, result.top1, result.seconds
        status = f"top1 {_pct(result.top1)}" if result.ok else f"{result.status.upper()}: {result.error_line[:80]}"
        where = f"  on {result.device}" if result.device else ""
        self._print(f"  finish {trial.trial_id:22s} {trial.axis:10s} {trial.gflops:8.4f} GF  "
                    f"{status}  {result.seconds:6.1f}s{where}  [elapsed {self._elapsed()}{self._eta_text()}]")

    def step_started(self, step: int, parent: Any, candidates: list[Any]) -> None:
        self.step = step
        self.step_seconds = []
        self.running = {}
        skipped = [c for c in candidates if c.status in ("skipped", "duplicate")]
        self._print(f"step {step}: parent {parent.spec.name} ({parent.gflops:.4g} GF, "
                    f"top1 {_pct(parent.top1).strip()})")
        for c in skipped:
            self._print(f"  skip   {c.axis:10s} {c.reason}")

    def step_finished(self, step: int, winner: Any, parent: Any) -> None:
        gain = winner.top1 - parent.top1
        later = self.eta.later_steps(self.max_steps - step, self.n_axes, self.step_seconds, self.parallelism)
        eta = f", ~{format_seconds(later)} left if {self.max_steps - step} more step(s) run" if later else ""
        conf = getattr(winner, "confidence", float("nan"))
        sure = "" if conf != conf else f", confidence {100 * conf:.0f}%"
        seeds = getattr(winner, "seeds", 1)
        over = f" over {seeds} seeds" if seeds > 1 else ""
        self._print(f"step {step} -> {winner.axis}: {winner.spec.name} {winner.gflops:.4g} GF "
                    f"top1 {_pct(winner.top1).strip()}{over} ({100 * gain:+.1f} pts{sure}) "
                    f"[elapsed {self._elapsed()}{eta}]")

    def note(self, text: str) -> None:
        self._print(f"  note   {text}")

    def search_finished(self, path: list[Any], reason: str) -> None:
        self._print(f"search finished after {len(path) - 1} steps ({reason}) in {self._elapsed()}")


class LiveProgress(ConsoleProgress):
    """On a terminal: the lines of ConsoleProgress scroll above a live table of the step's trials (rich)."""

    REFRESH_PER_S = 2

    def __init__(self, stream: Optional[TextIO] = None, heartbeat_s: Optional[float] = None) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(stream, heartbeat_s)
        self.console = Console(file=self.out, highlight=False)
        self.live = Live(self._table(), console=self.console, refresh_per_second=self.REFRESH_PER_S,
                         transient=True, get_renderable=self._table)
        self.live.start()

    def _print(self, text: str) -> None:
        with self._lock:
            self.console.print(text, markup=False, soft_wrap=True)

    def trial_progress(self, update: dict[str, Any]) -> None:
        r = self._update(update)  # the table shows it; lines only for phases other than training
        if r is not None and "phase" in update and update["phase"] not in ("training", "evaluating"):
            self._print(f"  ...    {r.trial.trial_id:22s} {update['phase']}")

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        title = f"step {self.step}" if self.step else "basis"
        eta = self._eta_text().lstrip(", ")
        heading = Text(f"{title}  [elapsed {self._elapsed()}{'; ' + eta if eta else ''}]")  # not markup
        table = Table(title=heading, title_justify="left", expand=False, pad_edge=False)
        for name in ("trial", "axis", "GFLOPs", "state", "elapsed", "epoch", "loss", "top1 %"):
            table.add_column(name, justify="right" if name in ("GFLOPs", "elapsed", "loss", "top1 %") else "left")
        for r in list(self.running.values()):
            started = r.first_report or now
            elapsed = (format_seconds(r.seconds) if not math.isnan(r.seconds) else
                       format_seconds(now - started) if r.first_report else "")
            table.add_row(r.trial.trial_id, r.trial.axis, f"{r.trial.gflops:.4g}", r.state, elapsed,
                          f"{r.epoch}/{r.epochs}" if r.epochs else "",
                          "" if math.isnan(r.loss) else f"{r.loss:.3f}",
                          "" if math.isnan(r.top1) else f"{100 * r.top1:.1f}")
        return table

    def _start_ticker(self) -> None:
        """The live table shows every trial's elapsed time: no heartbeat lines needed."""

    def close(self) -> None:
        self.live.stop()


def make_progress(quiet: bool = False, stream: Optional[TextIO] = None) -> SilentProgress:
    """Silent with ``quiet``; a live table on a terminal; plain lines anywhere else (logs, CI, pipes)."""
    if quiet:
        return SilentProgress()
    stream = stream or sys.stdout
    if is_terminal(stream):
        try:
            return LiveProgress(stream)
        except ImportError:  # rich missing: plain lines still say everything
            pass
    return ConsoleProgress(stream)


__all__ = ["SilentProgress", "ConsoleProgress", "LiveProgress", "Progress", "Eta", "make_progress"]
