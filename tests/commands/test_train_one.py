"""``x3d-expand train``: one trial by hand, under the experiment's own rules."""

import json
import re

from expand.cli import main
from tests.search.helpers import oracle_experiment


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_the_trials_result_as_a_line_or_as_json(tmp_path, capsys):
    exp = oracle_experiment(tmp_path)
    code, out, err = run(capsys, "train", exp, "--preset", "X3D-XS", "--seed", "4", "--json")
    assert code == 0, err
    line = json.loads(out)
    assert line["status"] == "ok" and line["name"] == "x3d_4x12_160_w2.0_b2.25_d2.2"
    assert line["seed"] == 4 and 0 <= line["top1_frac"] <= 1
    code, out, _ = run(capsys, "train", exp, "--preset", "X3D-XS")
    assert code == 0 and out.startswith("x3d_4x12_160_w2.0_b2.25_d2.2: ok  top1 ")
    assert "nan" not in out and " infer " in out  # the oracle trains nothing: no train rate to print


def test_train_with_an_out_that_cannot_be_a_folder_is_a_one_line_exit_2_before_training(tmp_path, capsys):
    exp = oracle_experiment(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    for out_arg, why in ((tmp_path / "taken", "exists and is not a folder"),
                         (tmp_path / "taken" / "trial", "cannot create the trial's folder: Not a directory")):
        code, out, err = run(capsys, "train", exp, "--preset", "X3D-XS", "--out", str(out_arg))
        assert code == 2 and out == "" and err.strip() == f"x3d-expand: error: {out_arg}: {why}"
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_train_stops_a_hung_trial_at_the_experiments_time_limit(tmp_path, capsys):
    exp = oracle_experiment(tmp_path, options={"hang_axes": {"manual": 9}, "hang_s": 60}, trial={"time_limit_s": 0.5})
    code, out, err = run(capsys, "train", exp, "--preset", "X3D-XS")
    assert code == 1, err
    first, second = out.strip().splitlines()
    assert first.startswith("x3d_4x12_160_w2.0_b2.25_d2.2: timeout after 0.") and "nan" not in first
    assert re.fullmatch(r"  error: stopped after \d\.\d s: trial.time_limit_s is 0.5 \(interrupted in process\)", second)
    code, out, _ = run(capsys, "train", exp, "--preset", "X3D-XS", "--json")
    line = json.loads(out)  # a trial's message keeps its name: it is not a fraction
    assert code == 1 and line["status"] == "timeout" and line["error"].startswith("stopped after")


def test_train_with_a_bad_preset_is_a_one_line_exit_2(tmp_path, capsys):
    code, out, err = run(capsys, "train", oracle_experiment(tmp_path), "--preset", "X3D-Q")
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1].endswith("unknown preset 'X3D-Q' (presets: X2D, X3D-XS, X3D-S, X3D-M, X3D-L, X3D-XL)")


def test_train_builds_the_frame_cache_with_every_core_first_and_keeps_json_stdout_one_object(tmp_path, capsys):
    import os

    from expand.data.synth import SynthConfig, write_dataset

    root = tmp_path / "data"
    write_dataset(SynthConfig(str(root), classes=2, videos_per_class=2, val_per_class=1, frames=8, size=32, seed=0))
    exp = oracle_experiment(tmp_path, data={"root": str(root), "num_classes": 2, "cache_format": "jpeg"})
    code, out, err = run(capsys, "train", exp, "--preset", "X3D-XS", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "ok"  # stdout: the one object
    assert "frame cache: 6 video(s) decoded" in err and f"on {os.cpu_count()} core(s)" in err
    assert len([f for f in os.listdir(root / ".x3d-frame-cache") if f.endswith(".jpgs")]) == 6
    code, out, _ = run(capsys, "train", exp, "--preset", "X3D-XS")  # complete now: nothing said
    assert code == 0 and out.startswith("x3d_4x12_160_w2.0_b2.25_d2.2: ok  top1 ")
