"""expand/tables.py: one set of units — percent for people, *_frac fractions for programs."""

import json
import re

import pytest

from expand.cli import main
from expand.tables import human_key, machine_key, machine_keys

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$|^\d+$")  # step numbers are keys of per-step maps
NUMBER_TEXT = re.compile(r"^[-+]?\d+(\.\d+)?%?$")


def test_fraction_keys_say_so_and_read_back():
    assert machine_keys({"top1": 0.5, "path": [{"gain_per_gflop": 2.0, "spec": {"frames": 4}}]}) == \
        {"top1_frac": 0.5, "path": [{"gain_frac_per_gflop": 2.0, "spec": {"frames": 4}}]}
    for key in ("top1", "gain_per_gflop", "confidence", "frames"):
        assert human_key(machine_key(key)) == key


def _walk(obj, where="$"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield where, k, v
            yield from _walk(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{where}[{i}]")


@pytest.mark.parametrize("argv", [
    ["show", "{run}", "--json"], ["presets", "--json"], ["flops", "--preset", "X3D-S", "--json"],
    ["contract", "{run}", "--target-gflops", "0.006", "--json"], ["export", "{run}", "--step", "1", "--json"],
    ["compare", "{run}", "--budgets", "0.005", "--plot", "{tmp}/c.png", "--json"],
])
def test_json_outputs_use_snake_case_keys_numbers_as_numbers_and_frac_names(oracle_run, tmp_path, capsys, argv):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(oracle_run, run)
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    for where, key, value in _walk(data):
        if where.endswith((".reasons", ".overrides")):
            continue  # free text: reasons for skipped videos
        assert SNAKE.match(key), f"{where}: key {key!r}"
        assert key not in ("top1", "top5", "gain", "confidence"), f"{where}: fraction without _frac: {key}"
        if isinstance(value, str):
            assert not NUMBER_TEXT.match(value), f"{where}.{key}: a number as text: {value!r}"


def test_tables_people_read_are_in_percent_and_points(oracle_run, capsys):
    from expand.results import step_rows

    assert main(["show", str(oracle_run)]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.split()[:1] == ["step"])
    assert "top1 %" in header and "gain (pts)" in header and "gain/GFLOP (pts)" in header
    chosen = [r for r in step_rows(str(oracle_run)) if r["chosen"] and r["step"] == 1][0]
    line = next(ln for ln in table.splitlines() if ln.split()[:1] == ["1"] and ln.rstrip().endswith("*"))
    assert f"{100 * chosen['top1']:.1f}" in line and f"{100 * chosen['gain_per_gflop']:.1f}" in line
    # counts to four places, measured seconds and clips/s to what a measurement supports
    cells = line.split()
    assert f"{chosen['gflops']:.4f}" in cells and f"{chosen['seconds']:.1f}" in cells


def test_a_column_may_have_its_own_places_and_csv_keeps_every_digit():
    from expand.tables import render

    rows = [{"gflops": 0.004127, "seconds": 22.80881, "clips": 1568.81}]
    table = render(rows, ["gflops", "seconds", "clips"], digits=4, column_digits={"seconds": 1, "clips": 0})
    assert table.splitlines()[-1].split() == ["0.0041", "22.8", "1569"]
    assert render(rows, ["seconds"], "csv", column_digits={"seconds": 1}) == "seconds\n22.80881\n"


def test_number_columns_are_right_aligned_and_text_left_in_every_format():
    from expand.tables import render

    rows = [{"axis": "basis", "gflops": 0.0021, "gain": "", "top1": "12.5"},
            {"axis": "bottleneck", "gflops": 12.25, "gain": "+2.0", "top1": "n/a"}]
    latex = render(rows, ["axis", "gflops", "gain", "top1"], "latex", digits=4)
    assert latex.splitlines()[0] == "\\begin{tabular}{lrrl}"  # a text cell makes its column text
    table = render(rows, ["axis", "gflops", "gain", "top1"], "table", digits=4).splitlines()
    assert table[2].startswith("basis ") and table[2].split()[1] == "0.0021"
    assert table[2].index("0.0021") + len("0.0021") == table[3].index("12.2500") + len("12.2500")  # ends line up
    markdown = render(rows, ["axis", "gflops"], "markdown", digits=4).splitlines()
    assert markdown[1].startswith("|:") and markdown[1].endswith(":|")  # GitHub's left and right markers
