"""The frame cache: decode each video once, at the size the search can use, into a compact store.

An entry is ``<key><suffix>`` where the key hashes the video's absolute path,
size and mtime with the cache settings (fps, short side, format, quality): a
changed file or setting is a new key, so stale frames are never read.
Entries are streamed to a temp file (one frame in memory at a time, whatever
the video's length) and renamed into place (atomic publish): many readers,
any number of concurrent builders, no reader sees half an entry. An
unreadable video gets a ``<key>.err`` entry with the reason, so it is skipped
consistently without being decoded again. Formats: :mod:`expand.data.store`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from expand.data.store import FORMATS, SUFFIX, FrameSource, open_store, write_h264, write_jpeg
from expand.data.video import VideoError, iter_frames
from expand.fileio import atomic_write, atomic_writer, default_mode, naming
from expand.pools import process_pool

CACHE_VERSION = 2
DEFAULT_FORMAT = "h264"
# per format: JPEG quality, or for h264 the same 1-100 scale as an x264 CRF (75 -> CRF 23)
DEFAULT_QUALITY = {"jpeg": 90, "h264": 75, "npy": 100}


@dataclass(frozen=True)
class CacheEntry:
    path: str
    frames: Optional[FrameSource]
    error: str = ""


class FrameCache:
    def __init__(self, directory: str, fps: float, short_side: int, fmt: str = DEFAULT_FORMAT,
                 quality: Optional[int] = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"cache format {fmt!r}: one of {', '.join(FORMATS)}")
        self.directory = os.path.abspath(directory)
        self.fps = float(fps)
        self.short_side = int(short_side)
        self.format = fmt
        self.quality = int(quality if quality is not None else DEFAULT_QUALITY[fmt])
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:  # a parent that is a file, no permission, a read-only mount
            from expand.errors import DataError

            raise DataError(f"data.cache: cannot create the cache folder {self.directory}: {exc.strerror}; give "
                            "data.cache a folder this machine can write (--set data.cache=/scratch/x3d-frames), "
                            "or off to decode the videos as trials read them") from None

    def key(self, path: str) -> str:
        st = os.stat(path)
        text = (f"{CACHE_VERSION}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self.fps}|"
                f"{self.short_side}|{self.format}|{self.quality}")
        return hashlib.sha1(text.encode()).hexdigest()

    def _files(self, path: str) -> tuple[str, str]:
        k = self.key(path)
        return os.path.join(self.directory, k + SUFFIX[self.format]), os.path.join(self.directory, k + ".err")

    def entry_path(self, path: str) -> str:
        return self._files(path)[0]

    def get(self, path: str) -> CacheEntry | None:
        """The cached entry, or None if this video (as it is now) was never decoded or its entry
        was damaged (then it is removed, and ``build_one`` decodes the video again)."""
        if not os.path.exists(path):
            return CacheEntry(path, None, "missing file")
        store = self.entry_path(path)
        if os.path.exists(store):
            try:
                return CacheEntry(path, open_store(store, self.format, self.fps))
            except Exception as exc:  # noqa: BLE001 - any unreadable entry is rebuilt from its video
                self.discard(path, exc)
                return None
        error = self.error(path)
        return CacheEntry(path, None, error) if error else None

    def discard(self, path: str, why: BaseException | str) -> None:
        """Remove a damaged entry (cut short by a crash or a full disk, a disk error, a partial
        copy): one bad file among a million must not fail every trial of a week-long search."""
        import sys

        store = self.entry_path(path)
        print(f"x3d-expand: damaged frame-cache entry for {path} ({why}); decoding the video again",
              file=sys.stderr, flush=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store)

    def build_one(self, path: str) -> CacheEntry:
        entry = self.get(path)
        if entry is not None:
            return entry
        store, err = self._files(path)
        frames = (image for _, image in iter_frames(path, self.fps, self.short_side))
        try:
            write_store(store, self.format, frames, self.fps, self.quality)
        except VideoError as exc:
            atomic_write(err, json.dumps({"path": path, "reason": str(exc)}))
            return CacheEntry(path, None, str(exc))
        return CacheEntry(path, open_store(store, self.format, self.fps))

    def build(self, paths: Iterable[str], workers: int = 1, progress: bool = False,
              on_done: Optional[Callable[[int, int], None]] = None) -> dict[str, str]:
        """Decode every path not cached yet (in parallel); returns {path: error} of the bad ones.

        ``on_done(done, total)`` follows the videos decoded (a cluster's nodes report to the driver)."""
        paths = list(dict.fromkeys(paths))
        todo = [p for p in paths if not self.cached(p)]
        errors: dict[str, str] = {}
        done = 0
        from expand.console import CountProgress

        shown = CountProgress(len(todo), "decoding into the frame cache", enabled=progress)

        def _progress(n: int) -> None:
            shown(n)
            if on_done is not None:
                on_done(n, len(todo))

        if todo and workers > 1:
            args = [(self.directory, self.fps, self.short_side, self.format, self.quality, p) for p in todo]
            with process_pool(workers) as pool:
                # chunksize 1: a chunk handed to a worker cannot be cancelled (expand.pools)
                for p, error in zip(todo, pool.map(_build_worker, args)):
                    done += 1
                    if error:
                        errors[p] = error
                    _progress(done)
        else:
            for p in todo:
                entry = self.build_one(p)
                done += 1
                if entry.error:
                    errors[p] = entry.error
                _progress(done)
        for p in paths:
            if p not in errors:
                error = self.error(p)
                if error:
                    errors[p] = error
        return errors

    def cached(self, path: str) -> bool:
        """An entry (frames or a recorded error) exists for the video as it is now."""
        if not os.path.exists(path):
            return True  # nothing to build: reported as missing
        store, err = self._files(path)
        return os.path.exists(store) or os.path.exists(err)

    def error(self, path: str) -> str:
        """The recorded reason a video is unusable ('' when it is cached fine or not yet built)."""
        if not os.path.exists(path):
            return "missing file"
        err = self._files(path)[1]
        if os.path.exists(err):
            with open(err, encoding="utf-8") as fh:
                return json.load(fh)["reason"]
        return ""


def write_store(path: str, fmt: str, frames: Iterable[np.ndarray], fps: float, quality: int) -> None:
    """Stream frames into a store at ``path``, published atomically (a temp file renamed into place)."""
    if fmt == "jpeg":
        with atomic_writer(path, binary=True) as fh:
            write_jpeg(fh, frames, fps, quality)
        return
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=SUFFIX[fmt])
    os.close(fd)
    try:
        with naming(path):  # numpy's writes name no file
            if fmt == "h264":
                write_h264(tmp, frames, fps, crf=_crf(quality))
            else:
                _write_npy(tmp, frames)
            os.chmod(tmp, default_mode())
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _crf(quality: int) -> int:
    """The cache's one quality knob (1-100, as JPEG's) as an x264 CRF: 75 -> 23, 90 -> 18, 100 -> 15."""
    return int(round(max(0, min(51, 48 - quality / 3))))


