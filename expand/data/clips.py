"""Clip sampling in SlowFast's convention: γt frames at stride γτ, a γs crop.

Train: random temporal start, random short-side scale (jitter x crop), random
crop, optional horizontal flip (off where direction is the label). Val: the
centre clip, short side resized to crop x test_crop_ratio, centre crop.
Multi-view test: K clips evenly spread x 3 spatial crops (left/centre/right).
Indices past a short video's end are clamped to its last frame, as SlowFast
does. Output: float C x T x H x W, normalised with SlowFast's mean/std.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from expand.data.store import ArrayFrames, FrameSource


def temporal_indices(n_frames: int, frames: int, stride: int, start: int) -> np.ndarray:
    return np.clip(start + np.arange(frames) * stride, 0, n_frames - 1)


def clip_starts(n_frames: int, frames: int, stride: int, mode: str, views: int, rng: random.Random) -> list[int]:
    span = (frames - 1) * stride + 1
    slack = max(0, n_frames - span)
    if mode == "train":
        return [rng.randint(0, slack)]
    if views == 1:
        return [slack // 2]
    return [round(i * slack / (views - 1)) for i in range(views)]


def _resize(x: torch.Tensor, short_side: int) -> torch.Tensor:
    """x: T x C x H x W float."""
    h, w = x.shape[-2:]
    scale = short_side / min(h, w)
    if abs(scale - 1) < 1e-6:
        return x
    size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def spatial_crops(h: int, w: int, crop: int, mode: str, n_crops: int, rng: random.Random) -> list[tuple[int, int]]:
    if mode == "train":
        return [(rng.randint(0, h - crop), rng.randint(0, w - crop))]
    cy, cx = (h - crop) // 2, (w - crop) // 2
    if n_crops == 1:
        return [(cy, cx)]
    if w >= h:  # three crops along the long side, as SlowFast's uniform_crop
        return [(cy, 0), (cy, cx), (cy, w - crop)]
    return [(0, cx), (cy, cx), (h - crop, cx)]


def sample_clips(
    frames: "np.ndarray | FrameSource",
    n_frames: int,
    stride: int,
    crop: int,
    mode: str,
    rng: random.Random,
    jitter: Sequence[float] = (1.143, 1.429),
    test_crop_ratio: float = 1.0,
    hflip: bool = False,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
    views: int = 1,
    n_crops: int = 1,
) -> list[torch.Tensor]:
    """Clips (C x T x crop x crop float tensors) from uint8 frames (T x H x W x 3, or a store).

    Only the clip's frames are read from a :class:`FrameSource` (a cache entry,
    or the video itself when the cache is off).
    """
    if isinstance(frames, np.ndarray):
        frames = ArrayFrames(frames)
    out = []
    total = len(frames)
    for start in clip_starts(total, n_frames, stride, mode, views, rng):
        idx = temporal_indices(total, n_frames, stride, start)
        x = torch.from_numpy(frames.read(idx)).permute(0, 3, 1, 2).float()
        if mode == "train":
            side = int(round(rng.uniform(crop * jitter[0], crop * jitter[1])))
        else:
            side = int(round(crop * test_crop_ratio))
        x = _resize(x, max(side, crop))
        h, w = x.shape[-2:]
        for y0, x0 in spatial_crops(h, w, crop, mode, n_crops, rng):
            c = x[..., y0:y0 + crop, x0:x0 + crop]
            if mode == "train" and hflip and rng.random() < 0.5:
                c = c.flip(-1)
            c = c / 255.0
            c = (c - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
            out.append(c.permute(1, 0, 2, 3).contiguous())
    return out
