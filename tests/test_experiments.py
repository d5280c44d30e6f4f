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
