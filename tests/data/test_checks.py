import json
import os

import pytest
import torch

from expand.data import checks


def test_data_check_records_readability_and_trials_use_the_record(tmp_path, make_video, capsys):
    from expand.cli import main

    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    good = make_video("a/good.mp4", n=20)
    make_video("b/other.mp4", n=20)
    (tmp_path / "a" / "bad.mp4").write_bytes(b"nope" * 40)
    assert main(["data", "check", str(tmp_path)]) == 0
    assert "recorded in" in capsys.readouterr().out
    record = json.loads((tmp_path / checks.RECORD).read_text())["videos"]
    assert record["a/good.mp4"]["ok"] and not record["a/bad.mp4"]["ok"]
    bad = str(tmp_path / "a" / "bad.mp4")
    assert set(checks.readable(str(tmp_path), [good, bad])) == {bad}
    # the record is trusted while the file is unchanged: mark the good one bad to prove it was read
    record["a/good.mp4"] = {**record["a/good.mp4"], "ok": False, "reason": "recorded reason"}
    (tmp_path / checks.RECORD).write_text(json.dumps({"version": 1, "videos": record}))
    assert checks.readable(str(tmp_path), [good]) == {good: "recorded reason"}
    os.utime(good, ns=(1, 1))  # changed since the check: probed again, and it is fine
    assert checks.readable(str(tmp_path), [good]) == {}


def test_with_the_cache_off_a_trial_never_decodes_whole_videos(tmp_path, make_video, monkeypatch):
    from expand.config import DataConfig, load_search_space
    from expand.data import video
    from expand.data.dataset import ClipDataset, prepare_split

    for i in range(4):
        make_video(f"v{i}.mp4", n=30)
    (tmp_path / "train.csv").write_text("".join(f"v{i}.mp4 {i % 2}\n" for i in range(4)))
    (tmp_path / "broken.mp4").write_bytes(b"")
    (tmp_path / "val.csv").write_text("v0.mp4 0\nbroken.mp4 1\n")
    data = DataConfig(root=str(tmp_path), num_classes=2, cache="off", hflip=False, jitter=[1.0, 1.0])

    def no_full_decode(*a, **k):
        raise AssertionError("a whole video was decoded")

    monkeypatch.setattr(video, "decode_video", no_full_decode)
    space = load_search_space("tiny_cpu")
    items, skipped, cache = prepare_split(data, space, "val")
    assert cache is None and [os.path.basename(i.path) for i in items] == ["v0.mp4"]
    assert skipped[0][1].startswith("empty file")
    train, _, _ = prepare_split(data, space, "train")
    ds = ClipDataset(train, None, data, 4, 2, 32, "train", 0)
    x, _ = ds[1]
    assert x.shape == (3, 4, 32, 32)


def test_a_cut_off_video_with_the_cache_off_gives_clips_from_the_frames_it_has(tmp_path):
    from expand.config import DataConfig
    from expand.data.dataset import ClipDataset
    from expand.data.manifest import Item
    from expand.data.video import decode_video
    from tests.data.test_video import cut_off_video

    path = cut_off_video(tmp_path)
    whole = len(decode_video(path))
    data = DataConfig(root=str(tmp_path), num_classes=2, cache="off", hflip=False, jitter=[1.0, 1.0])
    ds = ClipDataset([Item(path, 0)], None, data, 4, 2, 32, "train", 0)
    clips = [ds[(epoch, 0)][0] for epoch in range(6)]  # failed before: a clip past the cut
    assert len(ds._open[path]) == whole
    # drawn again from what is there: moving noise, so no clip is four copies of one frame
    assert all(not torch.equal(x[:, 0], x[:, 3]) for x in clips)


