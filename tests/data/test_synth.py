import numpy as np

from expand.data.synth import SynthConfig, class_names, render_video, write_dataset


def _shift(a, b):
    """Horizontal displacement of b relative to a, by cross-correlation of column profiles."""
    pa = a.astype(float).std(axis=(0, 2))
    pb = b.astype(float).std(axis=(0, 2))
    pa, pb = pa - pa.mean(), pb - pb.mean()
    lags = range(-40, 41)
    return max(lags, key=lambda k: np.dot(np.roll(pa, k), pb))


def test_one_frame_does_not_separate_classes_two_frames_do():
    names = class_names(8)
    means = {}
    shifts = {}
    for name in names:
        ms, ss = [], []
        for i in range(12):
            v = render_video(name, np.random.default_rng([7, names.index(name), i]), 24, 96, 30.0)
            ms.append(v[10].mean())
            ss.append(_shift(v[4], v[12]))
        means[name] = np.mean(ms)
        shifts[name] = np.median(ss)
    # one frame: per-class mean brightness equal within the spread of the random appearance
    spread = np.std(list(means.values()))
    assert spread < 4.0, means
    # two frames 8 apart: direction (sign) and speed (size) of the shift separate the classes
    for name in names:
        direction, speed, _ = name.split("_")
        expected = (16 if speed == "slow" else 32) * (1 if direction == "right" else -1)
        assert abs(shifts[name] - expected) <= 2, (name, shifts[name])


def test_write_dataset_is_deterministic_and_slowfast_format(tmp_path):
    meta = write_dataset(SynthConfig(str(tmp_path / "a"), classes=2, videos_per_class=2, val_per_class=1,
                                     frames=8, size=64, seed=3))
    write_dataset(SynthConfig(str(tmp_path / "b"), classes=2, videos_per_class=2, val_per_class=1,
                              frames=8, size=64, seed=3))
    a = (tmp_path / "a" / "train.csv").read_text()
    assert a == (tmp_path / "b" / "train.csv").read_text()
    lines = a.strip().splitlines()
    assert len(lines) == 4 and all(line.rsplit(" ", 1)[1] in ("0", "1") for line in lines)
    assert meta["chance"] == 0.5


def test_workers_do_not_change_the_files_and_a_rerun_is_up_to_date(tmp_path):
    cfg = dict(classes=2, videos_per_class=2, val_per_class=1, frames=6, size=48, seed=5)
    write_dataset(SynthConfig(str(tmp_path / "one"), **cfg), workers=1)
    write_dataset(SynthConfig(str(tmp_path / "two"), **cfg), workers=2)
    from expand.data.video import decode_video

    for rel in (tmp_path / "one" / "train.csv").read_text().split():
        if rel.endswith(".mp4"):
            assert np.array_equal(decode_video(str(tmp_path / "one" / rel)), decode_video(str(tmp_path / "two" / rel)))
    again = write_dataset(SynthConfig(str(tmp_path / "one"), **cfg))
    assert again.get("up_to_date") is True
    changed = write_dataset(SynthConfig(str(tmp_path / "one"), **dict(cfg, frames=7)))
    assert "up_to_date" not in changed
