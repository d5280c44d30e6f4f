import numpy as np
import pytest

from expand.data.video import VideoError, decode_video


@pytest.mark.parametrize("name, codec", [("a.mp4", "libx264"), ("b.avi", "mpeg4"), ("c.webm", "libvpx-vp9")])
def test_decodes_real_files_of_each_codec(make_video, name, codec):
    frames = decode_video(make_video(name, n=20, codec=codec))
    assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
    assert 19 <= frames.shape[0] <= 20


@pytest.mark.parametrize("src_fps", [25.0, 30000 / 1001, 60.0])
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


def cut_off_video(tmp_path, n=150, keep=3):
    """A real download cut off mid-file: an mp4 with its index in front (faststart), so the
    container still lists all ``n`` frames while a ``keep``-th of the bytes is there."""
    import av

    path = tmp_path / "whole.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.options = {"x264-params": "keyint=16:min-keyint=16:scenecut=0"}  # the cache's GOP: seeks land past the cut
        for img in textured_frames(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // keep])
    return str(cut)


@pytest.mark.parametrize("threads", [1, 0])
def test_a_cut_off_video_is_read_as_the_shorter_video_it_is(tmp_path, threads):
    # its index lists 150 frames, a third of them are there: a clip past the cut failed every trial
    # with the cache off ("undecodable: InvalidDataError ... avcodec_send_packet()"), or with
    # FFmpeg's threads read as frozen copies of the last frame
    from expand.data.video import VideoReader

    path = cut_off_video(tmp_path)
    whole = decode_video(path)
    assert 10 < len(whole) < 100
    reader = VideoReader(path, 30.0, threads=threads)
    assert len(reader) == 150 and not reader.truncated
    clip = reader.read([100, 120, 140])
    assert reader.truncated and len(reader) == len(whole)  # what a sampler draws from next
    assert (clip == whole[-1]).all()  # clamped, as a short video is
    assert np.array_equal(reader.read([3, 9]), whole[[3, 9]])  # and reads on after it


def test_only_bad_data_ends_a_video_early_not_a_read_error(make_video):
    # an EIO from a network mount mid-clip must stay an error (the attempt fails and is retried),
    # not be taken for a cut and read as a shorter video from then on
    import errno

    import av

    from expand.data.video import VideoReader

    reader = VideoReader(make_video("v.mp4", n=30), 30.0)

    class Failing:
        def __init__(self, error):
            self.error = error

        def decode(self, stream):
            yield "a frame"
            raise self.error

    frames = reader._decode_to_cut(Failing(av.error.InvalidDataError(errno.EINVAL, "bad data")), None)
    assert list(frames) == ["a frame"] and reader._cut
    with pytest.raises(OSError, match="Input/output error"):
        list(reader._decode_to_cut(Failing(av.error.OSError(errno.EIO, "Input/output error")), None))


def test_a_video_deleted_under_an_open_reader_is_a_video_error_saying_so(make_video):
    import os

    from expand.data.video import VideoReader

    path = make_video("gone.mp4", n=30)
    reader = VideoReader(path, 30.0)
    os.unlink(path)
    reader.close()  # as a loader's reader cache evicts it
    with pytest.raises(VideoError, match="missing file"):  # not the cut-off check's FileNotFoundError
        reader.read([20])


def test_check_video_says_a_video_is_cut_off(tmp_path, make_video):
    from expand.data.video import check_video

    assert "cut_off" not in check_video(make_video("whole.mp4", n=30))
    assert check_video(cut_off_video(tmp_path))["cut_off"].endswith("of the 150 frames its container lists are in the file")


def textured_frames(n, size=64, seed=0):
    """Moving noise: every frame differs everywhere, so a wrong frame or a drifted decode shows."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size * 2, size * 2, 3), dtype=np.uint8)
    return np.stack([np.roll(base, k, axis=1)[:size, :size] for k in range(n)])


@pytest.mark.parametrize("name, codec, fps", [("a.mp4", "libx264", 30.0), ("b.mp4", "libx264", 25.0),
                                              ("c.mp4", "libx264", 30000 / 1001), ("d.mp4", "libx264", 60.0),
                                              ("e.avi", "mpeg4", 30.0), ("f.webm", "libvpx-vp9", 25.0)])
def test_probe_counts_the_frames_a_full_decode_gives(make_video, name, codec, fps):
    from expand.data.video import probe

    path = make_video(name, n=47, fps=fps, codec=codec)
    assert probe(path).frames_at(30.0) == len(decode_video(path, 30.0))


@pytest.mark.parametrize("gop", [1, 10])
def test_seeking_gives_exactly_the_frames_of_a_full_decode(make_video, gop):
    """Exact, not within codec precision: decoding forward from a keyframe is what a full decode does."""
    from expand.data.video import read_frames

    path = make_video(f"g{gop}.mp4", n=120, gop=gop, frames=textured_frames(120))
    full = decode_video(path)
    for idx in ([0, 2, 4, 6], [37, 39, 41, 43], [95, 100, 105, 110, 115], [63, 11, 63, 90]):
        assert np.array_equal(read_frames(path, idx), full[idx]), idx


def test_a_long_video_read_clip_by_clip_decodes_about_a_clip_each_time(make_video):
    from expand.data.video import read_frames

    gop = 16
    path = make_video("long.mp4", n=900, gop=gop, frames=textured_frames(900, size=32))
    for start in (0, 100, 333, 600, 850):
        stats = {}
        clip = read_frames(path, start + np.arange(8) * 4, stats=stats)  # an 8 x 4 clip spans 29 frames
        assert clip.shape == (8, 32, 32, 3)
        # what the decoder returned: the clip's span plus the run-up from the keyframe before it
        assert stats["decoded"] <= 29 + gop + 1, (start, stats)


def test_resize_while_decoding_and_clamping_past_the_end(make_video):
    from expand.data.video import probe, read_frames

    path = make_video("small.mp4", n=12, size=96)
    clip = read_frames(path, [8, 10, 12, 14, 16], short_side=48)
    assert clip.shape == (5, 48, 48, 3)
    assert probe(path).frames_at(30.0) == 12
    full = read_frames(path, list(range(12)), short_side=48)
    # past the last frame (11) the last frame repeats, as SlowFast clamps a short video
    assert all(np.array_equal(clip[i], full[11]) for i in (2, 3, 4))
    assert np.array_equal(clip[0], full[8])


def test_check_video_reads_every_packet_without_converting_pixels(make_video, tmp_path):
    from expand.data.video import check_video

    info = check_video(make_video("ok.mp4", n=30, fps=25.0))
    assert info["fps"] == 25.0 and info["frames_at_30fps"] == 35 and info["width"] == 64
    with pytest.raises(VideoError):
        check_video(str(tmp_path / "missing.mp4"))