def _dataset(tmp_path, make_video):
    os.makedirs(tmp_path / "videos")
    for i in range(3):
        make_video(f"videos/v{i}.mp4", n=12)
    (tmp_path / "videos" / "bad.mp4").write_bytes(b"nope" * 40)
    (tmp_path / "train.csv").write_text("videos/v0.mp4 0\nvideos/v1.mp4 1\n")
    (tmp_path / "val.csv").write_text("videos/v2.mp4 0\nvideos/bad.mp4 1\n")
    (tmp_path / "test.csv").write_text("videos/v2.mp4 0\nvideos/bad.mp4 1\n")


def test_data_check_reads_a_dataset_folders_manifests(tmp_path, make_video, capsys):
    """The layout 'data synth' writes (train/val/test.csv beside the videos) is a dataset, not 'no videos'."""
    from expand.cli import main

    _dataset(tmp_path, make_video)
    assert main(["data", "check", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    splits = out["splits"]
    assert list(splits) == ["train.csv", "val.csv", "test.csv"]
    assert (splits["train.csv"]["readable"], splits["val.csv"]["readable"], splits["val.csv"]["skipped"]) == (2, 1, 1)
    assert splits["val.csv"]["reasons"] and out["recorded"] == [str(tmp_path / checks.RECORD)]


def test_data_check_reads_an_experiments_splits_and_reports_progress_lines(tmp_path, make_video, capsys):
    from expand.cli import main

    _dataset(tmp_path, make_video)
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: t\nsearch_space: tiny_cpu\ndata:\n  root: {tmp_path}\n  num_classes: 2\n")
    assert main(["data", "check", str(exp)]) == 0
    out, err = capsys.readouterr()
    assert "train: 2 readable, 0 skipped" in out and "val: 1 readable, 1 skipped" in out
    assert "skip " in out and "bad.mp4" in out
    # not a terminal: plain progress lines on stderr, the last one the total
    assert err.strip().splitlines()[-1].startswith("  checking videos 4/4")  # v0..v2 and bad.mp4


@pytest.mark.parametrize("what, message", [("missing", "no such dataset folder, manifest or experiment"),
                                           ("empty", "no class folders")])
def test_data_check_bad_targets_exit_2(tmp_path, capsys, what, message):
    from expand.cli import main

    if what == "empty":
        os.makedirs(tmp_path / "empty")
    assert main(["data", "check", str(tmp_path / what)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_data_check_and_cache_take_a_shipped_experiments_name_and_refuse_one_without_a_dataset(capsys):
    """As `search` does: a shipped name is the experiment; the oracle reads no videos, and says so."""
    from expand.cli import main

    for command in ("check", "cache"):
        assert main(["data", command, "oracle"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert err.rstrip().endswith("oracle.yaml: data.root is not set: the experiment reads no videos") or \
            err.rstrip().endswith("oracle: data.root is not set: the experiment reads no videos")
    assert main(["data", "check", "no_such_experiment"]) == 2  # not a name either: the folder message
    assert "no_such_experiment: no such dataset folder, manifest or experiment" in capsys.readouterr().err


@pytest.mark.parametrize("fields, target", [
    ({}, "/d"),                                                       # SlowFast's layout: the folder reads alike
    ({"format": "folder", "train": "train", "val": "val"}, "/d"),
    ({"train": "lists/train.txt"}, "exp.yaml"),                      # other names: the folder would miss them
    ({"separator": ","}, "exp.yaml"),                                 # the folder is read with ' '
    ({"path_prefix": "videos"}, "exp.yaml"),
    ({"format": "folder", "train": "training", "val": "val"}, "exp.yaml"),
    ({"format": "kinetics", "train": "annotations/train.csv"}, "exp.yaml"),  # val/ is flat: 'no class folders'
])
def test_data_check_is_pointed_at_the_folder_only_when_it_reads_as_the_trials_do(fields, target):
    from expand.config import DataConfig

    assert checks.check_target(DataConfig(root="/d", **fields), "exp.yaml") == target
    assert checks.unreadable_note("3", checks.check_target(DataConfig(root="/d", **fields))).endswith(
        f"('x3d-expand data check {'/d' if target == '/d' else 'EXPERIMENT'}' says why)")
