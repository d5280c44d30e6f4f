import os
import re

import pytest
import yaml

from expand.config import load_search_space
from expand.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def space_data(**changes):
    data = yaml.safe_load(open(os.path.join(ROOT, "search_spaces", "tiny_cpu.yaml")))
    data.update(changes)
    return data


def test_shipped_search_spaces_load():
    paper = load_search_space("x3d_paper")
    tiny = load_search_space("tiny_cpu")
    # X2D: the paper's gamma_w = 1 is SlowFast's WIDTH_FACTOR 2.0 (x3d_facts.md, corrected)
    assert paper.basis.frames == 1 and paper.basis.crop == 112 and paper.basis.width == 2.0
    assert tiny.basis.crop == 64 and tiny.basis.dim_c5 == 512
    assert paper.axes == ("fast", "temporal", "spatial", "depth", "width", "bottleneck")
    assert paper.step.flops_factor == 2.0 and paper.selection == "paper"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"axes": ["fast", "colour"]}, r"axes: unknown axis 'colour'"),
        ({"axes": ["fast", "fast"]}, r"axes: an axis is listed twice"),
        ({"selection": "magic"}, r"selection: unknown rule 'magic'"),
        ({"step": {"flops_factor": 1.0}}, r"step.flops_factor: must be > 1"),
        ({"step": {"mode": "sometimes"}}, r"step.mode: must be one of"),
        ({"grid": {"crop": 6}}, r"grid.crop"),
        ({"bounds": {"frames": [8, 2]}}, r"bounds.frames: must be \[min, max\]"),
        ({"colour": 1}, r"colour: unknown key"),
    ],
)
def test_bad_search_space_names_the_field(tmp_path, changes, message):
    path = write(tmp_path, "space.yaml", space_data(**changes))
    with pytest.raises(ConfigError, match=message):
        load_search_space(path)


def test_basis_errors_name_the_basis_field(tmp_path):
    data = space_data()
    data["basis"]["crop"] = 66
    with pytest.raises(ConfigError, match=r"basis: ArchSpec.crop"):
        load_search_space(write(tmp_path, "s.yaml", data))
    data["basis"]["crop"] = 64
    data["basis"]["frames"] = 64
    with pytest.raises(ConfigError, match=r"basis.frames: 64 is outside bounds.frames"):
        load_search_space(write(tmp_path, "s.yaml", data))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_search_space(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_search_space(str(bad))


def test_a_key_given_twice_is_an_error_naming_its_line(tmp_path):
    # PyYAML keeps the last of two equal keys silently; a pasted second 'axes:' must not quietly win.
    text = open(os.path.join(ROOT, "search_spaces", "tiny_cpu.yaml")).read() + "axes: [fast]\n"
    bad = tmp_path / "twice.yaml"
    bad.write_text(text)
    line = len(text.splitlines())
    with pytest.raises(ConfigError, match=rf"twice.yaml: not valid YAML \(line {line}\): the key 'axes' is given twice"):
        load_search_space(str(bad))


def test_a_merge_key_may_be_overridden_as_yaml_means_it(tmp_path):
    from expand.schema import load_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b\n  lr: 0.1\n  epochs: 3\nrun:\n  <<: *b\n  lr: 0.2\n")
    assert load_yaml(str(path))["run"] == {"lr": 0.2, "epochs": 3}


def test_loader_workers_auto_follow_the_trials_cpus():
    from expand.config import loader_workers

    assert loader_workers("auto", 1) == 0 and loader_workers("auto", 8) == 7 and loader_workers("auto", 2.5) == 2
    assert loader_workers(3, 8) == 3
    # written out and read back, as a run's config.yaml is on resume
    from expand.config import experiment_from_dict, load_experiment

    exp = load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml"))
    assert exp.trial.workers == "auto" and experiment_from_dict(exp.to_dict()).trial.workers == "auto"
    d = exp.to_dict()
    d["trial"]["workers"] = -1
    with pytest.raises(ConfigError, match="trial.workers: must be >= 0"):
        experiment_from_dict(d)


def test_a_run_folder_from_before_checkpoint_policies_reads_as_the_new_default(tmp_path):
    from expand.config import experiment_from_dict, load_experiment
    from tests.search.helpers import oracle_experiment

    exp = load_experiment(oracle_experiment(tmp_path))
    assert exp.trial.checkpoint == "path"
    old = exp.to_dict()
    old["trial"]["checkpoint"] = False  # what config.yaml held before 0.2
    assert experiment_from_dict(old).to_dict() == exp.to_dict()  # so resume sees no change
    old["trial"]["checkpoint"] = True
    assert experiment_from_dict(old).trial.checkpoint == "all"
    old["trial"]["checkpoint"] = "some"
    with pytest.raises(ConfigError, match="trial.checkpoint: must be one of 'path', 'all', 'none'"):
        experiment_from_dict(old)


@pytest.mark.parametrize("value, message", [(0, "must be > 0"), (-5, "must be > 0"),
                                            ("1h", "expected a number, 'auto' or null, got '1h'")])
def test_a_time_limit_is_a_positive_number_of_seconds_auto_or_null(value, message):
    from expand.config import experiment_from_dict, load_experiment

    exp = load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml"))
    assert exp.trial.time_limit_s is None and exp.retries.timeout == 0  # off unless asked for
    d = exp.to_dict()
    d["trial"]["time_limit_s"] = 5400
    assert experiment_from_dict(d).trial.time_limit_s == 5400
    d["trial"]["time_limit_s"] = "auto"
    assert experiment_from_dict(d).trial.time_limit_s == "auto"
    d["trial"]["time_limit_s"] = value
    with pytest.raises(ConfigError, match=f"trial.time_limit_s: .*{re.escape(message)}"):
        experiment_from_dict(d)
    d["trial"]["time_limit_s"], d["trial"]["time_limit_factor"] = "auto", 0.5
    with pytest.raises(ConfigError, match="trial.time_limit_factor: must be >= 1, got 0.5"):
        experiment_from_dict(d)
