"""The cache's size estimate and its refusal when the disk cannot hold it (expand/data/cache.py)."""

import os

import pytest
import yaml

from expand.data import cache as cache_module
from expand.data.cache import FrameCache, estimate
from tests.data.test_video import textured_frames


def _videos(make_video, n):
    # different lengths and content: the estimate must scale by duration, not count videos
    return [make_video(f"v{i}.mp4", n=24 + 9 * i, frames=textured_frames(24 + 9 * i, seed=i)) for i in range(n)]


@pytest.mark.parametrize("fmt", ["h264", "jpeg"])
def test_the_size_estimate_is_within_20_percent_of_the_built_cache(tmp_path, make_video, fmt):
    videos = _videos(make_video, 10)
    cache = FrameCache(str(tmp_path / "cache"), 30.0, 64, fmt)
    plan = estimate(cache, videos, sample=3)
    assert plan.sampled == 3 and plan.videos == 7  # the sample is built (and kept), the rest estimated
    sampled_bytes = sum(os.path.getsize(cache.entry_path(v)) for v in videos if cache.cached(v))
    assert cache.build(videos) == {}
    real = sum(os.path.getsize(cache.entry_path(v)) for v in videos)
    assert abs(sampled_bytes + plan.bytes - real) / real < 0.2, (sampled_bytes + plan.bytes, real)
    assert estimate(cache, videos).videos == 0  # nothing left to do


def _experiment(tmp_path, videos):
    (tmp_path / "train.csv").write_text("".join(f"{os.path.basename(v)} {i % 2}\n" for i, v in enumerate(videos)))
    (tmp_path / "val.csv").write_text(f"{os.path.basename(videos[0])} 0\n")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "search_space": "tiny_cpu",
                                    "data": {"root": str(tmp_path), "num_classes": 2}}))
    return str(path)


def test_data_cache_refuses_when_the_disk_is_too_small_and_says_how_much(tmp_path, make_video, monkeypatch,
                                                                          capsys):
    from expand.cli import main

    exp = _experiment(tmp_path, _videos(make_video, 8))
    monkeypatch.setattr(cache_module, "disk_free", lambda directory: 50_000)  # 50 kB free
    assert main(["data", "cache", exp]) == 2
    err = capsys.readouterr().err.strip()
    assert "the cache needs ~" in err and "0.00 GB are free" in err and len(err.splitlines()) == 1
    monkeypatch.setattr(cache_module, "disk_free", lambda directory: 10**12)
    assert main(["data", "cache", exp, "--json"]) == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    # the refused run kept what its sample built (nothing computed is lost); this one built the rest
    assert summary["train"]["readable"] == 8 and summary["estimate"]["free_bytes"] == 10**12


def test_a_cache_folder_that_cannot_be_made_is_a_data_error(tmp_path):
    from expand.errors import DataError

    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=r"cannot create the cache folder .*/f/cache: Not a directory"):
        FrameCache(str(tmp_path / "f" / "cache"), 10.0, 64)


def test_data_cache_under_a_file_is_exit_2_before_any_decoding(tmp_path, make_video, capsys):
    from expand.cli import main

    exp = _experiment(tmp_path, _videos(make_video, 2))
    data = yaml.safe_load(open(exp))
    (tmp_path / "notes.txt").write_text("x")
    data["data"]["cache"] = "notes.txt/cache"  # relative: to the experiment file's folder
    open(exp, "w").write(yaml.safe_dump(data))
    assert main(["data", "cache", exp]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"data.cache: cannot create {tmp_path}/notes.txt/cache: {tmp_path}/notes.txt is a file, "
                        "not a folder") and len(err.splitlines()) == 1
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_a_store_write_on_a_full_disk_names_the_entry_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    def full(path, frames):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as numpy's writes do: no file name

    monkeypatch.setattr(cache_module, "_write_npy", full)
    entry = tmp_path / "abc.npy"
    with pytest.raises(OSError) as info:
        cache_module.write_store(str(entry), "npy", iter([]), 10.0, 75)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(entry)
    assert os.listdir(tmp_path) == []


def _encode_exact_size(path, width, height, n=12):
    """A real H.264 video of any size (yuv444p takes odd sides; write_video crops them to even)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for k in range(n):
            img = np.full((height, width, 3), 10 + 15 * k, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def test_an_odd_sized_video_is_stored_cropped_to_even_sides(tmp_path):
    # 97x63 (a height of 4n+2 once cropped) ended a search with "internal error: ValueError:
    # cannot reshape array of size 1488 into shape (15,96)" while the cache was built
    video = _encode_exact_size(tmp_path / "odd dims.mp4", 97, 63)
    entry = FrameCache(str(tmp_path / "cache"), 30.0, 128, "h264").build_one(video)
    assert entry.error == ""
    clip = entry.frames.read([0, 11])
    assert clip.shape == (2, 62, 96, 3)
    assert abs(int(clip[1].mean()) - (10 + 15 * 11)) <= 3  # the last frame's grey, not a garbled plane


def test_a_video_too_thin_for_the_h264_cache_is_that_videos_error_not_the_searchs(tmp_path):
    video = _encode_exact_size(tmp_path / "thin.mp4", 1, 64)
    cache = FrameCache(str(tmp_path / "cache"), 30.0, 64, "h264")
    assert cache.build([video]) == {video: cache.get(video).error}
    assert "too small for the h264 frame cache" in cache.get(video).error  # recorded: not decoded again
    assert cache.get(video).error.endswith("data.cache_format: jpeg stores them")  # the key as a file spells it
    assert FrameCache(str(tmp_path / "cache"), 30.0, 64, "jpeg").build_one(video).frames.read([0]).shape == (1, 64, 1, 3)
