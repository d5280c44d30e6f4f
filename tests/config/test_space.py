"""Search-space files: the shipped ones load; every bad field is a ConfigError naming it."""

import os

import pytest
import yaml

from expand.config.space import load_search_space
from expand.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
        ({"step": {"flops_factor": 1.0}}, r"step.flops_factor: must be in \(1, 10\], got 1"),
        ({"step": {"mode": "sometimes"}}, r"step.mode: must be one of"),
        ({"grid": {"crop": 6}}, r"grid.crop"),
        ({"bounds": {"frames": [8, 2]}}, r"bounds.frames: must be \[min, max\]"),
        ({"bounds": {"frames": [0, 2]}}, r"bounds.frames: minimum must be > 0, got 0"),
        # past a ceiling the search stopped with a SpecError the step an expansion crossed it
        ({"bounds": {"crop": [32, 1e308]}}, r"bounds.crop: maximum must be at most 1024 \(no X3D model needs more"),
        ({"bounds": {"frames": [1, 300]}}, r"bounds.frames: maximum must be at most 256 \(no X3D"),
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


@pytest.mark.parametrize("factor, step, message", [
    ("width", 10, r"grid.width: 10 is larger than bounds.width's max 4: no width on the grid fits"),
    ("crop", 1e308, r"grid.crop: 1e\+308 is larger than bounds.crop's max 128: no crop on the grid fits"),
])
def test_a_grid_step_past_the_bounds_is_refused(tmp_path, factor, step, message):
    """grid.width 10 made the width axis 'at its upper bound (1.0)' at every step; grid.crop 1e308
    was reported as 'basis.crop: 64 is not a multiple of grid.crop 1000000...' (309 digits)."""
    data = space_data()
    data["grid"] = {**data["grid"], factor: step}
    with pytest.raises(ConfigError, match=message):
        load_search_space(write(tmp_path, "space.yaml", data))
