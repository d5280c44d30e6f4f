"""Readability of a dataset's videos, checked once and recorded, not decoded again by every trial.

``x3d-expand data check`` writes ``.x3d-check.json`` in the dataset root:
per video (by path relative to the root) its size, mtime and either its
facts (frames, size, fps) or why it cannot be used. A trial with the frame
cache off reads that record; a video it does not cover (new, or changed
since) is only *probed* (opened, first frame decoded), never decoded whole.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from expand.data.video import VideoError, check_video, probe
from expand.fileio import atomic_write

RECORD = ".x3d-check.json"


def unreadable_note(count: str, target: str = "") -> str:
    """The words for videos a search lists but cannot use, said alike at start-up and by ``show``.

    ``target`` is what to give ``data check`` (see :func:`check_target`); '' names no file.
    """
    return (f"{count} listed video(s) unreadable or missing, skipped by every trial "
            f"('x3d-expand data check {target or 'EXPERIMENT'}' says why)")


def check_target(data: Any, experiment: str = "") -> str:
    """What ``data check`` reads as the experiment's trials do: its dataset folder when the folder's
    layout says the same (SlowFast's train/val.csv, or train/ and val/ class folders), else ``experiment``.

    Why: a folder is read by its layout, so a Kinetics download (flat val/) or manifests with
    other names, a prefix or a separator were checked as something else, or refused.
    """
    same = (data.format == "csv" and (data.train, data.val, data.separator, data.path_prefix)
            == ("train.csv", "val.csv", " ", "")) or \
        (data.format == "folder" and (data.train, data.val) == ("train", "val"))
    return data.root if same and data.root else experiment


def _stamp(path: str) -> Optional[list[int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _rel(root: str, path: str) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root or os.curdir))


def load_record(root: str) -> dict[str, dict]:
    try:
        with open(os.path.join(root or os.curdir, RECORD), encoding="utf-8") as fh:
            data = json.load(fh)
        return data.get("videos", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def known_unusable(root: str, paths: Iterable[str]) -> set[str]:
    """The ``paths`` that are missing, or that ``data check`` recorded unreadable (unchanged since).

    Opens no video: what a whole-dataset step (an export's manifests) can afford to leave out at
    Kinetics scale, where probing every file takes as long as a ``data check``.
    """
    record = load_record(root)
    out = set()
    for path in paths:
        stamp = _stamp(path)
        rec = None if stamp is None else _recorded(record, root, path, stamp)
        if stamp is None or (rec is not None and not rec.get("ok")):
            out.add(path)
    return out


def check_all(root: str, paths: list[str], workers: int = 4,
              on_done: Optional[Callable[[int, int], None]] = None) -> dict[str, dict]:
    """Check every video in parallel (threads: PyAV releases the GIL); {path: facts or {'error': reason}}."""
    def one(path: str) -> dict:
        try:
            return {"ok": True, **check_video(path)}
        except VideoError as exc:
            return {"ok": False, "reason": str(exc)}

    out: dict[str, dict] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i, (path, res) in enumerate(zip(paths, pool.map(one, paths))):
            out[path] = res
            if on_done:
                on_done(i + 1, len(paths))
    return out


def save_record(root: str, results: dict[str, dict]) -> Optional[str]:
    """Merge results into the root's record; returns the file, or None when the root is not writable."""
    record = load_record(root)
    for path, res in results.items():
        record[_rel(root, path)] = {**res, "stamp": _stamp(path)}
    target = os.path.join(root or os.curdir, RECORD)
    try:
        atomic_write(target, json.dumps({"version": 1, "videos": record}, indent=0))
    except OSError:
        return None
    return target


def _recorded(record: dict[str, dict], root: str, path: str, stamp: Optional[list[int]]) -> Optional[dict]:
    """The record's entry for ``path`` while the file is as it was checked (None: not recorded, or changed)."""
    rec = record.get(_rel(root, path))
    return rec if rec is not None and rec.get("stamp") == stamp else None


def readable(root: str, paths: Iterable[str]) -> dict[str, str]:
    """{path: reason} of the unusable videos among ``paths``, from the record or a cheap probe."""
    record = load_record(root)
    errors: dict[str, str] = {}
    for path in paths:
        rec = _recorded(record, root, path, _stamp(path))
        if rec is not None:
            if not rec.get("ok"):
                errors[path] = rec.get("reason", "unreadable")
            continue
        try:
            probe(path)
        except VideoError as exc:
            errors[path] = str(exc)
    return errors


MANIFEST_NAMES = ("train.csv", "val.csv", "test.csv")
EXPERIMENT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class CheckSplit:
    """One list of videos that ``data check`` looks at: a manifest, a class-folder tree or an experiment split."""

    name: str
    root: str  # the dataset root the record is written in
    items: list  # manifest Items


def check_splits(target: str, num_classes: Optional[int] = None,
                 settings: Optional[dict] = None) -> list[CheckSplit]:
    """What ``target`` names: an experiment (its splits as trials read them), a manifest, or a dataset folder.

    A folder is read as SlowFast's layout when it holds ``train.csv``,
    ``val.csv`` or ``test.csv`` (the layout ``data synth`` writes), as
    ``train/`` and ``val/`` class-folder trees when it has those, and as one
    class-folder tree otherwise. ``settings``: an experiment's ``--set`` (as the search got them).
    """
    from expand.data.manifest import read_csv_manifest, read_folder_dataset
    from expand.errors import DataError

    if not os.path.exists(target) and os.sep not in target:  # a shipped experiment's name, as `search` takes
        from expand.config import resolve_experiment_path
        from expand.errors import ConfigError

        with contextlib.suppress(ConfigError):
            target = resolve_experiment_path(target)
    is_experiment = os.path.isfile(target) and target.lower().endswith(EXPERIMENT_SUFFIXES)
    if settings and not is_experiment:
        raise DataError(f"{target}: --set changes an experiment's keys; this is not an experiment file")
    if is_experiment:
        from expand.data.manifest import split_items
        from expand.preflight import configured

        data = configured(target, {}, settings).data
        if not data.root:
            raise DataError(f"{target}: data.root is not set: the experiment reads no videos")
        names = ("train", "val", "minival") if data.minival else ("train", "val")
        return [CheckSplit(n, data.root, split_items(data, n)) for n in names]
    if os.path.isfile(target):
        root = os.path.dirname(os.path.abspath(target))
        return [CheckSplit(os.path.basename(target), root, read_csv_manifest(target, num_classes=num_classes))]
    if not os.path.isdir(target):
        raise DataError(f"{target}: no such dataset folder, manifest or experiment")
    manifests = [n for n in MANIFEST_NAMES if os.path.isfile(os.path.join(target, n))]
    if manifests:
        return [CheckSplit(n, target, read_csv_manifest(os.path.join(target, n), num_classes=num_classes))
                for n in manifests]
    annotations = _kinetics_annotations(target)
    if annotations:  # its val/ is flat: read as class folders, it was "no class folders"
        raise DataError(f"{target}: a Kinetics download ({annotations}): check it through an experiment "
                        "with data.format: kinetics (experiments/kinetics400_gpus.yaml says how)")
    trees = [n for n in ("train", "val", "test") if os.path.isdir(os.path.join(target, n))]
    if "train" in trees:
        train, classes = read_folder_dataset(os.path.join(target, "train"))
        return [CheckSplit("train", target, train)] + [
            CheckSplit(n, target, read_folder_dataset(os.path.join(target, n), classes)[0]) for n in trees[1:]]
    return [CheckSplit(os.path.basename(os.path.normpath(target)), target, read_folder_dataset(target)[0])]


def _kinetics_annotations(folder: str) -> str:
    """The first Kinetics annotation CSV in ``folder`` or its ``annotations/`` ('' when none)."""
    from expand.data.kinetics import looks_like_annotations

    for where in (folder, os.path.join(folder, "annotations")):
        try:
            names = sorted(n for n in os.listdir(where) if n.lower().endswith(".csv"))
        except OSError:
            continue
        for name in names:
            if looks_like_annotations(os.path.join(where, name)):
                return os.path.relpath(os.path.join(where, name), folder)
    return ""
