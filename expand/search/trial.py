"""TrialSpec and TrialResult: what flows from the coordinator to a trial function and back.

A trial function is any callable ``(TrialSpec) -> TrialResult`` named as
``module:function`` in the experiment. The coordinator never imports training
code, so it is tested against the analytic oracle in seconds, and a user can
plug in their own trainer. A trial that raises is turned into a ``failed``
result here: failures are results, never exceptions that stop a search. The
one exception is a disk that cannot take writes (full, read-only), which no retry
or other model fixes: the result is marked, and the executor stops the search
after its batch (``DiskUnwritable``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from expand.errors import ConfigError, broken_device, disk_error_in, disk_problem, loader_death
from expand.spec import ArchSpec

STATUSES = ("ok", "failed", "diverged", "oom", "timeout")


# data keys that are paths: moving a dataset does not change what a trial learns (fingerprint)
_DATA_PATHS = ("root", "cache")


@dataclass(frozen=True)
class TrialSpec:
    """One model to train: its spec, where it sits in the search, and how to train it."""

    trial_id: str
    step: int
    axis: str
    spec: ArchSpec
    seed: int
    gflops: float
    params: int
    experiment: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    out_dir: str = ""
    attempt: int = 1
    parent_id: Optional[str] = None
    # this attempt's batch relative to the schedule's (0.5 after one OOM with
    # retries.oom_halve_batch); an attempt-level adaptation, not in the fingerprint
    batch_scale: float = 1.0
    # seconds this attempt may run (expand.search.time_limits: trial.time_limit_s, fixed or derived
    # from the run's measured seconds per GFLOP); None: the runner's own limit, if any
    time_limit_s: Optional[float] = None

    def to_dict(self, with_experiment: bool = True) -> dict[str, Any]:
        d = {
            "trial_id": self.trial_id,
            "step": self.step,
            "axis": self.axis,
            "spec": self.spec.to_dict(),
            "seed": self.seed,
            "gflops": self.gflops,
            "params": self.params,
            "out_dir": self.out_dir,
            "attempt": self.attempt,
            "parent_id": self.parent_id,
            "batch_scale": self.batch_scale,
            "time_limit_s": self.time_limit_s,
        }
        if with_experiment:
            d["experiment"] = self.experiment
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["spec"] = ArchSpec.from_dict(d["spec"])
        return cls(**d)

    def fingerprint(self) -> str:
        """What was trained and how: spec, seed, trial function and options, schedule, data sampling.

        Resume matches finished trials on this, not on the trial id, so a forced
        resume after the search space or the schedule changed retrains instead
        of attaching an old result to a different model. Paths (data root, cache)
        are left out: moving a dataset does not change what a trial learns.
        """
        exp = self.experiment or {}
        trial = exp.get("trial") or {}
        data = {k: v for k, v in (exp.get("data") or {}).items() if k not in _DATA_PATHS}
        payload = {"spec": self.spec.to_dict(), "seed": self.seed, "function": trial.get("function"),
                   "options": trial.get("options"), "schedule": exp.get("schedule"), "data": data}
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# The experiment keys a trial's fingerprint reads, directly or through its spec and seed (keys as
# api.diff_keys writes them). Changing any other one (paths, retries, resources, the runner, the
# targets) reruns no finished trial: `resume --force` says so.
_FINGERPRINTED = ("schedule.", "data.", "trial.function", "trial.options", "search_space.", "search.seed")


def reruns_trials(key: str) -> bool:
    """Does changing experiment key ``key`` change trials' fingerprints (so they train again)?"""
    return key.startswith(_FINGERPRINTED) and key not in {f"data.{k}" for k in _DATA_PATHS}


@dataclass
class TrialResult:
    """What a trial reports. Metrics are fractions in [0, 1]; NaN where not measured."""

    trial_id: str
    status: str
    top1: float = math.nan
    top5: float = math.nan
    val_loss: float = math.nan
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    train_clips_per_s: float = math.nan
    infer_clips_per_s: float = math.nan
    gflops: float = math.nan
    params: int = 0
    peak_mem_gib: float = math.nan
    error: str = ""
    seed: int = 0
    attempt: int = 1
    device: str = ""
    gpus: float = 0.0
    data_wait_fraction: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)
    # which selection videos the trial got right, as packed bits (expand.search.confidence):
    # the step's candidates are compared on the same videos ({} when the function reports none)
    per_video: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def disk_problem(self) -> str:
        """Why a disk could not take the trial's writes ('' if it could; ``expand.errors.disk_problem``)."""
        return str((self.extra or {}).get("disk_problem") or "")

    @property
    def error_line(self) -> str:
        """The error's first line, for a progress line, a table cell or a stop reason.

        torch's CUDA errors add lines of advice ("CUDA kernel errors might be
        asynchronously reported..."); trials.jsonl keeps the whole text.
        """
        return (self.error or "").strip().split("\n", 1)[0]

    @property
    def device_broken(self) -> str:
        """The CUDA error that left the trial's process unable to use its GPU ('' if none did)."""
        return str((self.extra or {}).get("device_broken") or "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialResult":
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: (math.nan if v is None and k not in ("extra", "per_video", "error") else v)
                  for k, v in d.items() if k in known}
        return cls(**kwargs)


def failed_result(trial: TrialSpec, error: str, disk_error: Optional[OSError] = None) -> TrialResult:
    """A ``failed`` result for a trial that produced none (its worker died, the runner stopped).

    With ``disk_error`` (a full or broken disk stopped it) the result is marked so the
    executor stops the search instead of recording it (see :func:`disk_extra`).
    """
    return TrialResult(trial.trial_id, "failed", error=error, seed=trial.seed, attempt=trial.attempt,
                       extra=disk_extra(disk_error))


