"""expand.load_run / Run: a run folder as DataFrames and models (real trainer runs and oracle runs)."""

import math
import os

import pandas as pd
import pytest
import torch
import yaml

import expand
from expand.data.synth import SynthConfig, write_dataset
from expand.errors import InputError
from tests.search.helpers import TINY, confirmed_oracle_run, oracle_experiment


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real one-step search with the trainer (two axes, serial), trial.checkpoint at its default."""
    root = tmp_path_factory.mktemp("synth")
    write_dataset(SynthConfig(str(root), classes=2, videos_per_class=4, val_per_class=2, frames=12, size=64,
                              seed=1))
    with open(root / "train.csv", "a") as fh:  # a listed video that is gone: skipped by every trial, and said
        fh.write("videos/taken_down.mp4 1\n")
    space = yaml.safe_load(open(TINY))
    space["axes"] = ["fast", "spatial"]
    (root / "space.yaml").write_text(yaml.safe_dump(space))
    exp = {
        "name": "run-view", "search_space": "space.yaml",
        "data": {"root": ".", "num_classes": 2, "hflip": False, "jitter": [1.0, 1.1], "cache": "off"},
        "schedule": {"epochs": 1, "batch_size": 4},
        "trial": {"workers": 0, "threads": 1, "throughput_batches": 1},
        "search": {"max_steps": 1, "runner": "serial"},
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(exp))
    return expand.search(str(root / "exp.yaml"), out=str(root / "run"), quiet=True), root


def test_steps_are_steps_csv_and_the_path_has_its_weights(trained_run):
    from expand.results import STEP_COLUMNS

    run, _ = trained_run
    assert run.kind == "expansion" and run.status == "finished"
    steps = run.steps
    assert list(steps.columns) == STEP_COLUMNS and len(steps) == 3  # basis + two axes
    on_disk = pd.read_csv(os.path.join(run.folder, "steps.csv"))
    assert list(on_disk.trial_id) == list(steps.trial_id)
    assert on_disk.top1_frac.tolist() == pytest.approx(steps.top1_frac.tolist())
    path = run.path
    assert list(path.step) == [0, 1] and path.weights.notna().all()
    # trial.checkpoint "path": the step's loser kept no weights, the path's models did
    trials = run.trials.set_index("trial_id")
    loser = steps[(steps.step == 1) & ~steps.chosen].trial_id.iloc[0]
    assert pd.isna(trials.loc[loser, "weights"])
    assert set(trials.weights.dropna().index) == set(path.trial_id)


def test_model_loads_the_trained_weights_that_scored_the_paths_top1(trained_run):
    from expand.data.dataset import ClipDataset, make_loader, prepare_split
    from expand.train import evaluate

    run, _ = trained_run
    model = run.model()  # the last path model
    assert not model.training
    last = run.path.iloc[-1]
    exp = run.experiment
    items, _, cache = prepare_split(exp.data, exp.search_space, "val")
    ds = ClipDataset(items, cache, exp.data, int(last.frames), int(last.stride), int(last.crop), "val",
                     int(run.trials.set_index("trial_id").loc[last.trial_id, "seed"]))
    ev = evaluate(model, make_loader(ds, 4, False, 0, torch.device("cpu")), torch.device("cpu"),
                  torch.contiguous_format, None)
    assert ev.top1 == pytest.approx(last.top1_frac)
    fresh = run.model(weights=False)
    trained_sd, fresh_sd = model.state_dict(), fresh.state_dict()
    assert trained_sd.keys() == fresh_sd.keys()
    assert any(not torch.equal(trained_sd[k], fresh_sd[k]) for k in trained_sd)
    basis = run.model(step=0)
    assert basis.spec.frames == int(run.path.iloc[0].frames)


def test_bad_model_requests_are_one_line_input_errors(trained_run):
    run, _ = trained_run
    with pytest.raises(InputError, match="step 7: the path has steps 0..1"):
        run.model(step=7)
    with pytest.raises(InputError, match="at most one of"):
        run.model(step=0, budget=1.0)
    loser = run.steps[(run.steps.step == 1) & ~run.steps.chosen].trial_id.iloc[0]
    with pytest.raises(InputError, match=f"trial {loser} kept no weights.*trial.checkpoint is 'path'"):
        run.model(trial=loser)
    assert run.model(trial=loser, weights=False) is not None
    with pytest.raises(InputError, match="not a run folder"):
        expand.load_run(os.path.join(run.folder, "nope"))


@pytest.mark.parametrize("policy, kept", [("all", 3), ("none", 0)])
def test_checkpoint_all_keeps_every_trial_and_none_keeps_nothing(trained_run, policy, kept):
    from expand.weights import kept as kept_ids

    _, root = trained_run
    exp = yaml.safe_load(open(root / "exp.yaml"))
    exp["trial"]["checkpoint"] = policy
    (root / f"exp-{policy}.yaml").write_text(yaml.safe_dump(exp))
    run = expand.search(str(root / f"exp-{policy}.yaml"), out=str(root / f"run-{policy}"), quiet=True)
    assert len(kept_ids(run.folder)) == kept
    if policy == "none":
        with pytest.raises(InputError, match="kept no weights"):
            run.model()


def test_oracle_run_contracts_and_builds_fresh_networks(tmp_path):
    run = expand.search(oracle_experiment(tmp_path, search={"max_steps": 2}), out=str(tmp_path / "run"),
                        quiet=True)
    assert list(run.path.step) == [0, 1, 2] and run.path.weights.isna().all()  # the oracle trains nothing
    c = run.contract(0.006)
    assert c.spec is not None and c.gflops <= 0.006 and c.step == 2
    assert run.contractions == []  # computed, not saved
    best = run.best(0.005)
    assert best.gflops <= 0.005 and best.top1_frac == run.trials[run.trials.gflops <= 0.005].top1_frac.max()
    assert run.best(0.0001) is None
    model = run.model(budget=0.006, weights=False)
    out = model(torch.randn(1, 3, c.spec.frames, c.spec.crop, c.spec.crop))
    assert out.shape == (1, 10)
    with pytest.raises(InputError, match="kept no weights"):
        run.model()
    # arguments named as Python names them; numpy's integers (a DataFrame's cells) are integers
    assert run.spec(step=run.path.step.iloc[-1])[0] == run.spec(step=2)[0]
    for call, message in ((lambda: run.model(step="1"), r"^step: must be an integer \(0 = the basis\), got '1'$"),
                          (lambda: run.model(step=True), r"^step: must be an integer"),
                          (lambda: run.best(float("nan")), r"^budget_gflops: must be a positive finite number"),
                          (lambda: run.best(-1), r"^budget_gflops: must be a positive finite number, got -1$"),
                          (lambda: run.model(budget=float("inf")), r"^budget: must be a positive finite number"),
                          (lambda: run.contract(float("nan")), r"^gflops: must be a positive finite number, got nan$"),
                          (lambda: run.contract(1e-9), r"^gflops 1e-09: impossible: the basis already needs")):
        with pytest.raises(InputError, match=message):
            call()


def test_a_baseline_run_reads_the_same_way(tmp_path):
    run = expand.baseline(oracle_experiment(tmp_path), "random", 3, out=str(tmp_path / "b"), quiet=True)
    assert run.kind == "random" and len(run.trials) == 3
    assert len(run.path) == 1 and run.path.top1_frac.iloc[0] == run.trials.top1_frac.max()
    assert run.steps.chosen.sum() == 1 and not math.isnan(run.steps.top1_frac.max())
    budget = float(run.trials.gflops.median())  # a baseline's model under a budget: its best there
    assert run.spec(budget=budget)[1] == run.best(budget).trial_id
    assert run.model(budget=budget, weights=False).training is False
    with pytest.raises(InputError, match="the random baseline trained no model at or under it"):
        run.spec(budget=0.0001)
    with pytest.raises(InputError, match="a random baseline has no expansion path to contract"):
        run.contract(0.01)


def test_resume_from_python_continues_a_run_and_returns_it(tmp_path):
    exp = oracle_experiment(tmp_path, search={"max_steps": 1})
    first = expand.search(exp, out=str(tmp_path / "run"), quiet=True)
    trials = (tmp_path / "run" / "trials.jsonl").read_text()
    again = expand.resume(first.folder, quiet=True)  # finished: replays, retrains nothing
    assert (tmp_path / "run" / "trials.jsonl").read_text() == trials
    assert list(again.path.trial_id) == list(first.path.trial_id) and again.status == "finished"
    with pytest.raises(InputError, match="not a run folder"):
        expand.resume(str(tmp_path / "nowhere"), quiet=True)


def test_show_says_how_many_videos_the_trials_saw_and_that_a_missing_one_was_skipped(trained_run, capsys):
    import json

    from expand.cli import main

    run, root = trained_run
    assert set(run.trials.status) == {"ok"}
    assert main(["show", run.folder]) == 0
    out = capsys.readouterr().out
    assert (f"data: 8 train, 4 val videos per trial; 1 listed video(s) unreadable or missing, skipped by every "
            f"trial ('x3d-expand data check {root}' says why)") in out
    assert main(["show", run.folder, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == {"train": [8, 8], "val": [4, 4], "unreadable": [1, 1]}
    # manifests the folder alone would not find (other names): the run's own config.yaml is what to check
    config = os.path.join(run.folder, "config.yaml")
    with open(config) as fh:
        text = fh.read()
    with open(config, "w") as fh:
        fh.write(text.replace("train: train.csv", "train: lists/train.txt"))
    assert main(["show", run.folder]) == 0
    assert f"('x3d-expand data check {config}' says why)" in capsys.readouterr().out


def test_best_ranks_a_model_trained_with_several_seeds_by_its_mean(tmp_path):
    run = expand.load_run(confirmed_oracle_run(tmp_path))
    trials = run.trials[run.trials.status == "ok"]
    model = trials.trial_id.str.replace(r"-seed\d+$", "", regex=True)
    means = trials.groupby(model).top1_frac.mean()
    best = run.best()
    assert best.trial_id == means.idxmax() and best.top1_frac == pytest.approx(means.max())
    assert best.seeds == (model == best.trial_id).sum() and trials.top1_frac.max() > means.max()


def test_run_export_writes_what_the_cli_writes_and_defaults_to_the_last_path_model(oracle_run, tmp_path):
    import shutil

    import expand
    from expand.cli import main
    from expand.errors import InputError

    run_dir = tmp_path / "run"
    shutil.copytree(oracle_run, run_dir)
    run = expand.load_run(str(run_dir))
    last = run.export()  # as run.model(): the last path model
    assert last.spec == run.spec()[0] and last.path.endswith("x3d_step2_gflops@%.3g.yaml" % last.gflops)
    text = (run_dir / "export" / last.path.split("/")[-1]).read_text()
    assert main(["export", str(run_dir), "--step", "2"]) == 0  # the CLI writes the same file, the same text
    assert (run_dir / "export" / last.path.split("/")[-1]).read_text() == text
    budget = run.export(budget=0.006, format="pytorchvideo")
    assert budget.format == "pytorchvideo" and budget.spec == run.contract(0.006).spec
    for args, message in ((dict(step=1, budget=0.006), "export: give step or budget, not both"),
                          (dict(format="onnx"), "export: format must be one of slowfast, mmaction2, pytorchvideo"),
                          (dict(step=True), "export: step must be an integer, got True"),
                          (dict(budget=float("inf")), "budget: must be a positive finite number, got inf")):
        with pytest.raises(InputError, match="^" + message):
            run.export(**args)
