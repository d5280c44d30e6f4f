import numpy as np
import pytest

from expand.data.video import VideoError, decode_video


@pytest.mark.parametrize("name, codec", [("a.mp4", "libx264"), ("b.avi", "mpeg4"), ("c.webm", "libvpx-vp9")])
def test_decodes_real_files_of_each_codec(make_video, name, codec):
    frames = decode_video(make_video(name, n=20, codec=codec))
    assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
    assert 19 <= frames.shape[0] <= 20


@pytest.mark.parametrize("src_fps", [25.0, 60.0])
def test_resampling_to_30fps_takes_the_right_frames(make_video, src_fps):
    n = int(src_fps)  # one second of video
    frames = decode_video(make_video(f"v{int(src_fps)}.mp4", n=n, fps=src_fps), fps=30.0)
    assert abs(frames.shape[0] - 30) <= 1
    # output frame j shows source frame floor(j * src_fps / 30): read its counter back
    values = frames[:, 32, 32, 0].astype(int)
    expected = [min(255, 4 * int(np.floor(j * src_fps / 30 + 1e-6)) + 10) for j in range(len(values))]
    assert np.max(np.abs(values - np.array(expected))) <= 3


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"this is not a video at all" * 20, "undecodable")],
)
def test_bad_files_raise_video_error_with_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=reason):
        decode_video(str(path))


def test_truncated_and_missing_files(make_video, tmp_path):
    good = make_video("t.mp4", n=30)
    data = open(good, "rb").read()
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError):
        decode_video(str(trunc))
    with pytest.raises(VideoError, match="missing"):
        decode_video(str(tmp_path / "nope.mp4"))
