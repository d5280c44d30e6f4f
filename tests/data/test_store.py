import pickle

import numpy as np
import pytest

from expand.data.store import ArrayFrames, JpegFrames, StreamFrames, VideoFrames, write_h264, write_jpeg
from expand.data.video import decode_video, read_frames


def smooth_frames(n, h=48, w=64):
    """Gradients that move: what JPEG and x264 keep well, so precision can be asserted tightly."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(x * 3 + k * 5) % 256, (y * 4 + k * 3) % 256, (x + y + k) % 256], -1)
                     for k in range(n)]).astype(np.uint8)


def test_jpeg_store_reads_any_frames_in_any_order(tmp_path):
    frames = smooth_frames(20)
    path = tmp_path / "v.jpgs"
    with open(path, "wb") as fh:
        assert write_jpeg(fh, iter(frames), 30.0, quality=95) == 20
    store = JpegFrames(str(path))
    assert len(store) == 20 and store.shape == (48, 64, 3)
    idx = [19, 0, 7, 7, 3]
    got = store.read(idx)
    assert got.shape == (5, 48, 64, 3)
    assert np.abs(got.astype(int) - frames[idx].astype(int)).mean() < 3  # JPEG precision at quality 95
    assert np.array_equal(got, store.read(range(20))[idx])  # random access = sequential access
    copy = pickle.loads(pickle.dumps(store))  # a DataLoader worker opens its own descriptor
    assert np.array_equal(copy.read(idx), got)
    (tmp_path / "junk.jpgs").write_bytes(b"x" * 64)
    with pytest.raises(ValueError, match="not a frame store"):
        JpegFrames(str(tmp_path / "junk.jpgs"))


def test_h264_store_is_read_exactly_as_a_full_decode_of_it(tmp_path):
    frames = smooth_frames(60)
    path = str(tmp_path / "v.mp4")
    assert write_h264(path, iter(frames), 30.0) == 60
    store = VideoFrames(path, 30.0)
    assert len(store) == 60
    full = decode_video(path)
    for idx in ([0, 4, 8, 12], [33, 35, 37], [59, 2, 59]):
        assert np.array_equal(store.read(idx), full[idx])  # exact: seeking decodes what a full decode does
    # within codec precision of what was stored: 4:2:0 chroma and CRF 23 (4.0 levels mean here)
    assert np.abs(full.astype(int) - frames.astype(int)).mean() < 6
    assert np.array_equal(pickle.loads(pickle.dumps(store)).read([5, 6]), full[[5, 6]])


def test_stream_frames_read_the_source_resized(make_video):
    path = make_video("s.mp4", n=40, size=96)
    src = StreamFrames(path, 30.0, short_side=48)
    assert len(src) == 40
    assert np.array_equal(src.read([3, 20, 39]), read_frames(path, [3, 20, 39], short_side=48))
    assert ArrayFrames(np.zeros((5, 2, 2, 3), np.uint8)).read([4, 4]).shape == (2, 2, 2, 3)
