"""The run folder's one owner: create, open, lock, typed state, every write, torn-tail repair.

A search can run for a week; whatever happens to the process, the disk or the
person typing, ``results/<run>/`` must stay a true record. So:

* **One writer.** Any process that writes takes an exclusive ``flock`` on
  ``.lock`` (taken on the first write if the command did not take it
  earlier); a second writer gets an :class:`InputError` naming the holder's
  pid, host and command. The kernel drops the lock when the holder dies, even
  by kill -9. Readers (``show``, ``plot``, ``compare``, ``load_run``) never
  lock and never block: every file is replaced atomically (``fileio``).
* **An append-only log.** ``trials.jsonl`` gets one fsynced line per finished
  trial attempt. A torn last line (power loss, full disk) is cut off by the
  next writer and kept in ``trials.jsonl.torn``; its trial reruns. A record
  carries the fingerprint of what was trained (spec, trial function, seed,
  schedule, data), so resume never attaches a result to a different model.
* **Typed state.** ``state.json`` is read through :class:`RunState`: a
  corrupt or foreign file is an :class:`InputError` naming the file and the
  field, never a traceback.

This module must stay low in the import graph: no ``results``, ``plots`` or
commands (rendering sits above it).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import yaml

from expand.errors import InputError, SpecError
from expand.fileio import append_line, atomic_write, cut_torn_tail
from expand.search.trial import TrialResult, TrialSpec
from expand.spec import ArchSpec
from expand.tables import clean_nans

STATE_VERSION = 1
# an expansion, a calibration, or a baseline named by its method (expand.baselines.METHODS, which
# a user may extend: any other identifier is read as a baseline's)
RUN_KINDS = ("expansion", "calibration")
RUN_STATUSES = ("starting", "running", "finished", "failed")


class RunFileError(InputError):
    """A run file that is corrupt, foreign or from an incompatible version."""


# ---------------------------------------------------------------- trial log
@dataclass
class TrialRecord:
    """One line of trials.jsonl: the trial as asked for and what came back."""

    trial: TrialSpec
    result: TrialResult
    finished_at: float
    fingerprint: str = ""  # empty in logs written before fingerprints existed

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.trial.to_dict(with_experiment=False),
            "fingerprint": self.fingerprint,
            "result": self.result.to_dict(),
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialRecord":
        d = dict(d)
        result = TrialResult.from_dict(d.pop("result"))
        finished = d.pop("finished_at", 0.0)
        fingerprint = d.pop("fingerprint", "") or ""
        return cls(TrialSpec.from_dict(d), result, finished, fingerprint)

    def matches(self, trial: TrialSpec) -> bool:
        """Was this record a run of ``trial`` (the same model, trained the same way)?"""
        if self.fingerprint:
            return self.fingerprint == trial.fingerprint()
        return self.trial.spec == trial.spec and self.trial.seed == trial.seed


@dataclass
class TrialLog:
    records: list[TrialRecord]
    partial_lines: int  # lines that could not be parsed, the torn tail included
    torn_tail: str = ""  # an unterminated, unparsable last line (cut by the next writer)


def _parse_line(line: str) -> Optional[TrialRecord]:
    """A record from one line; a line glued onto a torn fragment is salvaged from its last record."""
    try:
        return TrialRecord.from_dict(json.loads(line))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, SpecError):
        pass
    start = line.find('{"trial_id"', 1)
    while start > 0:  # the glued record starts at one of these (its result holds one more)
        try:
            return TrialRecord.from_dict(json.loads(line[start:]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, SpecError):
            start = line.find('{"trial_id"', start + 1)
    return None


def latest_by_trial(records: Iterable[TrialRecord]) -> dict[str, list[TrialRecord]]:
    """Attempts of each trial id, in the order they finished."""
    out: dict[str, list[TrialRecord]] = {}
    for r in records:
        out.setdefault(r.trial.trial_id, []).append(r)
    return out


# ---------------------------------------------------------------- typed state
def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


@dataclass
class PathEntry:
    """One model on the expansion path: the basis, then each step's chosen candidate."""

    step: int
    axis: str
    trial_id: str
    spec: ArchSpec
    gflops: float
    params: int
    top1: float
    top5: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PathEntry":
        return cls(int(d["step"]), str(d["axis"]), str(d["trial_id"]), ArchSpec.from_dict(d["spec"]),
                   _num(d["gflops"]), int(d.get("params") or 0), _num(d.get("top1")), _num(d.get("top5")))


