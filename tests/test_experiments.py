"""The shipped experiment files load, resolve, and fail cleanly without their data."""

import os

import pytest
import yaml

from expand.cli import main
from expand.config import load_experiment
from expand.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", ["kinetics400_gpus", "folder_dataset", "synthetic_tiny", "oracle"])
def test_shipped_experiments_resolve(name):
    exp = load_experiment(os.path.join(ROOT, "experiments", f"{name}.yaml"), check_paths=False)
    resolved = exp.to_dict()
    assert resolved["search_space"]["basis"]["frames"] == 1
    assert os.path.isabs(exp.data.root) or not exp.data.root


@pytest.mark.parametrize("name", ["kinetics400_gpus", "folder_dataset", "synthetic_tiny", "oracle"])
def test_shipped_recipes_can_reach_their_targets(name, counter):
    from expand.api import check_budgets

    exp = load_experiment(os.path.join(ROOT, "experiments", f"{name}.yaml"), check_paths=False)
    check_budgets(exp, counter)  # raises for a target out of reach of max_steps


def test_the_kinetics_recipe_names_the_published_models_budgets(counter):
    from expand.presets import get_preset

    exp = load_experiment(os.path.join(ROOT, "experiments", "kinetics400_gpus.yaml"), check_paths=False)
    targets = exp.search.targets
    for name, target in zip(("X3D-XS", "X3D-S", "X3D-M", "X3D-L"), targets):
        gflops = counter.gflops(get_preset(name).spec)
        assert gflops <= target <= gflops * 1.001, (name, gflops, target)  # at or just above the model


def test_the_paper_basis_is_x2d(counter):
    from expand.config import load_search_space

    x2d = load_search_space("x3d_paper").basis
    assert counter.params(x2d) == 1_633_560  # the paper: 1.63 M
    assert abs(counter.gflops(x2d) - 0.0215) < 0.0001  # the paper: 20.67 MFLOPs with an older fvcore


@pytest.mark.parametrize("name", ["kinetics400_gpus", "folder_dataset"])
def test_missing_dataset_path_is_exit_2(name, tmp_path, capsys):
    path = os.path.join(ROOT, "experiments", f"{name}.yaml")
    with pytest.raises(ConfigError, match="data.root"):
        load_experiment(path)
    code = main(["search", path, "--out", str(tmp_path / "run")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_gpu_resources_are_read(tmp_path):
    exp = load_experiment(os.path.join(ROOT, "experiments", "kinetics400_gpus.yaml"), check_paths=False)
    assert exp.resources.gpus_per_trial == 1 and exp.search.runner == "ray"
    data = yaml.safe_load(open(os.path.join(ROOT, "experiments", "folder_dataset.yaml")))
    data["schedule"]["batch_sise"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"schedule.batch_sise: unknown key"):
        load_experiment(str(bad), check_paths=False)


def test_a_key_error_reads_file_then_key_path(tmp_path):
    # The form the README and docs/configuration.md promise: "experiment.yaml: data.roott: unknown key".
    data = yaml.safe_load(open(os.path.join(ROOT, "experiments", "folder_dataset.yaml")))
    data["data"]["roott"] = data["data"].pop("root")
    bad = tmp_path / "experiment.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_experiment(str(bad), check_paths=False)
    assert str(info.value).startswith(f"{bad}: data.roott: unknown key (allowed: ")


def test_a_file_that_is_not_a_mapping_is_one_short_line(tmp_path, capsys):
    # A text file given by mistake (a log, /etc/passwd) must not be echoed whole into the error.
    bad = tmp_path / "notes.yaml"
    bad.write_text(" ".join(f"word{i}" for i in range(500)) + "\n")
    code = main(["search", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and len(err) < 200
    assert err.startswith(f"x3d-expand: error: {bad}: expected a mapping, got 'word0 word1")
    assert not (tmp_path / "run").exists()


def test_a_relative_cache_folder_is_the_experiment_files_like_the_root(tmp_path, monkeypatch):
    # A resume from another folder must find the same cache (config.yaml keeps it absolute).
    data = yaml.safe_load(open(os.path.join(ROOT, "experiments", "folder_dataset.yaml")))
    data["data"]["cache"] = "../frames"
    (tmp_path / "exps").mkdir()
    path = tmp_path / "exps" / "e.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(ROOT)
    exp = load_experiment(str(path), check_paths=False)
    assert exp.data.cache == str(tmp_path / "frames") and exp.to_dict()["data"]["cache"] == str(tmp_path / "frames")
    for kept in ("auto", "off", "/abs/frames"):
        data["data"]["cache"] = kept
        path.write_text(yaml.safe_dump(data))
        assert load_experiment(str(path), check_paths=False).data.cache == kept


def test_a_cache_folder_under_a_file_stops_the_search_before_its_run_folder(tmp_path, capsys):
    from tests.search.helpers import oracle_experiment

    root = tmp_path / "data"
    root.mkdir()
    for split in ("train", "val"):
        (root / f"{split}.csv").write_text("a.mp4 0\n")
    (tmp_path / "f").write_text("x")
    exp = oracle_experiment(tmp_path, data={"root": str(root), "num_classes": 2, "cache": str(tmp_path / "f" / "c")})
    assert main(["search", exp, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"data.cache: cannot create {tmp_path}/f/c: {tmp_path}/f is a file, not a folder" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("gpus, function, message", [
    (1.5, "expand.search.oracle:run_oracle", r"resources.gpus_per_trial: more than one GPU must be a whole number"),
    (2, "expand.train:run_trial", r"resources.gpus_per_trial: the default trainer trains on one GPU, so 2 would "
                                  r"leave 1 idle"),
])
def test_gpus_per_trial_is_a_share_of_one_or_whole_gpus_the_trainer_can_use(tmp_path, gpus, function, message):
    data = yaml.safe_load(open(os.path.join(ROOT, "experiments", "kinetics400_gpus.yaml")))
    data["resources"]["gpus_per_trial"] = gpus
    data["trial"] = {**data.get("trial", {}), "function": function}
    bad = tmp_path / "gpus.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_experiment(str(bad), check_paths=False)
    for fine in (0.25, 0.5, 1):  # and a function of one's own may take several whole GPUs
        data["resources"]["gpus_per_trial"] = fine
        bad.write_text(yaml.safe_dump(data))
        assert load_experiment(str(bad), check_paths=False).resources.gpus_per_trial == fine
    data["trial"]["function"], data["resources"]["gpus_per_trial"] = "expand.search.oracle:run_oracle", 4
    bad.write_text(yaml.safe_dump(data))
    assert load_experiment(str(bad), check_paths=False).resources.gpus_per_trial == 4
