"""The files of one run folder, written so that a kill -9 loses at most one trial.

``trials.jsonl`` is append-only: one line per finished trial attempt, flushed
and fsynced before the coordinator moves on. It is the source of truth for
resume: the coordinator replays the search and finds every finished trial
there. ``state.json`` (path so far, pending trials, contractions) and
``steps.csv`` are derived views, replaced atomically (temp file + rename) so a
reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from expand.search.trial import TrialResult, TrialSpec
from expand.tables import clean_nans

STATE_VERSION = 1


def atomic_write(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class TrialRecord:
    """One line of trials.jsonl: the trial as asked for and what came back."""

    trial: TrialSpec
    result: TrialResult
    finished_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.trial.to_dict(with_experiment=False),
            "result": self.result.to_dict(),
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialRecord":
        d = dict(d)
        result = TrialResult.from_dict(d.pop("result"))
        finished = d.pop("finished_at", 0.0)
        return cls(TrialSpec.from_dict(d), result, finished)


@dataclass
class TrialLog:
    records: list[TrialRecord]
    partial_lines: int  # lines that could not be parsed (a half-written tail)


class RunDir:
    """Paths and I/O of ``results/<run>/``."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

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
        return os.path.isfile(self.state_path) or os.path.isfile(self.trials_path)

    def create(self) -> None:
        os.makedirs(self.path, exist_ok=True)

    # --- config ---
    def write_config(self, resolved: dict[str, Any]) -> None:
        atomic_write(self.config_path, yaml.safe_dump(resolved, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        with open(self.config_path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)

    # --- trials ---
    def append_trial(self, trial: TrialSpec, result: TrialResult) -> TrialRecord:
        record = TrialRecord(trial, result, time.time())
        line = json.dumps(clean_nans(record.to_dict()), allow_nan=False) + "\n"
        with open(self.trials_path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        return record

    def read_trials(self) -> TrialLog:
        records, partial = [], 0
        try:
            with open(self.trials_path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except FileNotFoundError:
            return TrialLog([], 0)
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(TrialRecord.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                partial += 1
        return TrialLog(records, partial)

    # --- state ---
    def write_state(self, state: dict[str, Any]) -> None:
        state = dict(state, version=STATE_VERSION, updated=time.time())
        atomic_write(self.state_path, json.dumps(clean_nans(state), indent=1, allow_nan=False))

    def read_state(self) -> dict[str, Any]:
        with open(self.state_path, encoding="utf-8") as fh:
            return json.load(fh)


def latest_by_trial(records: Iterable[TrialRecord]) -> dict[str, list[TrialRecord]]:
    """Attempts of each trial id, in the order they finished."""
    out: dict[str, list[TrialRecord]] = {}
    for r in records:
        out.setdefault(r.trial.trial_id, []).append(r)
    return out
