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

import math
import os
from dataclasses import dataclass
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


def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError)


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


def probe(path: str) -> VideoInfo:
    """Open a video and decode its first frame only: cheap, and enough to read any clip later."""
    container, stream = _open(path)
    try:
        with container:
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
            last = max(0.0, end - start - 1.0 / rate)
            return VideoInfo(path, start, last, rate, first.width, first.height)
    except VideoError:
        raise
    except _ffmpeg_errors() as exc:
        raise _undecodable(exc) from None


def iter_frames(path: str, fps: float = 30.0, short_side: Optional[int] = None, first: int = 0,
                last: Optional[int] = None, info: Optional[VideoInfo] = None,
                stats: Optional[dict] = None) -> Iterator[tuple[int, np.ndarray]]:
    """(k, uint8 H x W x 3) for output frames ``first``..``last`` at ``fps``, decoded as they are needed.

    With ``last`` given, frames past the video's end repeat its last frame (a
    short video is clamped, as SlowFast does); without it, iteration ends with
    the video. ``stats['decoded']`` counts the source frames the decoder returned.
    """
    info = info or probe(path)
    container, stream = _open(path)
    width, height = target_size(info.width, info.height, short_side)
    decoded = 0

    def rgb(frame) -> np.ndarray:
        if (frame.width, frame.height) == (width, height):
            return frame.to_ndarray(format="rgb24")
        return frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")

    try:
        with container:
            k = first
            if first > 0:  # to the keyframe at or before the first target, then forward
                target = info.start + first / fps
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            prev, prev_t = None, None
            for frame in container.decode(stream):
                t = _time(frame, stream)
                if t is None:
                    continue
                decoded += 1
                t -= info.start
                if prev is not None:
                    image = None
                    while k / fps + _EPS < t and (last is None or k <= last):
                        image = rgb(prev) if image is None else image
                        yield k, image
                        k += 1
                    if last is not None and k > last:
                        return
                prev, prev_t = frame, t
            if prev is None:
                raise VideoError("no decodable frames")
            end = last if last is not None else int(math.floor(prev_t * fps + _EPS))
            image = None
            while k <= end:  # the last source frame covers the rest (or the clamp past the end)
                image = rgb(prev) if image is None else image
                yield k, image
                k += 1
    except VideoError:
        raise
    except _ffmpeg_errors() as exc:
        raise _undecodable(exc) from None
    finally:
        if stats is not None:
            stats["decoded"] = stats.get("decoded", 0) + decoded


def read_frames(path: str, indices: Sequence[int], fps: float = 30.0, short_side: Optional[int] = None,
                info: Optional[VideoInfo] = None, stats: Optional[dict] = None) -> np.ndarray:
    """The output frames ``indices`` (any order, repeats allowed) as uint8 (len, H, W, 3): one clip's memory."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("no frame indices")
    wanted = set(int(i) for i in idx)
    got: dict[int, np.ndarray] = {}
    for k, image in iter_frames(path, fps, short_side, int(idx.min()), int(idx.max()), info, stats):
        if k in wanted:
            got[k] = image
    return np.stack([got[int(i)] for i in idx])


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
    except _ffmpeg_errors() as exc:
        raise _undecodable(exc) from None
    if packets == 0:
        raise VideoError("no video packets")
    return {"frames_at_30fps": info.frames_at(30.0), "height": info.height, "width": info.width,
            "fps": round(info.src_fps, 3), "seconds": round(info.last + 1 / info.src_fps, 3)}


def probe_video(path: str) -> dict:
    """Kept for callers of the old name: :func:`check_video`."""
    return check_video(path)