def _write_npy(path: str, frames: Iterable[np.ndarray]) -> None:
    """A .npy of unknown length, streamed: raw frames first, then the header is written in front."""
    raw = path + ".raw"
    n, shape = 0, None
    try:
        with open(raw, "wb") as fh:
            for image in frames:
                fh.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
                n, shape = n + 1, image.shape
        if shape is None:
            raise VideoError("no decodable frames")
        with open(path, "wb") as out, open(raw, "rb") as fh:
            np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (n, *shape)})
            while chunk := fh.read(1 << 22):
                out.write(chunk)
    finally:
        if os.path.exists(raw):
            os.unlink(raw)


def _build_worker(args: tuple) -> str:
    directory, fps, short_side, fmt, quality, path = args
    return FrameCache(directory, fps, short_side, fmt, quality).build_one(path).error


def default_cache_dir(data_root: str) -> str:
    return os.path.join(data_root, ".x3d-frame-cache")


@dataclass(frozen=True)
class CacheEstimate:
    """What building the rest of a cache will take, measured on a sample of the videos still to do."""

    videos: int
    bytes: float
    seconds: float  # wall time with ``workers`` processes
    sampled: int
    free_bytes: int

    def describe(self, workers: int) -> str:
        return (f"{self.videos} videos to decode: ~{self.bytes / 1e9:.2f} GB, ~{self.seconds / 60:.1f} min on "
                f"{workers} worker(s) (measured on {self.sampled}); {self.free_bytes / 1e9:.1f} GB free")


CACHE_HEADROOM = 1.1  # the estimate is refused unless this much of it fits (it is a sample's estimate)


def room_error(where: str, need_bytes: float, free_bytes: int, sampled: int) -> str:
    """Why a disk cannot take ``need_bytes`` more ('' when it can, with the headroom)."""
    if need_bytes * CACHE_HEADROOM <= free_bytes:
        return ""
    return (f"{where}: the cache needs ~{need_bytes / 1e9:.2f} GB more (estimated from {sampled} videos) but only "
            f"{free_bytes / 1e9:.2f} GB are free; free space, set data.cache to a bigger disk, or lower "
            "data.cache_quality")


def disk_free(directory: str) -> int:
    import shutil

    return shutil.disk_usage(directory).free


def estimate(cache: FrameCache, paths: Iterable[str], workers: int = 1, sample: int = 6) -> CacheEstimate:
    """Build a spread-out sample of the missing entries (they are kept: nothing is wasted) and scale
    their bytes and time per second of video to the durations of all the others (probed, not decoded)."""
    import time

    from expand.data.video import probe

    todo = [p for p in dict.fromkeys(paths) if not cache.cached(p)]
    if not todo:
        return CacheEstimate(0, 0.0, 0.0, 0, disk_free(cache.directory))
    step = max(1, len(todo) // sample)
    picked = todo[::step][:sample]
    sizes = secs = video_s = 0.0
    built = 0
    for p in picked:
        t = time.perf_counter()
        entry = cache.build_one(p)
        if entry.error:
            continue
        secs += time.perf_counter() - t
        sizes += os.path.getsize(cache.entry_path(p))
        video_s += len(entry.frames) / cache.fps
        built += 1
    rest = [p for p in todo if p not in picked]
    if not built or not rest:
        return CacheEstimate(len(rest), 0.0, 0.0, built, disk_free(cache.directory))
    probe_sample = rest if len(rest) <= 2000 else rest[::len(rest) // 500]
    durations = []
    for p in probe_sample:
        try:
            durations.append(probe(p).frames_at(cache.fps) / cache.fps)
        except VideoError:
            durations.append(0.0)
    total_s = sum(durations) * len(rest) / len(probe_sample)
    return CacheEstimate(len(rest), sizes / video_s * total_s, secs / video_s * total_s / max(1, workers), built,
                         disk_free(cache.directory))
