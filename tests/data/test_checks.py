import json
import os

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
