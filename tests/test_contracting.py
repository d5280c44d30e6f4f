"""expand/contracting.py: the contract command trains contracted models and records them."""

import json

import pytest

from expand.run import RunDir


def test_contract_train_trains_the_contracted_models_and_records_them(oracle_run, tmp_path, capsys):
    import shutil

    from expand.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(oracle_run, run_dir)
    before = len(RunDir(str(run_dir)).read_trials().records)
    # 0.0061 contracts step 2 (fast, 4 frames) to 3 frames: a model no trial trained; 0.005 lands on
    # step 1's model (2 frames), which is reused, not trained again
    assert main(["contract", str(run_dir), "--target-gflops", "0.0061", "0.005", "--train", "--runner", "serial",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # progress went to stderr: stdout is the one object
    reused, item = out["contractions"]
    assert item["status"] == "ok" and 0 < item["top1_frac"] <= 1 and item["gflops"] <= 0.0061 * 1.02
    assert item["flop_error_frac"] == pytest.approx(item["gflops"] / 0.0061 - 1)
    assert "error_frac" not in item  # "error" is a trial's message, never the FLOP error
    assert reused["reused_step"] == 1 and "status" not in reused
    records = RunDir(str(run_dir)).read_trials().records
    assert len(records) == before + 1 and records[-1].trial.trial_id == "contract-0.0061"
    assert records[-1].result.top1 == item["top1_frac"]
    # a second contract without --train keeps the trained accuracy
    assert main(["contract", str(run_dir), "--target-gflops", "0.0061", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["contractions"][0]
    assert again["top1_frac"] == item["top1_frac"]