@dataclass
class Candidate:
    """One axis of one step: trained, skipped (with why) or a duplicate of another axis."""

    step: int
    axis: str
    spec: Optional[ArchSpec]
    gflops: float = math.nan
    params: int = 0
    ratio: float = math.nan
    trial_id: Optional[str] = None
    status: str = "pending"  # pending | ok | failed | diverged | oom | timeout | skipped | duplicate
    reason: str = ""
    top1: float = math.nan  # the mean over ``seeds`` trained seeds
    top5: float = math.nan
    chosen: bool = False
    # P(the selection rule picks this candidate), paired bootstrap + seed noise (search/confidence.py)
    confidence: float = math.nan
    top1_se: float = math.nan  # std of top1 under that same estimate (the plot's error bar)
    seeds: int = 1
    seed_trials: list[str] = field(default_factory=list)  # confirmation trials (new seeds) averaged in

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict() if self.spec else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Candidate":
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["spec"] = ArchSpec.from_dict(d["spec"]) if d.get("spec") else None
        for k in ("gflops", "ratio", "top1", "top5", "confidence", "top1_se"):
            if k in kw:
                kw[k] = _num(kw[k])
        return cls(**kw)


@dataclass
class StepRecord:
    """One expansion step: its parent, every candidate and the chosen axis (None: no pick)."""

    step: int
    parent_id: str
    parent_gflops: float
    parent_top1: float
    chosen_axis: Optional[str]
    rule: str
    candidates: list[Candidate]
    confidence: float = math.nan  # the chosen candidate's
    seed_std: float = math.nan  # the seed-to-seed std the confidence assumed, and where it came from
    seed_std_source: str = ""
    confidence_method: str = ""
    extra_trials: int = 0  # confirmation trials this step trained

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "candidates"}
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepRecord":
        return cls(int(d["step"]), str(d["parent_id"]), _num(d["parent_gflops"]), _num(d.get("parent_top1")),
                   d.get("chosen_axis"), str(d.get("rule", "")),
                   [Candidate.from_dict(c) for c in d["candidates"]], _num(d.get("confidence")),
                   _num(d.get("seed_std")), str(d.get("seed_std_source") or ""),
                   str(d.get("confidence_method") or ""), int(d.get("extra_trials") or 0))


@dataclass
class RunOrigin:
    """Where a run came from, so ``resume`` can reload its experiment."""

    experiment_source: Optional[str] = None
    overrides: dict[str, Any] = field(default_factory=dict)
    address: Optional[str] = None


