"""Readability of a dataset's videos, checked once and recorded, not decoded again by every trial.

``x3d-expand data check`` writes ``.x3d-check.json`` in the dataset root:
per video (by path relative to the root) its size, mtime and either its
facts (frames, size, fps) or why it cannot be used. A trial with the frame
cache off reads that record; a video it does not cover (new, or changed
since) is only *probed* (opened, first frame decoded), never decoded whole.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

from expand.data.video import VideoError, check_video, probe
from expand.fileio import atomic_write

RECORD = ".x3d-check.json"


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


def readable(root: str, paths: Iterable[str]) -> dict[str, str]:
    """{path: reason} of the unusable videos among ``paths``, from the record or a cheap probe."""
    record = load_record(root)
    errors: dict[str, str] = {}
    for path in paths:
        rec = record.get(_rel(root, path))
        if rec is not None and rec.get("stamp") == _stamp(path):
            if not rec.get("ok"):
                errors[path] = rec.get("reason", "unreadable")
            continue
        try:
            probe(path)
        except VideoError as exc:
            errors[path] = str(exc)
    return errors
