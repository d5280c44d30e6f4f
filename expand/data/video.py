"""PyAV decoding that streams: frames at a target rate and size, one at a time, from any point.

Frames are resampled to ``fps`` by timestamp: output frame k is the last
source frame at or before ``start + k / fps`` (the first frame's time is 0),
so a temporal stride means the same thing for 25, 29.97, 30 and 60 fps
sources: SlowFast's SAMPLING_RATE at 30 fps. Nothing here holds more than the
frames it returns: :func:`iter_frames` converts and resizes each frame as it is
decoded (the resize happens in FFmpeg's scaler, on the decoded YUV picture),
and :func:`read_frames` seeks to the keyframe before a clip and stops after
its last frame, so memory is one clip whatever the video's length or size.
Anything that goes wrong with a file is a :class:`VideoError` with a short
reason, which callers record and skip.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, replace
from typing import Iterator, Optional, Sequence

import numpy as np

_EPS = 1e-6


class VideoError(Exception):
    """A video that cannot be used; ``str()`` is the reason shown in skipped.csv."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, plus the first frame (decoded to find where time starts)."""

    path: str
    start: float  # time of the first frame, seconds
    last: float  # time of the last frame after ``start``, seconds (from the container's metadata)
    src_fps: float
    width: int
    height: int

    def frames_at(self, fps: float) -> int:
        """Frames at ``fps``: index k covers time k / fps, up to the last source frame."""
        return max(1, int(math.floor(self.last * fps + _EPS)) + 1)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError("missing file")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")


def _undecodable(exc: BaseException) -> VideoError:
    return VideoError(f"undecodable: {type(exc).__name__}: {str(exc)[:120]}")


_ERRORS: tuple[type[BaseException], ...] = ()


def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    # kept once imported: a reader's generator closed at interpreter exit cannot import any more
    global _ERRORS
    if not _ERRORS:
        import av

        _ERRORS = (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError)
    return _ERRORS


def _open(path: str):
    import av

    _check_file(path)
    try:
        container = av.open(path)
    except _ffmpeg_errors() as exc:
        raise _undecodable(exc) from None
    if not container.streams.video:
        container.close()
        raise VideoError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _time(frame, stream) -> Optional[float]:
    if frame.time is not None:
        return float(frame.time)
    if frame.pts is not None:
        return float(frame.pts * stream.time_base)
    return None


