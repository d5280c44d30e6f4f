import json
import os

import numpy as np
import pytest

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


def _file_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.mp4"))}


def test_workers_and_repeats_give_byte_identical_files_and_a_rerun_is_up_to_date(tmp_path):
    """Issue 14: encoding in one process, again and again, with and without a pool, gives the same bytes."""
    cfg = dict(classes=2, videos_per_class=2, val_per_class=1, frames=6, size=48, seed=5)
    runs = []
    for i, workers in enumerate((1, 2, 1, 2)):
        write_dataset(SynthConfig(str(tmp_path / f"r{i}"), **cfg), workers=workers)
        runs.append(_file_bytes(tmp_path / f"r{i}"))
    assert len(runs[0]) == 6
    for other in runs[1:]:
        assert other == runs[0]
    again = write_dataset(SynthConfig(str(tmp_path / "r0"), **cfg))
    assert again.get("up_to_date") is True
    changed = write_dataset(SynthConfig(str(tmp_path / "r0"), **dict(cfg, frames=7)))
    assert "up_to_date" not in changed


def test_a_separate_process_writes_the_same_bytes(tmp_path):
    import subprocess
    import sys

    cfg = dict(classes=2, videos_per_class=1, val_per_class=1, frames=6, size=48, seed=9)
    write_dataset(SynthConfig(str(tmp_path / "here"), **cfg))
    code = ("import sys; from expand.data.synth import SynthConfig, write_dataset; "
            f"write_dataset(SynthConfig(sys.argv[1], **{cfg!r}), workers=2)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], check=True)
    assert _file_bytes(tmp_path / "here") == _file_bytes(tmp_path / "there")


def test_yuv_conversion_matches_ffmpeg_within_its_filtering():
    import av

    from expand.data.synth import rgb_to_yuv420p

    img = render_video(class_names(8)[5], np.random.default_rng(1), 1, 48, 30.0)[0]
    ours = rgb_to_yuv420p(img).astype(int)
    theirs = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    assert ours.shape == theirs.shape == (72, 48)
    assert np.abs(ours[:48] - theirs[:48]).max() <= 1  # luma: the same formula
    assert np.abs(ours[48:] - theirs[48:]).mean() < 2  # chroma: a box vs FFmpeg's filter


@pytest.mark.parametrize("height, width", [(62, 96), (46, 30), (2, 2)])
def test_yuv_conversion_takes_heights_that_are_not_a_multiple_of_4(height, width):
    # a 97x63 video is stored cropped to 96x62: its chroma planes (31x48 each) do not fill whole
    # rows of 96, and the conversion failed ("cannot reshape array of size 1488 into shape (15,96)")
    import av

    from expand.data.synth import rgb_to_yuv420p

    blocks = np.random.default_rng(0).integers(40, 216, (height // 2, width // 2, 3), dtype=np.uint8)
    img = blocks.repeat(2, axis=0).repeat(2, axis=1)  # one colour per 2x2 block: 4:2:0 keeps it exactly
    ours = rgb_to_yuv420p(img)
    theirs = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p").to_ndarray()
    assert ours.shape == theirs.shape == (height * 3 // 2, width)
    back = av.VideoFrame.from_ndarray(ours, format="yuv420p").to_ndarray(format="rgb24").astype(int)
    assert np.abs(back - img).max() <= 6  # the planes are where PyAV reads them: the colours come back


@pytest.mark.parametrize("kw, msg", [
    (dict(size=8), "--size"), (dict(size=49), "--size"), (dict(frames=1), "--frames"),
    (dict(size=100000), "--size: at most 1024"),  # was an internal MemoryError (149 GiB of grid)
    (dict(frames=1000, size=1024), r"--frames 1000 at --size 1024: each video is rendered in memory \(2.9 GiB"),
])
def test_bad_synth_settings_are_input_errors(tmp_path, kw, msg):
    from expand.errors import InputError

    with pytest.raises(InputError, match=msg):
        SynthConfig(str(tmp_path / "d"), **kw)


def test_synth_into_a_file_is_an_input_error(tmp_path):
    from expand.errors import InputError

    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        SynthConfig(str(tmp_path / "f"))


def test_synth_into_a_real_datasets_folder_leaves_its_manifests_alone(tmp_path, capsys):
    """`data synth data/k400` by mistake overwrote the dataset's train/val/test.csv."""
    from expand.cli import main

    real = tmp_path / "k400"
    real.mkdir()
    (real / "val.csv").write_text("abseiling/x.mp4 0\n")
    small = ["--classes", "2", "--videos-per-class", "2", "--val-per-class", "1", "--frames", "8", "--size", "32"]
    assert main(["data", "synth", str(real), *small]) == 2
    assert f"{real / 'val.csv'}: a manifest data synth did not write ('abseiling/x.mp4 0')" in capsys.readouterr().err
    assert os.listdir(real) == ["val.csv"] and (real / "val.csv").read_text() == "abseiling/x.mp4 0\n"
    # its own dataset, written again with other settings after a rewrite lost dataset.json: fine
    ours = tmp_path / "synth"
    assert main(["data", "synth", str(ours), *small]) == 0
    (ours / "dataset.json").unlink()
    assert main(["data", "synth", str(ours), *small[:-2], "--size", "64"]) == 0
    assert json.loads((ours / "dataset.json").read_text())["size"] == 64


def test_synth_under_a_file_is_exit_2_not_an_internal_error(tmp_path, capsys):
    from expand.cli import main

    (tmp_path / "f").write_text("x")
    code = main(["data", "synth", str(tmp_path / "f" / "d"), "--classes", "2", "--videos-per-class", "1",
                 "--val-per-class", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the dataset folder: Not a directory" in err
    assert (tmp_path / "f").read_text() == "x"


def test_synth_writes_a_test_manifest_slowfast_reads_after_training(tmp_path):
    cfg = SynthConfig(str(tmp_path / "d"), classes=2, videos_per_class=2, val_per_class=1, frames=6, size=48)
    write_dataset(cfg)
    val = (tmp_path / "d" / "val.csv").read_text()
    assert (tmp_path / "d" / "test.csv").read_text() == val and len(val.splitlines()) == 2
    (tmp_path / "d" / "test.csv").unlink()  # a dataset written before test.csv existed gains it
    assert write_dataset(cfg).get("up_to_date") is True
    assert (tmp_path / "d" / "test.csv").read_text() == val


def test_sigterm_stops_synth_with_a_line_about_the_dataset_not_about_trials(tmp_path):
    """It said "finished trials are kept, 'resume' continues" (the search's line) and forked
    workers inherited the CLI's handler."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "synth"
    proc = subprocess.Popen([sys.executable, "-m", "expand.cli", "data", "synth", str(out), "--size", "32",
                             "--frames", "8", "--videos-per-class", "5000", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("videos/*/*.mp4")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (
        "x3d-expand: terminated (SIGTERM); the dataset is incomplete: run the same command again")
    assert "resume" not in err and "Traceback" not in err
    assert not (out / "dataset.json").exists()  # nothing says it is complete
