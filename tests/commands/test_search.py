"""``search --check``: every check a search makes before it writes, its plan, and nothing written."""

import json
import os

import pytest

from expand.cli import main
from expand.config import load_experiment
from expand.preflight import where_trials_run
from tests.search.helpers import oracle_experiment


def test_check_prints_the_plan_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default run folder (results/<name>-<time>) would go
    exp = oracle_experiment(tmp_path, search={"max_steps": 2, "targets": [0.006]})
    out = tmp_path / "run"
    assert main(["search", exp, "--check", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plan: basis 0.002054 GFLOPs, up to 2 steps x 6 candidates: at most 13 trials (+ retries)" in text
    assert "trials: one at a time, in this process" in text
    assert f"run folder: {out}\n" in text and text.rstrip().endswith("checked: nothing written, no trial run")
    assert main(["search", exp, "--check", "--runner", "ray", "--max-steps", "1", "--targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["checked"] and data["experiment"] == exp and os.path.basename(data["out"]).startswith("oracle-test-")
    assert data["plan"][0] == "plan: basis 0.002054 GFLOPs, up to 1 steps x 6 candidates: at most 7 trials (+ retries)"
    assert data["plan"][1].startswith("trials: ") and " at a time on a local Ray cluster (" in data["plan"][1]
    assert data["out"].startswith(str(tmp_path / "results" / "oracle-test-"))
    assert sorted(os.listdir(tmp_path)) == ["exp.yaml"]  # no run folder, not even the default one


@pytest.mark.parametrize("what, message", [
    ("a run", "already holds a run; use 'x3d-expand resume"),
    ("other files", "not empty and not a run folder (1 entry, e.g. 'notes.txt')"),
    ("out of reach", "search.targets: 5 GFLOPs is out of reach"),
    ("no such GPUs", "resources.gpus_per_trial: 64 GPUs per trial, but this machine (the search's own Ray "
                     "cluster) has"),
])
def test_check_refuses_what_the_search_would_with_one_line(tmp_path, capsys, what, message):
    out = tmp_path / "out"
    out.mkdir()
    extra = []
    if what == "a run":
        assert main(["search", oracle_experiment(tmp_path, search={"max_steps": 1}), "--out", str(out),
                     "--quiet"]) == 0
        capsys.readouterr()
    elif what == "other files":
        (out / "notes.txt").write_text("mine")
    elif what == "out of reach":
        extra = ["--targets", "5"]
    before = sorted(os.listdir(out))
    exp = oracle_experiment(tmp_path, name="check.yaml", resources={"gpus_per_trial": 64},
                            search={"runner": "ray"}) if what == "no such GPUs" else oracle_experiment(tmp_path,
                                                                                                      name="check.yaml")
    assert main(["search", exp, "--check", "--out", str(out), *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""
    assert sorted(os.listdir(out)) == before


@pytest.mark.parametrize("resources, expected", [
    ({"cpus_per_trial": 1}, "cpus"),
    ({"cpus_per_trial": 0.5}, "2 x cpus"),
    ({"cpus_per_trial": 0.5, "max_concurrent": 1}, "1"),
])
def test_trials_at_a_time_on_a_local_cluster_follow_the_resources(tmp_path, resources, expected):
    exp = load_experiment(oracle_experiment(tmp_path, resources=resources, search={"runner": "ray"}))
    cpus = len(os.sched_getaffinity(0))
    n = {"cpus": cpus, "2 x cpus": 2 * cpus, "1": 1}[expected]
    assert where_trials_run(exp, None).startswith(f"trials: {n} at a time on a local Ray cluster ({cpus} CPUs")
    assert where_trials_run(exp, "ray://head:10001").startswith("trials: on the Ray cluster at ray://head:10001")


def test_check_search_from_python_returns_the_plan_and_raises_what_the_cli_exits_2_for(tmp_path):
    import pathlib

    import expand

    exp = pathlib.Path(oracle_experiment(tmp_path, search={"max_steps": 1}))
    lines = expand.check_search(exp, out=tmp_path / "run", targets=[0.004])
    assert lines == ["plan: basis 0.002054 GFLOPs, up to 1 steps x 6 candidates: at most 7 trials (+ retries)",
                     "trials: one at a time, in this process"]
    with pytest.raises(expand.ConfigError, match="search.max_steps"):
        expand.check_search(exp, max_steps=0)
    with pytest.raises(expand.InputError, match="out must be a path"):
        expand.check_search(exp, out=123)
    assert sorted(os.listdir(tmp_path)) == ["exp.yaml"]


@pytest.mark.parametrize("argv, plan, suffix", [
    (["baseline", "--method", "tpe", "--trials", "20", "--max-gflops", "0.01"],
     "plan: tpe baseline, 20 trained trials, models at or under 0.01 GFLOPs (+ retries)", "-tpe-"),
    (["calibrate", "--schedules", "1", "3", "--seeds", "2"],
     "plan: the basis and step 1's 6 candidates at 1x, 3x the schedule, 2 seed(s) each: at most 28 trials "
     "(+ retries)", "-calibration-"),
])
def test_baseline_and_calibrate_check_too(tmp_path, capsys, monkeypatch, argv, plan, suffix):
    monkeypatch.chdir(tmp_path)
    exp = oracle_experiment(tmp_path)
    assert main([argv[0], exp, *argv[1:], "--check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plan"] == [plan, "trials: one at a time, in this process"]
    assert os.path.basename(data["out"]).startswith(f"oracle-test{suffix}")
    assert main([argv[0], exp, *argv[1:], "--check", "--seed", "-1"]) == 2  # the run's own checks, as without
    assert "--seed" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["exp.yaml"]


def test_a_baseline_check_refuses_its_own_bad_arguments(tmp_path, capsys):
    exp = oracle_experiment(tmp_path)
    assert main(["baseline", exp, "--method", "random", "--trials", "5", "--max-gflops", "0.001", "--check"]) == 2
    assert "--max-gflops: 0.001 GFLOPs is below the basis" in capsys.readouterr().err
    assert main(["calibrate", exp, "--schedules", "1", "1", "--check"]) == 2
    assert "--schedules: give at least two different multipliers" in capsys.readouterr().err
