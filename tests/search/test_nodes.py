"""What a node check finds, run in this process (the multi-node tests run it on every node)."""

import os

import expand
from expand.search.nodes import DATA_ROOT_ENV, Requirements, node_data_root, probe

ORACLE = "expand.search.oracle:run_oracle"


def test_a_node_like_the_coordinator_has_no_problem(tmp_path):
    (tmp_path / "train.csv").write_text("a.mp4 0\n")
    (tmp_path / "val.csv").write_text("b.mp4 0\n")
    got = probe(Requirements(expand.__version__, ORACLE, str(tmp_path), ("train.csv", "val.csv"), ".x3d-frame-cache"))
    assert got["problems"] == [] and got["version"] == expand.__version__
    assert got["package"] == os.path.dirname(expand.__file__)
    assert any("build their own" in n for n in got["notes"])  # no cache yet: trials there build one


def test_each_problem_is_named(tmp_path, monkeypatch):
    (tmp_path / "train.csv").write_text("a.mp4 0\n")
    got = probe(Requirements("0.0.1", "nowhere:fn", str(tmp_path), ("train.csv", "val.csv")))
    problems = " | ".join(got["problems"])
    assert f"x3d-expand {expand.__version__} here, 0.0.1 on the coordinator" in problems
    assert "trial.function nowhere:fn" in problems
    assert f"{tmp_path / 'val.csv'}: not readable here" in problems and "train.csv" not in problems
    missing = probe(Requirements(expand.__version__, ORACLE, str(tmp_path / "gone"), ("train.csv",)))
    assert missing["problems"] == [f"data.root {tmp_path / 'gone'}: not a readable folder here"]


def test_a_node_that_mounts_the_data_elsewhere_says_so_and_is_checked_there(tmp_path, monkeypatch):
    elsewhere = tmp_path / "mnt"
    elsewhere.mkdir()
    (elsewhere / "train.csv").write_text("a.mp4 0\n")
    monkeypatch.setenv(DATA_ROOT_ENV, str(elsewhere))
    assert node_data_root("/data/k400") == str(elsewhere)
    got = probe(Requirements(expand.__version__, ORACLE, "/data/k400", ("train.csv",)))
    assert got["problems"] == [] and got["notes"] == [f"data at {elsewhere} ({DATA_ROOT_ENV})"]
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert node_data_root("/data/k400") == "/data/k400"


def test_an_experiment_without_data_needs_only_the_package_and_function():
    req = Requirements.of(expand.load_experiment("oracle"))
    assert req.data_root == "" and req.manifests == () and req.cache_dir == ""
    assert probe(req)["problems"] == []
