import random

import numpy as np
import torch

from expand.data.clips import clip_starts, sample_clips, temporal_indices


def _frames(n, h=40, w=60):
    """Frame t is filled with value t (so a clip shows which frames it took); columns carry x."""
    f = np.zeros((n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        f[t, :, :, 0] = t
        f[t, :, :, 1] = np.arange(w)[None, :]
    return f


def _taken(clip):
    """Frame ids of a C x T x H x W clip sampled with mean 0, std 1/255 (values stay raw)."""
    return [int(round(float(clip[0, t].mean()))) for t in range(clip.shape[1])]


RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255))


def test_short_video_indices_are_clamped_to_the_last_frame():
    assert list(temporal_indices(5, 4, 3, 0)) == [0, 3, 4, 4]
    clip = sample_clips(_frames(5), 4, 3, 32, "val", random.Random(0), **RAW)[0]
    assert clip.shape == (3, 4, 32, 32)
    assert _taken(clip) == [0, 3, 4, 4]
    train = sample_clips(_frames(5), 4, 3, 32, "train", random.Random(0), jitter=(1.0, 1.0), **RAW)[0]
    assert _taken(train) == [0, 3, 4, 4]  # no slack: the only start is 0


def test_multi_view_spreads_clips_and_takes_three_crops_along_the_long_side():
    frames = _frames(40)
    starts = clip_starts(40, 4, 2, "val", 5, random.Random(0))
    assert starts == [0, 8, 16, 25, 33] and starts[-1] + 3 * 2 == 39
    clips = sample_clips(frames, 4, 2, 32, "val", random.Random(0), views=5, n_crops=3, **RAW)
    assert len(clips) == 15 and all(c.shape == (3, 4, 32, 32) for c in clips)
    for v, start in enumerate(starts):
        for c in clips[3 * v:3 * v + 3]:
            assert _taken(c) == [start, start + 2, start + 4, start + 6]
    # short side 40 -> resized to 32: width 60 -> 48; crops at x = 0, 8, 16 of the resized frame
    lefts = [float(c[1, 0, :, 0].mean()) for c in clips[:3]]
    assert lefts[0] < lefts[1] < lefts[2]


def test_val_centre_clip_is_deterministic_and_normalised():
    frames = _frames(30)
    a = sample_clips(frames, 4, 2, 32, "val", random.Random(0))[0]
    b = sample_clips(frames, 4, 2, 32, "val", random.Random(99))[0]
    assert torch.equal(a, b)
    expected = (frames[11:18:2, 0, 0, 0] / 255.0 - 0.45) / 0.225
    assert torch.allclose(a[0, :, 0, 0], torch.tensor(expected, dtype=torch.float32), atol=1e-5)
