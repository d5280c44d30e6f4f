"""``compare`` as data: one computation behind the CLI's table, CSV, JSON and Python's DataFrame."""

import io
import json
import math
import shutil

import pandas as pd
import pytest

import expand
from expand.baselines import best_under, run_points
from expand.cli import main
from expand.errors import InputError


@pytest.fixture
def two_runs(tmp_path, oracle_run):
    """The finished oracle search and a copy of it under another name (nothing to train)."""
    other = tmp_path / "other"
    shutil.copytree(oracle_run, other)
    return str(oracle_run), str(other)


def test_compare_from_python_gives_the_clis_figures_as_a_dataframe(two_runs, tmp_path, capsys):
    first, other = two_runs
    comparison = expand.compare([first, other], budgets=[0.008, 0.004])
    table = comparison.table
    assert comparison.budgets == [0.004, 0.008]  # sorted, as the CLI's
    assert list(table["run"]) == ["expansion: run", "expansion: other"]
    points = run_points(first)
    assert table.loc[0, "best_top1_frac_at_0.004"] == pytest.approx(best_under(points, 0.004))
    assert table.loc[0, "best_top1_frac_at_0.008"] == pytest.approx(best_under(points, 0.008))
    assert (table.loc[0, "trials"], table.loc[0, "kind"]) == (table.loc[1, "trials"], "expansion")
    assert comparison.notes == []  # a copy trained alike
    assert not (tmp_path / "compare.png").exists()  # Python writes a figure only when asked
    # the CLI's CSV and JSON are the same numbers
    plot = str(tmp_path / "c.png")
    assert main(["compare", first, other, "--budgets", "0.004", "0.008", "--format", "csv", "--plot", plot]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    pd.testing.assert_frame_equal(csv, table[list(csv.columns)], check_dtype=False)
    assert main(["compare", first, other, "--budgets", "0.004", "0.008", "--json", "--plot", plot]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["best_top1_frac"] for r in runs] == [list(row) for row in
                                                   table[["best_top1_frac_at_0.004", "best_top1_frac_at_0.008"]].values]


def test_compare_from_python_writes_the_figure_when_given_a_path(two_runs, tmp_path):
    first, other = two_runs
    comparison = expand.compare([first, other], plot=tmp_path / "figs" / "cmp.png")
    assert (tmp_path / "figs" / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "figs" / "cmp.pdf").read_bytes()[:5] == b"%PDF-"
    first_path = json.loads((tmp_path / "other" / "state.json").read_text())["path"]
    assert comparison.budgets == [p["gflops"] for p in first_path[1:]]  # default: the path's steps


@pytest.mark.parametrize("args, message", [
    (dict(runs="results/demo"), "compare: runs must be a list of run folders"),
    (dict(runs=[]), "compare: give a list of run folders"),
    (dict(budgets=[0]), "budgets: must be a positive finite number, got 0"),
    (dict(budgets=[math.nan]), "budgets: must be a positive finite number, got nan"),
    (dict(plot="c.svg"), "--plot c.svg: give a .png path"),
    (dict(runs=[123]), "compare: runs[0] must be a path"),
])
def test_compare_from_python_refuses_bad_arguments_with_one_line(two_runs, args, message):
    with pytest.raises(InputError, match="^" + message.replace(".", r"\.").replace("[", r"\[")):
        expand.compare(**{"runs": list(two_runs), **args})
