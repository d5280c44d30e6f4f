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

The records are typed in ``records``, the lock is ``lock``; this module is the
folder's I/O and the one import the rest of the package needs. The package must
stay low in the import graph: no ``results``, ``plots`` or commands (rendering
sits above it).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

import yaml

from expand.fileio import append_line, atomic_write, cut_torn_tail, make_folder
from expand.run.lock import LockHolder, RunLock
from expand.run.records import (STATE_VERSION, Candidate, PathEntry, RunFileError, RunOrigin, RunState,
                                StepRecord, TrialLog, TrialRecord, parse_trial_line, latest_by_trial)
from expand.search.trial import TrialResult, TrialSpec
from expand.tables import clean_nans


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
        make_folder(self.path, "run folder")

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
            rec = parse_trial_line(line)
            if rec is None:
                partial += 1
            else:
                records.append(rec)
        torn = ""
        if tail.strip():
            rec = parse_trial_line(tail)
            if rec is None:
                torn, partial = tail, partial + 1
            else:
                records.append(rec)  # complete but for its newline: the writer adds it
        return TrialLog(records, partial, torn)

    def repair_trials(self) -> int:
        """Cut an unterminated last line off trials.jsonl (kept in .torn); returns bytes moved."""
        return cut_torn_tail(self.trials_path,
                             lambda tail: parse_trial_line(tail.decode("utf-8", errors="replace")) is not None)

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