def target_size(width: int, height: int, short_side: Optional[int]) -> tuple[int, int]:
    """(width, height) with the short side at ``short_side``; never upscaled (clips resize as they need)."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _info(path: str, container, stream) -> VideoInfo:
    """Decode the first frame of an open container (leaving it positioned after it) and read the metadata."""
    first = None
    for frame in container.decode(stream):
        if _time(frame, stream) is not None:
            first = frame
            break
    if first is None:
        raise VideoError("no decodable frames")
    start = _time(first, stream)
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
    if stream.duration:
        end = float(stream.duration * stream.time_base) + float(stream.start_time or 0) * float(stream.time_base)
    elif container.duration:
        end = container.duration / 1e6
    else:
        end = start + (stream.frames or 1) / rate
    return VideoInfo(path, start, max(0.0, end - start - 1.0 / rate), rate, first.width, first.height)


def probe(path: str) -> VideoInfo:
    """Open a video and decode its first frame only: cheap, and enough to read any clip later."""
    container, stream = _open(path)
    try:
        with container:
            return _info(path, container, stream)
    except VideoError:
        raise
    except _ffmpeg_errors() as exc:
        raise _undecodable(exc) from None


class VideoReader:
    """One video kept open between clips: each read seeks to the keyframe before it and decodes forward.

    Opening a container costs milliseconds (format probing, a codec context
    and its threads), more than decoding a small clip: a dataset keeps one
    reader per recently used video. ``threads``: decoder threads (1 for a
    DataLoader worker or a cache read; 0 lets FFmpeg choose). Pickles as its
    path and settings, so each DataLoader worker opens its own.
    """

    def __init__(self, path: str, fps: float = 30.0, short_side: Optional[int] = None,
                 info: Optional[VideoInfo] = None, threads: int = 1) -> None:
        self.path, self.fps, self.short_side, self.threads = path, fps, short_side, threads
        self._container = None
        self._stream = None
        self._used = False
        self._scaler = None
        if info is None:  # probe through the container the reads will use: one open, not two
            with self._closed_on_error():
                container, stream = self._open()
                info = _info(path, container, stream)
            self._used = True
        self.info = info
        self.size = target_size(info.width, info.height, short_side)
        self.truncated = False  # read as shorter than its container lists (see read)
        self._cut = False

    def __getstate__(self) -> dict:
        return {"path": self.path, "fps": self.fps, "short_side": self.short_side, "info": self.info,
                "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @contextlib.contextmanager
    def _closed_on_error(self) -> Iterator[None]:
        """A failure leaves the reader closed (the next read reopens) and is a VideoError."""
        try:
            yield
        except VideoError:
            self.close()
            raise
        except _ffmpeg_errors() as exc:
            self.close()
            raise _undecodable(exc) from None

    def _open(self):
        if self._container is None:
            self._container, self._stream = _open(self.path)
            if self.threads == 1:
                self._stream.thread_type = "NONE"
                self._stream.codec_context.thread_count = 1
            self._used = False
        return self._container, self._stream

    def _rgb(self, frame) -> np.ndarray:
        # One scaler for the reader's life: a frame's own to_ndarray builds a new swscale context
        # every time (0.75 ms for a 128 px frame, against 0.08 ms reused).
        if self._scaler is None:
            from av.video.reformatter import VideoReformatter

            self._scaler = VideoReformatter()
        width, height = self.size
        if (frame.width, frame.height) == (width, height):
            return self._scaler.reformat(frame, format="rgb24").to_ndarray()
        return self._scaler.reformat(frame, width=width, height=height, format="rgb24",
                                     interpolation="AREA").to_ndarray()

    def frames(self, first: int = 0, last: Optional[int] = None, wanted: Optional[set] = None,
               stats: Optional[dict] = None) -> Iterator[tuple[int, np.ndarray]]:
        """(k, uint8 H x W x 3) for output frames ``first``..``last`` at ``fps``, decoded as needed.

        With ``last`` given, frames past the video's end repeat its last frame (a
        short video is clamped, as SlowFast does); without it, iteration ends with
        the video. With ``wanted``, only those k are converted to RGB and yielded
        (the others are decoded, as a decoder must, but cost no conversion).
        ``stats['decoded']`` counts the source frames the decoder returned.
        """
        fps, info = self.fps, self.info
        decoded = 0
        try:
            with self._closed_on_error():
                container, stream = self._open()
                if first > 0 or self._used:  # to the keyframe at or before the first target, then forward
                    target = info.start + first / fps
                    container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                self._used = True
                k = first
                prev, prev_t = None, None
                for frame in self._decode_to_cut(container, stream):
                    t = _time(frame, stream)
                    if t is None:
                        continue
                    decoded += 1
                    t -= info.start
                    if prev is not None:
                        image = None
                        while k / fps + _EPS < t and (last is None or k <= last):
                            if wanted is None or k in wanted:
                                image = self._rgb(prev) if image is None else image
                                yield k, image
                            k += 1
                        if last is not None and k > last:
                            return
                    prev, prev_t = frame, t
                if prev is None:
                    raise VideoError("no decodable frames")
                if self._cut:  # cut off here: read this short from now on; the next read reopens
                    # (only a cut: a container whose duration counts its audio, as webm's do, stays
                    # clamped by repeating its last frame, as before, so a draw never depends on
                    # what this process happened to read first)
                    self._cut = False
                    self.close()
                    self._shorten(int(math.floor(prev_t * fps + _EPS)) + 1)
                end = last if last is not None else int(math.floor(prev_t * fps + _EPS))
                image = None
                while k <= end:  # the last source frame covers the rest (or the clamp past the end)
                    if wanted is None or k in wanted:
                        image = self._rgb(prev) if image is None else image
                        yield k, image
                    k += 1
        finally:
            if stats is not None:
                stats["decoded"] = stats.get("decoded", 0) + decoded

    def _decode_to_cut(self, container, stream) -> Iterator:
        """The decoded frames, where an error after at least one of them ends the video (sets ``_cut``).

        A download cut off mid-file keeps its whole index: the container lists every frame and
        decoding fails at the cut (FFmpeg's threaded decoder hides this; a one-thread one raises).
        Only bad data ends it: a read error (EIO on a network mount) is not taken for the video's end.
        """
        import av

        frames = container.decode(stream)
        got_one = False
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (av.error.InvalidDataError, av.error.EOFError):
                if not got_one:
                    raise
                self._cut = True
                return
            got_one = True
            yield frame

    def _shorten(self, frames: int) -> bool:
        """Read the video as ``frames`` long from now on, if that is shorter than its container says."""
        if not 0 < frames < len(self):
            return False
        self.info = replace(self.info, last=(frames - 1) / self.fps)
        self.truncated = True
        return True

    def read(self, indices: Sequence[int], stats: Optional[dict] = None) -> np.ndarray:
        """The output frames ``indices`` (any order, repeats allowed) as uint8 (len, H, W, 3): one clip's memory.

        A video that decodes to fewer frames than its container lists (a cut-off download) is
        read as the shorter video it is: its length becomes what decodes and a clip past it is
        clamped, as a short video's is. ``len()`` then says so: a sampler draws its next clip there.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("no frame indices")
        try:
            return self._read(idx, stats)
        except VideoError:  # the seek landed past the cut: nothing decodes from there
            if not self._shorten(decodable_frames(self.path, self.fps, self.info)):
                raise
            return self._read(np.minimum(idx, len(self) - 1), stats)

    def _read(self, idx: np.ndarray, stats: Optional[dict]) -> np.ndarray:
        wanted = set(int(i) for i in idx)
        got = {k: image for k, image in self.frames(int(idx.min()), int(idx.max()), wanted, stats)}
        return np.stack([got[int(i)] for i in idx])

    def __len__(self) -> int:
        return self.info.frames_at(self.fps)


_DECODABLE: dict[tuple, int] = {}  # (path, size, mtime, fps) -> frames: one full decode per cut-off video


def decodable_frames(path: str, fps: float, info: Optional[VideoInfo] = None) -> int:
    """Output frames at ``fps`` that decode, read from the start as a clip is (0: none).

    Decodes the whole video (no pixels converted), so it is only asked of a video whose read
    failed; remembered per process (a loader worker meets the same cut-off video every epoch).
    """
    try:
        st = os.stat(path)
    except OSError:  # gone since: the read's own error says so
        return 0
    key = (path, st.st_size, st.st_mtime_ns, fps)
    if key not in _DECODABLE:
        reader = VideoReader(path, fps, info=info)
        try:
            for _ in reader.frames(0, wanted=set()):
                pass
            _DECODABLE[key] = len(reader)
        except VideoError:
            _DECODABLE[key] = 0
        finally:
            reader.close()
    return _DECODABLE[key]


def iter_frames(path: str, fps: float = 30.0, short_side: Optional[int] = None, first: int = 0,
                last: Optional[int] = None, info: Optional[VideoInfo] = None,
                stats: Optional[dict] = None, wanted: Optional[set] = None) -> Iterator[tuple[int, np.ndarray]]:
    """:meth:`VideoReader.frames` of a reader opened for this call only (decoder threads: FFmpeg's choice)."""
    reader = VideoReader(path, fps, short_side, info, threads=0)
    try:
        yield from reader.frames(first, last, wanted, stats)
    finally:
        reader.close()


def read_frames(path: str, indices: Sequence[int], fps: float = 30.0, short_side: Optional[int] = None,
                info: Optional[VideoInfo] = None, stats: Optional[dict] = None) -> np.ndarray:
    """:meth:`VideoReader.read` of a reader opened for this call only."""
    reader = VideoReader(path, fps, short_side, info)
    try:
        return reader.read(indices, stats)
    finally:
        reader.close()


def decode_video(path: str, fps: float = 30.0, short_side: int | None = None) -> np.ndarray:
    """All frames of ``path`` at ``fps`` as uint8 (T, H, W, 3): for short videos and tests only."""
    frames = [image for _, image in iter_frames(path, fps, short_side)]
    return np.stack(frames)


def check_video(path: str) -> dict:
    """Readability for ``data check``: probe, then demux every packet (no pixels are converted)."""
    info = probe(path)
    container, stream = _open(path)
    try:
        with container:
            packets = sum(1 for p in container.demux(stream) if p.size)
            listed = stream.frames  # read while the container is open
    except _ffmpeg_errors() as exc:
        raise _undecodable(exc) from None
    if packets == 0:
        raise VideoError("no video packets")
    facts = {"frames_at_30fps": info.frames_at(30.0), "height": info.height, "width": info.width,
             "fps": round(info.src_fps, 3), "seconds": round(info.last + 1 / info.src_fps, 3)}
    if listed and packets < listed:  # a cut-off download: its index lists frames it lacks
        facts["cut_off"] = f"{packets} of the {listed} frames its container lists are in the file"
    return facts