def disk_extra(disk_error: Optional[BaseException]) -> dict:
    """A failed result's mark for a disk that could not take writes (``{}`` for any other error)."""
    problem = disk_problem(disk_error) if disk_error is not None else ""
    return {"disk_problem": problem, "errno": disk_error.errno} if problem else {}  # type: ignore[union-attr]


def timeout_result(trial: TrialSpec, seconds: float, limit_s: float, how: str) -> TrialResult:
    """A ``timeout`` result: the attempt ran past ``trial.time_limit_s`` and was stopped ``how``.

    The limit goes in ``extra`` so a resume under a larger limit knows the
    attempt was cut short, not finished (see TrialExecutor.retry_allowed).
    """
    took = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
    return TrialResult(trial.trial_id, "timeout", seconds=seconds, seed=trial.seed, attempt=trial.attempt,
                       error=f"stopped after {took} s: trial.time_limit_s is {limit_s:g} ({how})",
                       extra={"time_limit_s": limit_s})


class TrialTimeout(BaseException):
    """Raised into an in-process trial at its time limit.

    A BaseException, like KeyboardInterrupt, so a trial function's own
    ``except Exception`` (the trainer's OOM handling) does not swallow it.
    """


@contextlib.contextmanager
def time_limit(seconds: Optional[float]) -> Iterator[bool]:
    """Raise :class:`TrialTimeout` in this thread after ``seconds`` (None: no limit).

    Yields whether the limit is enforced: it takes SIGALRM, so only the main
    thread of a process can have one; elsewhere the block runs unlimited.
    Why a signal: it interrupts a blocking wait (a loader's queue, a sleep),
    which a watchdog thread could not; a C call that never returns is out of
    its reach, which only a separate process (the Ray runner) can stop.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def expire(signum: int, frame: Any) -> None:
        raise TrialTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def derive_seed(run_seed: int, *parts: Any) -> int:
    """A reproducible 31-bit seed from the run seed and a position (e.g. the step)."""
    text = "|".join(str(p) for p in (run_seed, *parts))
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def load_trial_function(path: str) -> Callable[[TrialSpec], TrialResult]:
    """Import ``module:function``; a bad name is a ConfigError naming the field."""
    module_name, _, func_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"trial.function: cannot import {module_name!r}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"trial.function: {module_name!r} has no function {func_name!r}")
    return func


ATTEMPTED_ON = "x3d_expand_device"  # the attribute a trial function's error carries its device in


def attempted_on(exc: BaseException, device: str) -> BaseException:
    """``exc``, marked with the device the attempt trained on, for the failed result to record
    (``show --trials``: a GPU that fails trial after trial is seen by its name)."""
    with contextlib.suppress(AttributeError, TypeError):  # a builtin that takes no attributes
        setattr(exc, ATTEMPTED_ON, device)
    return exc


def call_safely(func: Callable[[TrialSpec], TrialResult], trial: TrialSpec,
                time_limit_s: Optional[float] = None) -> TrialResult:
    """Run a trial function; an exception becomes a ``failed`` result with its message.

    With ``time_limit_s`` (in the main thread: see :func:`time_limit`), an
    attempt still running then is interrupted and becomes a ``timeout`` result.
    """
    start = time.perf_counter()
    try:
        with time_limit(time_limit_s):
            result = func(trial)
        if not isinstance(result, TrialResult):
            raise TypeError(f"trial function returned {type(result).__name__}, not TrialResult")
    except TrialTimeout:
        result = timeout_result(trial, time.perf_counter() - start, time_limit_s or 0.0, "interrupted in process")
    except Exception as exc:  # noqa: BLE001 - any trial error is data, not a crash
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        # a disk that cannot take writes is marked: the executor stops the search instead of recording it
        loader = loader_death(exc)  # torch's own line names neither the cause nor the fix: add it to
        if loader:                  # the first line, the one progress and tables show (error_line)
            first, _, rest = tb.partition("\n")
            tb = f"{first} ({loader})" + (f"\n{rest}" if rest else "")
        result = TrialResult(trial.trial_id, "failed", error=tb, extra=disk_extra(disk_error_in(exc)),
                             device=getattr(exc, ATTEMPTED_ON, ""))
        broken = broken_device(exc)
        if broken:  # the runner replaces this process before another trial runs in it
            result.extra["device_broken"] = broken
            # which physical GPU (Ray sets this per worker): one that breaks trials again is taken for faulty
            result.extra["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if result.status not in STATUSES:
        result.error = f"unknown status {result.status!r}; {result.error}".strip("; ")
        result.status = "failed"
    result.trial_id = trial.trial_id
    result.seed = trial.seed
    result.attempt = trial.attempt
    if not result.seconds:
        result.seconds = time.perf_counter() - start
    if math.isnan(result.gflops):
        result.gflops = trial.gflops
    if not result.params:
        result.params = trial.params
    # where it ran: on a cluster, failures or slowness that follow one machine (a bad GPU, another
    # torch) show up by host (`show`, Run.trials); the driver's environment.jsonl names only its own
    result.extra.setdefault("host", socket.gethostname())
    torch = sys.modules.get("torch")  # not imported for it: a trial function without torch has none
    if torch is not None and getattr(torch, "__version__", None):
        result.extra.setdefault("torch", str(torch.__version__))
    return result