@dataclass
class RunState:
    """``state.json``, typed. ``extra`` keeps the kind-specific fields (a baseline's budget, best, ...)."""

    kind: str
    name: str
    status: str
    origin: RunOrigin = field(default_factory=RunOrigin)
    stop_reason: str = ""
    selection_rule: str = ""
    pending: list[str] = field(default_factory=list)
    path: list[PathEntry] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    _TYPED = ("kind", "name", "status", "stop_reason", "selection_rule", "pending", "path", "steps",
              "experiment_source", "overrides", "address", "version", "updated")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            **self.extra,
            "experiment_source": self.origin.experiment_source,
            "overrides": self.origin.overrides,
            "address": self.origin.address,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "selection_rule": self.selection_rule,
            "pending": list(self.pending),
        }
        if self.kind == "expansion":
            d["step"] = len(self.path) - 1
            d["path"] = [p.to_dict() for p in self.path]
            d["steps"] = [s.to_dict() for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "RunState":
        """Validate a state mapping; every problem is a RunFileError naming ``where`` and the field."""
        if not isinstance(d, dict):
            raise RunFileError(f"{where}: expected a JSON object, got {type(d).__name__}")
        version = d.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise RunFileError(f"{where}: state version {version!r}, this x3d-expand reads {STATE_VERSION}")
        kind = d.get("kind", "expansion")
        if kind not in RUN_KINDS and (kind != d.get("method") or not isinstance(kind, str)):
            raise RunFileError(f"{where}: kind: {kind!r} is not a run kind ({', '.join(RUN_KINDS)} "
                               "or the baseline method the state names)")
        status = d.get("status", "running")
        if status not in RUN_STATUSES:
            raise RunFileError(f"{where}: status: {status!r} is not one of {', '.join(RUN_STATUSES)}")
        overrides = d.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise RunFileError(f"{where}: overrides: expected an object")
        try:
            path = [PathEntry.from_dict(p) for p in d.get("path") or []]
        except (KeyError, TypeError, ValueError, SpecError) as exc:
            raise RunFileError(f"{where}: path: not a list of path models ({_why(exc)})") from None
        try:
            steps = [StepRecord.from_dict(s) for s in d.get("steps") or []]
        except (KeyError, TypeError, ValueError, SpecError) as exc:
            raise RunFileError(f"{where}: steps: not a list of step records ({_why(exc)})") from None
        pending = d.get("pending") or []
        if not isinstance(pending, list):
            raise RunFileError(f"{where}: pending: expected a list of trial ids")
        return cls(
            kind=kind, name=str(d.get("name", "")), status=status,
            origin=RunOrigin(d.get("experiment_source"), overrides, d.get("address")),
            stop_reason=str(d.get("stop_reason") or ""), selection_rule=str(d.get("selection_rule") or ""),
            pending=[str(p) for p in pending], path=path, steps=steps,
            extra={k: v for k, v in d.items() if k not in cls._TYPED and k != "step"},
        )


def _why(exc: BaseException) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


# ---------------------------------------------------------------- the lock
@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    command: str
    since: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since)) if self.since else "?"
        return f"pid {self.pid} on {self.host} ({self.command or '?'}, since {started})"


