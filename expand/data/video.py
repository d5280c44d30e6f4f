"""PyAV decoding to uint8 frames at a target frame rate and short side.

Frames are resampled to ``fps`` by timestamp (nearest source frame at or
before each target time), so a temporal stride means the same thing for 25,
30 and 60 fps sources: SlowFast's SAMPLING_RATE at 30 fps. Anything that goes
wrong with a file is a :class:`VideoError` with a short reason, which callers
record and skip.
"""

from __future__ import annotations

import os

import numpy as np


class VideoError(Exception):
    """A video that cannot be used; ``str()`` is the reason shown in skipped.csv."""


def _resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t, h, w, _ = frames.shape
    if min(h, w) <= short_side:  # never upscale in the cache: clips resize as they need
        return frames
    scale = short_side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def decode_video(path: str, fps: float = 30.0, short_side: int | None = None) -> np.ndarray:
    """All frames of ``path`` as uint8 (T, H, W, 3) at ``fps``, short side resized if given."""
    import av

    if not os.path.exists(path):
        raise VideoError("missing file")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            times, images = [], []
            for frame in container.decode(stream):
                if frame.pts is None and frame.time is None:
                    continue
                times.append(float(frame.time if frame.time is not None else frame.pts * stream.time_base))
                images.append(frame.to_ndarray(format="rgb24"))
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoError(f"undecodable: {type(exc).__name__}: {str(exc)[:120]}") from None
    if not images:
        raise VideoError("no decodable frames")
    src = np.asarray(times, dtype=np.float64)
    src -= src[0]
    n_out = max(1, int(np.floor(src[-1] * fps + 1e-6)) + 1)
    target = np.arange(n_out) / fps
    idx = np.clip(np.searchsorted(src, target + 1e-6, side="right") - 1, 0, len(images) - 1)
    frames = np.stack([images[i] for i in idx])
    if short_side is not None:
        frames = _resize_short_side(frames, short_side)
    return frames


def probe_video(path: str) -> dict:
    """Cheap readability check for ``data check``: frames and fps of the first stream."""
    frames = decode_video(path)
    return {"frames_at_30fps": int(frames.shape[0]), "height": int(frames.shape[1]),
            "width": int(frames.shape[2])}
