"""expand.config.checks directly: the field checks say the problem, the name and path checks raise."""

import pytest

from expand.config.checks import (below_one, check_run_name, device_name, not_a_folder_above, per_channel,
                                  probability)
from expand.errors import ConfigError


@pytest.mark.parametrize("name, ok", [("auto", True), ("cpu", True), ("cuda", True), ("cuda:3", True), ("mps", True),
                                      ("xpu:0", True), ("tpu", False), ("cuda:", False), ("CUDA", False),
                                      ("cuda:x", False), ("", False)])
def test_device_names_are_those_torch_trains_on(name, ok):
    assert (device_name(name) is None) == ok


def test_per_channel_and_probability_say_the_problem():
    assert per_channel([0.4, 0.4, 0.4]) is None and per_channel([0.4]) == "must be 3 values (R, G, B), got 1"
    assert probability(0.5) is None and probability(1.0) == "must be between 0 and 1 (exclusive), got 1.0"
    assert below_one(0.0) is None and below_one(1) == "must be in [0, 1), got 1"


def test_a_run_name_is_a_folder_name():
    check_run_name("x3d_k400-v2.1", "e.yaml:")
    for bad in ("../x", "a/b", "", " x", "-x", "x" * 101):
        with pytest.raises(ConfigError, match=r"^e\.yaml: name: must be 1-100 letters"):
            check_run_name(bad, "e.yaml:")


def test_not_a_folder_above_names_the_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    assert not_a_folder_above(str(tmp_path / "new" / "deeper")) == ""
    assert not_a_folder_above(str(tmp_path / "f" / "cache")) == str(tmp_path / "f")
