import json
import subprocess
import sys

import pytest

from expand.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_flops_preset_table(capsys):
    code, out, err = run(capsys, "flops", "--preset", "X3D-M")
    assert code == 0
    assert "x3d_16x5_224_w2.0_b2.25_d2.2" in out
    assert "4.8987" in out and "3794322" in out
    assert "fvcore" in out and "train crop" in out  # the counter is always named


def test_flops_json_is_one_object(capsys):
    code, out, _ = run(capsys, "flops", "--frames", "2", "--stride", "4", "--crop", "64",
                       "--width", "1", "--bottleneck", "1", "--depth", "1", "--classes", "10",
                       "--json")
    assert code == 0
    data = json.loads(out)
    assert out.count("\n") == 1
    assert data["spec"]["num_classes"] == 10
    assert abs(sum(s["gflops"] for s in data["stages"]) - data["gflops"]) < 1e-9


@pytest.mark.parametrize(
    "argv, message",
    [
        (["flops"], "give --preset NAME or all six factors"),
        (["flops", "--preset", "X3D-Q"], "unknown preset 'X3D-Q'"),
        (["flops", "--preset", "X3D-M", "--frames", "4"], "cannot be combined with --frames"),
        (["flops", "--frames", "0", "--stride", "1", "--crop", "64", "--width", "1",
          "--bottleneck", "1", "--depth", "1"], "ArchSpec.frames"),
        (["flops", "--crop", "abc"], "invalid int value"),
        (["flops", "--preset", "X3D-M", "--classes", "0"], "must be >= 1"),
        (["launch"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.strip().count("\n") == 0
    assert out == ""


def test_presets_json_lists_the_family(capsys):
    code, out, _ = run(capsys, "presets", "--json")
    data = json.loads(out)
    names = [p["name"] for p in data["presets"]]
    assert names == ["X2D", "X3D-XS", "X3D-S", "X3D-M", "X3D-L", "X3D-XL"]
    m = data["presets"][names.index("X3D-M")]
    assert m["test crop"] == 256 and abs(m["GFLOPs"] - 4.8987) < 1e-3
    assert "derived" in data["presets"][-1]["source"]


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "expand.cli", "flops", "--preset", "XS", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["spec"]["frames"] == 4
