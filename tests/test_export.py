import json

import pytest
import yaml

from expand.cli import main
from expand.errors import SpecError
from expand.export import slowfast_config, spec_from_slowfast
from expand.presets import get_preset
from expand.run import RunDir


def _path(run_dir):
    return RunDir(str(run_dir)).read_state()["path"]


def test_export_step_round_trips_to_the_same_model(oracle_run, counter, capsys):
    from expand.spec import ArchSpec

    step = _path(oracle_run)[-1]
    assert main(["export", str(oracle_run), "--step", str(step["step"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"].startswith(str(oracle_run / "export")) and "x3d_step2_gflops@" in out["path"]
    with open(out["path"]) as fh:
        text = fh.read()
    assert text.startswith("# SlowFast X3D config written by x3d-expand")
    cfg = yaml.safe_load(text)
    assert cfg["MODEL"]["ARCH"] == "x3d" and cfg["MODEL"]["NUM_CLASSES"] == 10
    back = spec_from_slowfast(cfg)
    original = ArchSpec.from_dict(step["spec"])
    assert back == original
    assert counter.params(back) == step["params"] == out["params"]
    assert counter.gflops(back) == pytest.approx(step["gflops"], rel=1e-9)


def test_export_budget_uses_the_contraction(oracle_run, counter, capsys):
    assert main(["export", str(oracle_run), "--target-gflops", "0.006", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"].endswith("x3d_gflops@0.006.yaml")
    with open(out["path"]) as fh:
        back = spec_from_slowfast(yaml.safe_load(fh))
    contracted = json.loads((oracle_run / "contractions.json").read_text())
    item = next(c for c in contracted if c["target_gflops"] == 0.006)
    assert back.to_dict() == item["spec"]
    assert counter.gflops(back) <= 0.006 * 1.02


def test_export_x3d_m_matches_slowfasts_config():
    cfg = slowfast_config(get_preset("X3D-M").spec)
    assert cfg["X3D"] == {"WIDTH_FACTOR": 2.0, "DEPTH_FACTOR": 2.2, "BOTTLENECK_FACTOR": 2.25, "DIM_C1": 12,
                          "DIM_C5": 2048, "SCALE_RES2": False, "BN_LIN5": False, "CHANNELWISE_3x3x3": True}
    data = cfg["DATA"]
    assert (data["NUM_FRAMES"], data["SAMPLING_RATE"], data["TRAIN_CROP_SIZE"], data["TEST_CROP_SIZE"]) == (16, 5, 224, 256)
    assert data["TRAIN_JITTER_SCALES"] == [256, 320]


def test_export_refuses_what_slowfast_cannot_build():
    spec = get_preset("X3D-S").spec.replace(stem_kernel_t=3)
    with pytest.raises(SpecError, match="stem_kernel_t"):
        slowfast_config(spec)


def test_export_bad_inputs_exit_2(oracle_run, tmp_path, capsys):
    assert main(["export", str(oracle_run), "--step", "9"]) == 2
    assert "--step 9" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--step", "1"]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["export", str(oracle_run)]) == 2  # neither --step nor --target-gflops
    assert main(["export", str(oracle_run), "--target-gflops", "0.0001"]) == 2
    assert "impossible" in capsys.readouterr().err
