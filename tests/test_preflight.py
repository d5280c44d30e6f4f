"""The checks a run makes before it writes anything: each bad input is one exit-2 error naming it."""

import math

import pytest

from expand.config import load_experiment
from expand.errors import ConfigError, InputError
from expand.preflight import check_budgets, check_cluster, check_contract_targets, steps_to, validate
from expand.run import PathEntry
from tests.search.helpers import oracle_experiment


def test_steps_to_counts_whole_steps_of_the_factor():
    assert steps_to(8.0, 1.0, 2.0) == 3  # exactly reached: no extra step for rounding error
    assert steps_to(8.01, 1.0, 2.0) == 4
    assert steps_to(1.5, 1.0, 2.0) == 1  # a step at least


def test_budgets_below_the_basis_out_of_reach_or_capped_below_it_are_refused(tmp_path, counter):
    exp = load_experiment(oracle_experiment(tmp_path, search={"max_steps": 2}))
    basis = counter.gflops(exp.search_space.basis)
    assert check_budgets(exp, counter) == pytest.approx(basis)
    factor = exp.search_space.step.flops_factor

    low = load_experiment(oracle_experiment(tmp_path, "low.yaml", search={"targets": [basis / 2]}))
    with pytest.raises(ConfigError, match=r"search.targets: .* below the basis"):
        check_budgets(low, counter)
    far = load_experiment(oracle_experiment(tmp_path, "far.yaml",
                                            search={"max_steps": 2, "targets": [basis * factor ** 6]}))
    with pytest.raises(ConfigError, match=r"out of reach: about 6 steps .* search.max_steps is 2"):
        check_budgets(far, counter)
    with pytest.raises(ConfigError, match=r"--max-gflops: .* below the basis"):
        check_budgets(exp, counter, max_gflops=basis / 2)


def test_the_plan_counts_only_the_steps_the_largest_target_needs(tmp_path, counter):
    exp = load_experiment(oracle_experiment(tmp_path, search={"max_steps": 5}))
    basis = counter.gflops(exp.search_space.basis)
    axes = len(exp.search_space.axes)
    assert validate(exp, counter)[-1].endswith(f"up to 5 steps x {axes} candidates: at most "
                                               f"{1 + 5 * axes} trials (+ retries)")
    factor = exp.search_space.step.flops_factor
    near = load_experiment(oracle_experiment(tmp_path, "near.yaml",
                                             search={"max_steps": 5, "targets": [basis * factor * 1.01]}))
    assert f"up to 3 steps x {axes} candidates" in validate(near, counter)[-1]  # 2 steps reach it, +1 past


def _entry(step: int, gflops: float) -> PathEntry:
    from expand.spec import ArchSpec

    return PathEntry(step, "basis" if step == 0 else "frames", f"t{step}", ArchSpec(frames=1, stride=1, crop=64), gflops, 1, 0.1, 0.2)


def test_contraction_targets_must_lie_on_the_path():
    path = [_entry(0, 0.01), _entry(1, 0.02), _entry(2, 0.04)]
    check_contract_targets(path, [0.01, 0.03, 0.04])  # the ends included
    for bad, message in ((math.nan, "positive finite"), (0.0, "positive finite"),
                         (0.005, "the basis already needs 0.01 GFLOPs"),
                         (0.05, "above the path's largest model .* at step 2")):
        with pytest.raises(InputError, match=message):
            check_contract_targets(path, [0.02, bad])


def test_gpus_for_the_serial_runner_without_cuda_are_refused_before_the_run(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    exp = load_experiment(oracle_experiment(tmp_path, resources={"gpus_per_trial": 1}))
    with pytest.raises(ConfigError, match=r"resources.gpus_per_trial: 1 GPUs per trial, but the serial runner "
                                          r"trains in this process and CUDA is not available"):
        check_cluster(exp, address=None)
    check_cluster(load_experiment(oracle_experiment(tmp_path, "cpu.yaml")), address=None)  # 0 GPUs: fine


def test_only_an_expansion_with_a_trained_step_has_a_path_to_contract():
    from expand.preflight import check_has_path

    check_has_path("run", "expansion", [_entry(0, 0.01)])
    for kind, path, message in (("expansion", [], "no trained step yet"),
                                ("tpe", [], "a tpe baseline has no expansion path .* 'x3d-expand export run"),
                                ("calibration", [], "a calibration run has no expansion path")):
        with pytest.raises(InputError, match=message):
            check_has_path("run", kind, path)


def test_an_address_for_the_serial_runner_is_refused_not_ignored(tmp_path):
    """A user who names a cluster expects the trials there; the serial runner trains in this process."""
    exp = load_experiment(oracle_experiment(tmp_path))  # search.runner: serial
    with pytest.raises(ConfigError, match=r"^--address auto: joins a Ray cluster, but .* runs its trials in this "
                                          r"process \(search.runner: serial\); add --runner ray$"):
        check_cluster(exp, address="auto")
    check_cluster(exp, address=None)


def test_resume_with_the_serial_runner_leaves_the_cluster_the_run_was_started_on(tmp_path, capsys):
    """A run started on a cluster (its address recorded) and resumed here with --runner serial."""
    import json

    from expand.cli import main

    run = tmp_path / "run"
    assert main(["search", oracle_experiment(tmp_path, search={"max_steps": 1}), "--out", str(run), "--quiet"]) == 0
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({**state, "address": "auto"}))
    capsys.readouterr()
    assert main(["resume", str(run), "--runner", "serial", "--quiet"]) == 0, capsys.readouterr().err
    assert main(["resume", str(run), "--runner", "serial", "--address", "auto", "--quiet"]) == 2
    assert "add --runner ray" in capsys.readouterr().err


def test_a_cache_folder_that_cannot_be_made_here_is_refused_before_the_run_folder(tmp_path, monkeypatch, capsys):
    # a dataset on a read-only mount with data.cache: auto (os.access says so there, even to root;
    # a test cannot mount one): the search wrote its folder, then failed its first trial
    import os

    import yaml

    from expand.cli import main
    from expand.data.synth import SynthConfig, write_dataset

    data = tmp_path / "data"
    write_dataset(SynthConfig(str(data), classes=2, videos_per_class=1, val_per_class=1, frames=4, size=32))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"name": "ro", "search_space": "tiny_cpu", "search": {"runner": "serial"},
                                   "data": {"root": str(data), "num_classes": 2}}))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.path.abspath(path) == str(data)
                        else real_access(path, mode))
    for extra in (["--check"], []):
        assert main(["search", str(exp), "--out", str(tmp_path / "run"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"data.cache: auto keeps the frame cache in the dataset's folder: cannot create "
                            f"{data}/.x3d-frame-cache: {data} cannot be written here (a read-only mount?); give "
                            "data.cache a folder this machine can write (--set data.cache=/scratch/x3d-frames), "
                            "or off to decode the videos as trials read them") and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
    # what the message says to do
    cache = tmp_path / "scratch" / "frames"
    assert main(["search", str(exp), "--out", str(tmp_path / "run"), "--check", "--set", f"data.cache={cache}"]) == 0
    os.makedirs(data / ".x3d-frame-cache")  # a cache someone built where they could write: read, not refused
    assert main(["search", str(exp), "--out", str(tmp_path / "run"), "--check"]) == 0
