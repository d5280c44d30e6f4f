"""Running trials with the run's retry policy, recording every attempt.

Shared by the expansion coordinator and the baselines: a trial whose last
recorded attempt is final (ok, or out of retries) is never run again, so both
resume by replaying their decisions against ``trials.jsonl``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

from expand.config import RetriesConfig
from expand.errors import DeviceBroken, DiskUnwritable, NodeLost, StopRequested, disk_fix
from expand.run.stop import clear_stop, stop_requested
from expand.search.progress import Progress
from expand.search.runners import Runner, takes
from expand.search.time_limits import TimeLimits
from expand.run import RunDir, TrialRecord, latest_by_trial
from expand.search.trial import TrialResult, TrialSpec


class TrialExecutor:
    """``limits`` is the experiment's ``trial.time_limit_s`` as a policy: each attempt is given
    its limit here (the runner enforces it), and an attempt stopped under a smaller limit than the
    policy gives now is not final, so raising the limit and resuming retrains what it cut short."""

    def __init__(self, run: RunDir, runner: Runner, retries: RetriesConfig, progress: Progress,
                 on_pending: Optional[Callable[[list[str]], None]] = None,
                 limits: Optional[TimeLimits] = None, again: Optional[str] = None) -> None:
        self.run_dir, self.runner, self.retries, self.progress = run, runner, retries, progress
        # the command that goes on after a stop: resume, or for contracted models the contract itself
        self.again = again or f"x3d-expand resume {run.path}"
        self.on_pending, self.limits = on_pending, limits or TimeLimits()
        self.attempts: dict[str, list[TrialRecord]] = latest_by_trial(run.read_trials().records)
        self.broken: list[TrialResult] = []  # this session's attempts that broke their GPU (faulty_gpu)

    def retry_allowed(self, result: TrialResult, attempts: int) -> bool:
        if result.ok:
            return False
        return attempts <= getattr(self.retries, result.status, 0)

    def attempts_of(self, trial: TrialSpec) -> list[TrialRecord]:
        """Recorded attempts at this very trial: same id *and* same model, seed and training."""
        return [r for r in self.attempts.get(trial.trial_id, []) if r.matches(trial)]

    def finished(self, trial: TrialSpec) -> Optional[TrialResult]:
        """The final result of a trial already recorded, if no retry is owed."""
        done = self.attempts_of(trial)
        if done and not self.retry_allowed(done[-1].result, len(done)) \
                and not self._cut_short(trial, done[-1].result):
            return done[-1].result
        return None

    def _cut_short(self, trial: TrialSpec, result: TrialResult) -> bool:
        """A timeout under a smaller limit than this run's (or when it now has none)."""
        return result.status == "timeout" and self.limits.cut_short(result, self._limit(trial))

    def _limit(self, trial: TrialSpec) -> Optional[float]:
        """The attempt's limit under the policy, from every trial this run has finished.

        Under auto, never less than a limit this trial already timed out under: the rate falls
        as larger models finish (they use the GPU better), and a retry given less time than the
        attempt that ran out of it would only run out sooner.
        """
        if not self.limits.auto:
            return self.limits.fixed_s
        limit = self.limits.for_trial(trial, ((r.trial.gflops, r.result) for rs in self.attempts.values()
                                              for r in rs))
        ran_out = [float(r.result.extra["time_limit_s"]) for r in self.attempts_of(trial)
                   if r.result.status == "timeout" and (r.result.extra or {}).get("time_limit_s")]
        return max([limit, *ran_out]) if limit is not None else limit

    def _limited(self, trials: list[TrialSpec]) -> list[TrialSpec]:
        return [dataclasses.replace(t, time_limit_s=self._limit(t)) for t in trials]

    def train(self, trials: list[TrialSpec],
              on_result: Optional[Callable[[TrialSpec, TrialResult], None]] = None) -> dict[str, TrialResult]:
        """Run trials (skipping finished ones), retrying per the experiment's policy.

        ``on_result`` sees every recorded attempt as it finishes.
        """
        final: dict[str, TrialResult] = {}
        todo: list[TrialSpec] = []
        for t in trials:
            cached = self.finished(t)
            if cached is not None:
                final[t.trial_id] = cached
                self.progress.trial_cached(t, cached)
            else:
                done = self.attempts_of(t)
                todo.append(dataclasses.replace(t, attempt=len(done) + 1,
                                                batch_scale=self._batch_scale([r.result for r in done])))
        while todo:
            self._stop_if_asked(todo, {})
            todo = self._limited(todo)  # auto: from every trial finished so far, retries included
            if self.on_pending:
                self.on_pending([t.trial_id for t in todo])
            batch: dict[str, TrialResult] = {}
            self.progress.batch_started(todo, self.runner.parallelism)

            stuck: list[TrialResult] = []

            def record(trial: TrialSpec, result: TrialResult) -> None:
                if result.disk_problem:  # not recorded: resume reruns it once the disk takes writes
                    stuck.append(result)
                    self.progress.trial_finished(trial, result)
                    return
                result = self.limits.stamp(result)
                entry = self.run_dir.append_trial(trial, result)
                self.attempts.setdefault(trial.trial_id, []).append(entry)
                if result.device_broken:
                    self.broken.append(result)
                batch[trial.trial_id] = result
                self.progress.trial_finished(trial, result)
                if on_result is not None:
                    on_result(trial, result)

            try:
                extra: dict[str, Any] = {}
                if takes(self.runner, "on_progress"):  # (a registered runner from before live progress)
                    extra["on_progress"] = self.progress.trial_progress
                if takes(self.runner, "should_stop"):  # x3d-expand stop: queued trials do not start
                    extra["should_stop"] = lambda: stop_requested(self.run_dir.path) is not None
                self.runner.run(todo, record, **extra)
            except DeviceBroken as exc:  # the serial runner's process: what to do, with this run's path
                raise DeviceBroken(
                    f"{exc.error} (in {exc.trial_id}, recorded failed): this process cannot use its GPU again. "
                    f"Finished trials are kept: '{self.again}' goes on in a new "
                    "process, retrying it as retries.failed allows (the Ray runner replaces such a worker by "
                    "itself)", exc.error, exc.trial_id) from None
            except NodeLost as exc:
                unfinished = len({t.trial_id for t in todo} - set(batch) - {r.trial_id for r in stuck})
                raise NodeLost(
                    f"{exc}; the search stopped. Finished trials are kept; the batch's {unfinished} unfinished "
                    f"(running or queued) are not recorded: '{self.again}' reruns "
                    "them on a new cluster") from None
            if stuck:  # the batch's other trials have finished and are recorded
                first = stuck[0]
                fix = disk_fix(first.disk_problem)
                raise DiskUnwritable(
                    f"{first.disk_problem} on a disk the trials write to: "
                    f"{'; '.join(f'{r.trial_id} ({r.error})' for r in stuck)}. Finished trials are kept: "
                    f"{fix}, then '{self.again}'", int(first.extra.get("errno") or 0))
            self._stop_if_asked(todo, batch, stuck)
            faulty = faulty_gpu(self.broken)
            if faulty:  # before the retries: they could land on it again
                raise DeviceBroken(f"{faulty}. The search stopped after the batch; finished trials are kept. Take "
                                   "that GPU out (drain the node, or restart its Ray node without it), then "
                                   f"'{self.again}' (the failed trials rerun as "
                                   "retries.failed allows; 'resume --set retries.failed=N' allows more)")
            final.update(batch)
            todo = [dataclasses.replace(t, attempt=t.attempt + 1,
                                        batch_scale=t.batch_scale * self._batch_scale([batch[t.trial_id]]))
                    for t in todo if self.retry_allowed(batch[t.trial_id], t.attempt)]
        return final

    def _stop_if_asked(self, todo: list[TrialSpec], batch: dict[str, TrialResult],
                       stuck: Sequence[TrialResult] = ()) -> None:
        """``x3d-expand stop`` asked: after the batch's running trials (recorded), before anything new."""
        asked = stop_requested(self.run_dir.path)
        if asked is None:
            return
        clear_stop(self.run_dir.path)  # acted on: the next session runs
        left = len({t.trial_id for t in todo} - set(batch) - {r.trial_id for r in stuck})
        by = f" by {asked['by']} at {asked['requested_at']}" if asked.get("by") else ""
        raise StopRequested(f"stopped as asked{by} (x3d-expand stop): the trials that were running finished and "
                            f"are recorded{f', {left} did not start' if left else ''}; '{self.again}' "
                            "continues", f"as asked{by} (x3d-expand stop)")

    def _batch_scale(self, results: list[TrialResult]) -> float:
        """Half the batch for each OOM among ``results``, when the retry policy asks for it."""
        if not self.retries.oom_halve_batch:
            return 1.0
        return 0.5 ** sum(r.status == "oom" for r in results)


FAULTY_AFTER = 2  # distinct trials one GPU broke in a session: a model's kernel bug breaks only its own


def faulty_gpu(broken: list[TrialResult]) -> str:
    """A GPU that broke the CUDA context of several trials' processes (illegal memory access, ECC, ...):
    a Ray worker on it is replaced each time, so without a stop it would fail trial after trial
    all week ('' when none). Keyed by host and CUDA_VISIBLE_DEVICES, the GPU Ray gave the worker."""
    by_gpu: dict[tuple[str, str], list[TrialResult]] = {}
    for r in broken:
        by_gpu.setdefault((str(r.extra.get("host") or "?"), str(r.extra.get("cuda_visible_devices") or "")),
                          []).append(r)
    for (host, gpu), results in by_gpu.items():
        trials = sorted({r.trial_id for r in results})
        if len(trials) >= FAULTY_AFTER:
            which = f"GPU CUDA_VISIBLE_DEVICES={gpu}" if gpu else "the GPU"
            return (f"{which} on {host} broke {len(trials)} trials' processes ({', '.join(trials)}: "
                    f"{results[-1].device_broken}): likely a faulty GPU (look for Xid errors in dmesg and "
                    f"'nvidia-smi -q -d ECC' on {host})")
    return ""