_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _flock_patiently(fd: int, how: int, patience_s: float = 1.0) -> None:
    """``flock`` without blocking, retried for ``patience_s``: a reader's probe (``writer``) holds
    the lock for microseconds, and must not make a starting search fail as 'being written'."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in _BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class RunLock:
    """An exclusive ``flock`` on RUN/.lock, with the holder's pid, host and command in the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, command: str = "") -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _flock_patiently(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _BUSY:
                raise
            holder = self.holder()
            who = holder.describe() if holder else "another process"
            raise InputError(f"{os.path.dirname(self.path)}: the run is being written by {who}; "
                             "wait for it to finish or stop it (readers like 'show' work meanwhile)") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "command": command or " ".join(os.path.basename(a) if i == 0 else a
                                               for i, a in enumerate(sys.argv[:4]))}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def writer(self) -> Optional[LockHolder]:
        """Who holds the lock now (None: nobody; the run is not being written, whatever state.json says).

        A shared lock taken and dropped at once: a writer starting in that instant waits for it
        (see ``_flock_patiently``) instead of being told the run is busy.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in _BUSY:
                raise
            return self.holder() or LockHolder(0, "?", "", 0.0)
        finally:
            os.close(fd)  # closing drops the probe's lock
        return None

    def holder(self) -> Optional[LockHolder]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                d = json.load(fh)
            return LockHolder(int(d["pid"]), str(d["host"]), str(d.get("command", "")), float(d.get("since", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a RunDir dropped without release() must not hold the run forever
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter exit os/fcntl may already be gone
            pass


# ---------------------------------------------------------------- the folder
class RunDir:
    """Paths and I/O of ``results/<run>/``; writes take the run's lock."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.lock = RunLock(os.path.join(self.path, ".lock"))

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def config_path(self) -> str:
        return self.file("config.yaml")

    @property
    def state_path(self) -> str:
        return self.file("state.json")

    @property
    def trials_path(self) -> str:
        return self.file("trials.jsonl")

    @property
    def steps_path(self) -> str:
        return self.file("steps.csv")

    def exists(self) -> bool:
        """Does the folder hold a run (any of its files), even one killed before its first trial?"""
        return any(os.path.isfile(p) for p in (self.state_path, self.trials_path, self.config_path))

    # --- ownership ---
    def create(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise InputError(f"{self.path}: exists and is not a folder")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot create the run folder: {exc.strerror}") from None

    def acquire(self, command: str = "") -> "RunDir":
        """Become the run's one writer (exit 2 if another process is); repairs a torn trial log."""
        if not self.lock.held:
            self.create()
            self.lock.acquire(command)
            self.repair_trials()
        return self

    def release(self) -> None:
        self.lock.release()

    def writer(self) -> Optional[LockHolder]:
        """The process writing this run now, if any (see ``RunLock.writer``)."""
        return self.lock.writer()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def write_text(self, name: str, text: str | bytes) -> str:
        """Any run file other than the log, replaced atomically, under the lock."""
        self.acquire()
        path = self.file(name)
        atomic_write(path, text)
        return path

    # --- config ---
    def write_config(self, resolved: dict[str, Any]) -> None:
        self.write_text("config.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        try:
            with open(self.config_path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except FileNotFoundError:
            raise RunFileError(f"{self.path}: not a run folder (no config.yaml)") from None
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RunFileError(f"{self.config_path}: corrupt ({type(exc).__name__}); "
                               "the run's resolved experiment cannot be read") from None
        if not isinstance(data, dict):
            raise RunFileError(f"{self.config_path}: expected a mapping, got {type(data).__name__}")
        return data

    # --- trials ---
    def append_trial(self, trial: TrialSpec, result: TrialResult) -> TrialRecord:
        self.acquire()
        record = TrialRecord(trial, result, time.time(), trial.fingerprint())
        append_line(self.trials_path, json.dumps(clean_nans(record.to_dict()), allow_nan=False) + "\n")
        return record

    def read_trials(self) -> TrialLog:
        try:
            with open(self.trials_path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return TrialLog([], 0)
        text = data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        tail = lines.pop()  # "" when the file ends with a newline
        records, partial = [], 0
        for line in lines:
            if not line.strip():
                continue
            rec = _parse_line(line)
            if rec is None:
                partial += 1
            else:
                records.append(rec)
        torn = ""
        if tail.strip():
            rec = _parse_line(tail)
            if rec is None:
                torn, partial = tail, partial + 1
            else:
                records.append(rec)  # complete but for its newline: the writer adds it
        return TrialLog(records, partial, torn)

    def repair_trials(self) -> int:
        """Cut an unterminated last line off trials.jsonl (kept in .torn); returns bytes moved."""
        return cut_torn_tail(self.trials_path,
                             lambda tail: _parse_line(tail.decode("utf-8", errors="replace")) is not None)

    # --- state ---
    def write_state(self, state: dict[str, Any] | RunState) -> None:
        d = state.to_dict() if isinstance(state, RunState) else state
        RunState.from_dict(d, "state to write")  # a bug writing a bad state fails here, not at resume
        d = dict(d, version=STATE_VERSION, updated=time.time())
        self.write_text("state.json", json.dumps(clean_nans(d), indent=1, allow_nan=False))

    def read_state(self) -> dict[str, Any]:
        """state.json as a validated mapping (see :meth:`state` for the typed form)."""
        return self._load_state()[0]

    def state(self) -> RunState:
        return self._load_state()[1]

    def _load_state(self) -> tuple[dict[str, Any], RunState]:
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                d = json.load(fh)
        except FileNotFoundError:
            if os.path.isfile(self.config_path):  # killed before its first state: still a run
                d = {"kind": "expansion", "status": "starting", "name": ""}
            else:
                raise RunFileError(f"{self.path}: not a run folder (no config.yaml or state.json)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunFileError(f"{self.state_path}: corrupt ({type(exc).__name__}: {str(exc)[:80]})") from None
        return d, RunState.from_dict(d, self.state_path)


__all__ = [
    "RunDir", "RunLock", "RunState", "RunOrigin", "StepRecord", "PathEntry", "Candidate",
    "TrialRecord", "TrialLog", "RunFileError", "latest_by_trial", "STATE_VERSION",
]
