"""Decoded-frame cache: decode each video once, let every trial memory-map it.

An entry is ``<key>.npy`` (uint8 T x H x W x 3) where the key hashes the
video's absolute path, size and mtime with the decode settings (fps, short
side): a changed file or setting is a new key, so stale frames are never
read. Entries are written to a temp file and renamed into place (atomic
publish): many readers, one writer per entry, no reader sees half an array.
An unreadable video gets a ``<key>.err`` entry with the reason, so it is
skipped consistently without being decoded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from expand.data.video import VideoError, decode_video
from expand.fileio import atomic_write, atomic_writer

CACHE_VERSION = 1


@dataclass(frozen=True)
class CacheEntry:
    path: str
    frames: np.ndarray | None
    error: str = ""


class FrameCache:
    def __init__(self, directory: str, fps: float, short_side: int) -> None:
        self.directory = os.path.abspath(directory)
        self.fps = float(fps)
        self.short_side = int(short_side)
        os.makedirs(self.directory, exist_ok=True)

    def key(self, path: str) -> str:
        st = os.stat(path)
        text = f"{CACHE_VERSION}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self.fps}|{self.short_side}"
        return hashlib.sha1(text.encode()).hexdigest()

    def _files(self, path: str) -> tuple[str, str]:
        k = self.key(path)
        return os.path.join(self.directory, k + ".npy"), os.path.join(self.directory, k + ".err")

    def get(self, path: str) -> CacheEntry | None:
        """The cached entry, or None if this video (as it is now) was never decoded."""
        if not os.path.exists(path):
            return CacheEntry(path, None, "missing file")
        npy, err = self._files(path)
        if os.path.exists(npy):
            return CacheEntry(path, np.load(npy, mmap_mode="r"))
        if os.path.exists(err):
            with open(err, encoding="utf-8") as fh:
                return CacheEntry(path, None, json.load(fh)["reason"])
        return None

    def build_one(self, path: str) -> CacheEntry:
        entry = self.get(path)
        if entry is not None:
            return entry
        npy, err = self._files(path)
        try:
            frames = decode_video(path, self.fps, self.short_side)
        except VideoError as exc:
            atomic_write(err, json.dumps({"path": path, "reason": str(exc)}))
            return CacheEntry(path, None, str(exc))
        with atomic_writer(npy, binary=True) as fh:  # readers never see half an entry
            np.save(fh, frames)
        return CacheEntry(path, np.load(npy, mmap_mode="r"))

    def build(self, paths: Iterable[str], workers: int = 1, progress: bool = False) -> dict[str, str]:
        """Decode every path not cached yet (in parallel); returns {path: error} of the bad ones."""
        paths = list(dict.fromkeys(paths))
        todo = [p for p in paths if self.get(p) is None]
        errors: dict[str, str] = {}
        done = 0
        if todo and workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for p, error in zip(todo, pool.map(_build_worker, [(self.directory, self.fps, self.short_side, p)
                                                                    for p in todo], chunksize=4)):
                    done += 1
                    if error:
                        errors[p] = error
                    _progress(progress, done, len(todo))
        else:
            for p in todo:
                entry = self.build_one(p)
                done += 1
                if entry.error:
                    errors[p] = entry.error
                _progress(progress, done, len(todo))
        for p in paths:
            if p not in errors:
                entry = self.get(p)
                if entry is not None and entry.error:
                    errors[p] = entry.error
        return errors


def _build_worker(args: tuple) -> str:
    directory, fps, short_side, path = args
    return FrameCache(directory, fps, short_side).build_one(path).error


def _progress(enabled: bool, done: int, total: int) -> None:
    if enabled and (done == total or done % max(1, total // 20) == 0):
        width = 30
        filled = int(width * done / max(total, 1))
        print(f"\r  decoding [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
              end="\n" if done == total else "", file=sys.stderr, flush=True)


def default_cache_dir(data_root: str) -> str:
    return os.path.join(data_root, ".x3d-frame-cache")
