"""The paper's γ units against SlowFast's, both ways, on the published family."""

import math

import pytest

from expand.presets import get_preset
from expand.units import from_paper, to_paper

# The paper's factors (X3D §4 and Fig. 2): X3D-S "γτ=6, γt=13, γs=√2, γw=1, γb=2.25, γd=2.2";
# X3D-M the same with 16 x 5 at γs = 2; X2D: every factor 1 (one frame, 112 px, stride ours).
PAPER = {
    "X3D-S": dict(gamma_tau=6, gamma_t=13, gamma_s=math.sqrt(2), gamma_w=1, gamma_b=2.25, gamma_d=2.2),
    "X3D-M": dict(gamma_tau=5, gamma_t=16, gamma_s=2, gamma_w=1, gamma_b=2.25, gamma_d=2.2),
    "X2D": dict(gamma_tau=48, gamma_t=1, gamma_s=1, gamma_w=1, gamma_b=1, gamma_d=1),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_the_papers_factors_build_slowfasts_models(name):
    spec = get_preset(name).spec
    assert from_paper(**PAPER[name]) == spec
    back = to_paper(spec)
    for key, value in PAPER[name].items():
        tolerance = 0.02 if key == "gamma_s" else 1e-9  # the crop is rounded to a multiple of 8
        assert back[key] == pytest.approx(value, abs=tolerance), key


def test_width_is_twice_the_papers_gamma_w():
    assert get_preset("X3D-M").spec.width == 2.0 and to_paper(get_preset("X3D-M").spec)["gamma_w"] == 1.0


def test_presets_show_both_units(capsys):
    from expand.cli import main

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "γw" in out and "WIDTH_FACTOR" in out and "γs" in out
    m = next(line for line in out.splitlines() if line.startswith("X3D-M "))
    assert " 1.0 " in m and " 2.0 " in m  # γw 1 beside WIDTH_FACTOR 2
