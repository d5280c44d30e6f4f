"""Progress lines while a search runs: a line per trial, a step summary, elapsed and ETA."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from expand.search.trial import TrialResult, TrialSpec


class SilentProgress:
    """The do-nothing progress sink (tests, --quiet)."""

    def search_started(self, exp: Any, n_axes: int) -> None: ...
    def batch_started(self, trials: list[TrialSpec], parallelism: int) -> None: ...
    def trial_cached(self, trial: TrialSpec, result: TrialResult) -> None: ...
    def trial_finished(self, trial: TrialSpec, result: TrialResult) -> None: ...
    def step_started(self, step: int, parent: Any, candidates: list[Any]) -> None: ...
    def step_finished(self, step: int, winner: Any, parent: Any) -> None: ...
    def search_finished(self, path: list[Any], reason: str) -> None: ...
    def note(self, text: str) -> None: ...


Progress = SilentProgress


def _pct(x: float) -> str:
    return "   -  " if x != x else f"{100 * x:5.1f}%"


class ConsoleProgress(SilentProgress):
    """Human-readable progress on a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream or sys.stdout
        self.start = time.perf_counter()
        self.trial_seconds: list[float] = []
        self.step_start = 0
        self.max_steps = 0
        self.n_axes = 6
        self.step = 0
        self.parallelism = 1

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _elapsed(self) -> str:
        return _fmt_seconds(time.perf_counter() - self.start)

    def search_started(self, exp: Any, n_axes: int) -> None:
        self.max_steps = exp.search.max_steps
        self.n_axes = n_axes
        self._print(f"search {exp.name!r}: up to {self.max_steps} steps x {n_axes} axes, "
                    f"selection {exp.selection}")

    def batch_started(self, trials: list[TrialSpec], parallelism: int) -> None:
        self.parallelism = parallelism
        for t in trials:
            retry = f" (attempt {t.attempt})" if t.attempt > 1 else ""
            self._print(f"  start  {t.trial_id:22s} {t.spec.name:36s} {t.gflops:8.4f} GF{retry}")

    def trial_cached(self, trial: TrialSpec, result: TrialResult) -> None:
        self._print(f"  done   {trial.trial_id:22s} (finished before resume) top1 {_pct(result.top1)}")

    def trial_finished(self, trial: TrialSpec, result: TrialResult) -> None:
        self.trial_seconds.append(result.seconds)
        status = f"top1 {_pct(result.top1)}" if result.ok else f"{result.status.upper()}: {result.error[:80]}"
        where = f"  on {result.device}" if result.device else ""
        self._print(f"  finish {trial.trial_id:22s} {trial.axis:10s} {trial.gflops:8.4f} GF  "
                    f"{status}  {result.seconds:6.1f}s{where}  [elapsed {self._elapsed()}]")

    def step_started(self, step: int, parent: Any, candidates: list[Any]) -> None:
        self.step = step
        self.step_start = len(self.trial_seconds)
        skipped = [c for c in candidates if c.status in ("skipped", "duplicate")]
        self._print(f"step {step}: parent {parent.spec.name} ({parent.gflops:.4g} GF, "
                    f"top1 {_pct(parent.top1).strip()})")
        for c in skipped:
            self._print(f"  skip   {c.axis:10s} {c.reason}")

    def step_finished(self, step: int, winner: Any, parent: Any) -> None:
        gain = winner.top1 - parent.top1
        eta = ""
        last = self.trial_seconds[self.step_start:]
        if last and self.max_steps > step:
            # trial time grows with FLOPs, and every step roughly doubles them
            mean = sum(last) / len(last)
            steps_left = self.max_steps - step
            remaining = sum(self.n_axes * mean * 2 ** j for j in range(1, steps_left + 1)) / max(self.parallelism, 1)
            eta = f", ~{_fmt_seconds(remaining)} left if {steps_left} more step(s) run"
        conf = getattr(winner, "confidence", float("nan"))
        sure = "" if conf != conf else f", confidence {conf:.2f}"
        seeds = getattr(winner, "seeds", 1)
        over = f" over {seeds} seeds" if seeds > 1 else ""
        self._print(f"step {step} -> {winner.axis}: {winner.spec.name} {winner.gflops:.4g} GF "
                    f"top1 {_pct(winner.top1).strip()}{over} ({100 * gain:+.1f} pts{sure}) "
                    f"[elapsed {self._elapsed()}{eta}]")

    def note(self, text: str) -> None:
        self._print(f"  note   {text}")

    def search_finished(self, path: list[Any], reason: str) -> None:
        self._print(f"search finished after {len(path) - 1} steps ({reason}) in {self._elapsed()}")


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
