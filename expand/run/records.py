"""What the run folder holds, typed: trials.jsonl's records and state.json's fields.

Pure data and validation, no I/O: ``expand.run.RunDir`` reads and writes the
files and hands these out. Apart from the folder's I/O because most of the
package (the coordinator, the decisions, the tables) needs the records and
never the files: a corrupt or foreign state is a :class:`RunFileError`
naming the file and the field, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from expand.errors import InputError, SpecError
from expand.search.trial import TrialResult, TrialSpec
from expand.spec import ArchSpec
from expand.tables import num

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


def parse_trial_line(line: str) -> Optional[TrialRecord]:
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
                   num(d["gflops"]), int(d.get("params") or 0), num(d.get("top1")), num(d.get("top5")))


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
                kw[k] = num(kw[k])
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
        return cls(int(d["step"]), str(d["parent_id"]), num(d["parent_gflops"]), num(d.get("parent_top1")),
                   d.get("chosen_axis"), str(d.get("rule", "")),
                   [Candidate.from_dict(c) for c in d["candidates"]], num(d.get("confidence")),
                   num(d.get("seed_std")), str(d.get("seed_std_source") or ""),
                   str(d.get("confidence_method") or ""), int(d.get("extra_trials") or 0))


@dataclass
class RunOrigin:
    """Where a run came from, so ``resume`` can reload its experiment."""

    experiment_source: Optional[str] = None
    overrides: dict[str, Any] = field(default_factory=dict)  # the search section's flags: max_steps, seed, ...
    address: Optional[str] = None
    settings: dict[str, Any] = field(default_factory=dict)  # --set: dotted key -> value


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
              "experiment_source", "overrides", "settings", "address", "version", "updated")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            **self.extra,
            "experiment_source": self.origin.experiment_source,
            "overrides": self.origin.overrides,
            "settings": self.origin.settings,
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
        settings = d.get("settings") or {}
        if not isinstance(settings, dict):
            raise RunFileError(f"{where}: settings: expected an object")
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
            origin=RunOrigin(d.get("experiment_source"), overrides, d.get("address"), settings),
            stop_reason=str(d.get("stop_reason") or ""), selection_rule=str(d.get("selection_rule") or ""),
            pending=[str(p) for p in pending], path=path, steps=steps,
            extra={k: v for k, v in d.items() if k not in cls._TYPED and k != "step"},
        )


def _why(exc: BaseException) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
