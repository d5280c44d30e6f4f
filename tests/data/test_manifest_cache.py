import os
import threading

import numpy as np
import pytest

from expand.data.cache import FrameCache
from expand.data.manifest import read_csv_manifest, read_folder_dataset
from expand.data.video import decode_video
from expand.errors import DataError


def test_csv_manifest_paths_with_spaces_and_prefix(tmp_path):
    m = tmp_path / "train.csv"
    m.write_text("videos/a b.mp4 0\nvideos/c.mp4 2\n")
    items = read_csv_manifest(str(m), num_classes=3)
    assert items[0].path == str(tmp_path / "videos" / "a b.mp4") and items[1].label == 2
    items = read_csv_manifest(str(m), path_prefix="/data", num_classes=3)
    assert items[1].path == "/data/videos/c.mp4"


@pytest.mark.parametrize("text, message", [
    ("a.mp4 x\n", r"train.csv:1: label 'x' is not an integer"),
    ("a.mp4 0\nb.mp4 5\n", r"train.csv:2: label 5 is outside \[0, 3\)"),
    ("justapath\n", r"train.csv:1: expected 'path label'"),
    ("\n", "no entries"),
])
def test_manifest_errors_name_file_and_line(tmp_path, text, message):
    m = tmp_path / "train.csv"
    m.write_text(text)
    with pytest.raises(DataError, match=message):
        read_csv_manifest(str(m), num_classes=3)


def test_folder_dataset_sorts_classes(tmp_path, make_video):
    for cls in ("walk", "jump"):
        os.makedirs(tmp_path / "ds" / cls)
        os.rename(make_video(f"{cls}.mp4", n=4), tmp_path / "ds" / cls / "v.mp4")
    items, classes = read_folder_dataset(str(tmp_path / "ds"))
    assert classes == ["jump", "walk"] and [i.label for i in items] == [0, 1]


@pytest.mark.parametrize("fmt", ["jpeg", "h264", "npy"])
def test_cache_hit_invalidation_and_bad_files(tmp_path, make_video, fmt):
    video = make_video("v.mp4", n=12)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope" * 50)
    cache = FrameCache(str(tmp_path / "cache"), fps=30, short_side=32, fmt=fmt)
    errors = cache.build([video, str(bad), str(tmp_path / "missing.mp4")])
    assert set(errors) == {str(bad), str(tmp_path / "missing.mp4")}
    first = cache.get(video)
    assert len(first.frames) == 12
    clip = first.frames.read([0, 5, 11, 11])
    assert clip.shape == (4, 32, 32, 3)  # downscaled once, at decode
    # lossy stores stay close to the frames they were given (counter frames: flat grey levels)
    assert np.abs(clip.astype(int) - decode_video(video, 30, 32)[[0, 5, 11, 11]].astype(int)).max() <= 3
    n_files = len(os.listdir(tmp_path / "cache"))
    cache.build([video])
    assert len(os.listdir(tmp_path / "cache")) == n_files  # a hit writes nothing
    os.utime(video, ns=(1, 1))  # the file "changed": a new key, decoded again
    assert cache.get(video) is None
    assert len(cache.build_one(video).frames) == 12


def test_concurrent_readers_see_whole_entries(tmp_path, make_video):
    video = make_video("v.mp4", n=20)
    cache = FrameCache(str(tmp_path / "cache"), fps=30, short_side=64)
    shapes, errors = [], []

    def reader():
        try:
            for _ in range(20):
                e = cache.get(video)
                if e is not None:
                    shapes.append(e.frames.read(range(len(e.frames))).shape)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    cache.build_one(video)
    for t in threads:
        t.join()
    assert not errors
    assert all(s == shapes[0] for s in shapes)


def test_folder_val_split_keeps_the_training_ids_and_the_run_gets_a_label_map(tmp_path, make_video):
    import json
    import os
    import types

    from expand.data.manifest import load_split, write_label_map
    from expand.errors import DataError

    for split, classes in (("train", ["cat", "dog", "emu"]), ("val", ["dog", "emu"])):
        for c in classes:
            os.makedirs(tmp_path / split / c)
            make_video(f"{split}/{c}/a.mp4", n=4)
    data = types.SimpleNamespace(format="folder", root=str(tmp_path), train="train", val="val", num_classes=3)
    val = load_split(data, "val")
    assert sorted({(os.path.basename(os.path.dirname(i.path)), i.label) for i in val}) == [("dog", 1), ("emu", 2)]
    run = tmp_path / "run"
    run.mkdir()
    assert json.loads(open(write_label_map(data, str(run))).read()) == {"cat": 0, "dog": 1, "emu": 2}
    os.makedirs(tmp_path / "val" / "yak")
    make_video("val/yak/a.mp4", n=4)
    import pytest

    with pytest.raises(DataError, match="yak"):
        load_split(data, "val")


def _build_in_process(directory, paths):
    from expand.data.cache import FrameCache

    errors = FrameCache(directory, fps=30, short_side=64).build(paths, workers=2)
    raise SystemExit(1 if errors else 0)


def test_two_processes_building_the_same_cache_publish_whole_entries(tmp_path, make_video):
    import multiprocessing as mp

    import numpy as np

    from expand.data.video import decode_video

    videos = [make_video(f"v{i}.mp4", n=12 + i) for i in range(4)]
    directory = str(tmp_path / "cache")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_in_process, args=(directory, order)) for order in (videos, videos[::-1])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = FrameCache(directory, fps=30, short_side=64, fmt="npy")
    for v in videos:  # the default store is lossy: compare through a lossless one built the same way
        cache.build_one(v)
        entry = FrameCache(directory, fps=30, short_side=64).get(v).frames
        assert np.array_equal(cache.get(v).frames.read(range(12 + videos.index(v))), decode_video(v, 30, 64))
        assert entry.read(range(len(entry))).shape == (len(entry), 64, 64, 3)
    import os

    assert not [f for f in os.listdir(directory) if not f.endswith((".mp4", ".npy", ".err", ".lock"))]


def test_cache_entries_are_readable_by_the_group_like_any_file(tmp_path, make_video):
    import os
    import stat

    from expand.data.cache import FrameCache

    (tmp_path / "broken.mp4").write_bytes(b"")  # an unreadable video: an .err entry
    old = os.umask(0o022)
    try:
        cache = FrameCache(str(tmp_path / "cache"), 30.0, 64)
        cache.build([make_video("a.mp4", n=8), str(tmp_path / "broken.mp4")])
        FrameCache(str(tmp_path / "cache"), 30.0, 64, fmt="jpeg").build([make_video("b.mp4", n=8)])
    finally:
        os.umask(old)
    modes = {p.suffix: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "cache").iterdir()}
    assert modes == {".jpgs": 0o644, ".err": 0o644, ".mp4": 0o644}  # mkstemp alone made them 0600
