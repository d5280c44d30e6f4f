import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from expand.search.calibrate import kendall_tau, scaled_experiment, summarize
from tests.search.helpers import ROOT, oracle_experiment


def test_kendall_tau_b():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # tau-b with a tie in one ranking: (2 - 0) / sqrt(3 * 2)
    assert kendall_tau([1, 2, 3], [1, 2, 2]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([1, 1], [2, 2]))


def test_scaled_experiment_lengthens_epochs_or_iterations():
    d = {"schedule": {"epochs": 4.0, "iterations": None}}
    assert scaled_experiment(d, 2)["schedule"]["epochs"] == 8.0 and d["schedule"]["epochs"] == 4.0
    assert scaled_experiment({"schedule": {"epochs": 4.0, "iterations": 300}}, 4)["schedule"]["iterations"] == 1200


def _rows(tops: dict[float, dict[str, float]], std=math.nan):
    return [{"multiplier": m, "axis": a, "gflops": 0.001 if a == "basis" else 0.002, "top1": t,
             "top1_std": std, "trial_seconds": 10.0 * m}
            for m, by_axis in tops.items() for a, t in by_axis.items()]


def test_summary_recommends_the_shortest_schedule_that_ranks_like_the_longest():
    good = {"basis": 0.1, "a": 0.30, "b": 0.25, "c": 0.20, "d": 0.15}
    noisy = {"basis": 0.1, "a": 0.20, "b": 0.25, "c": 0.30, "d": 0.15}  # the order of the first three flips
    s = summarize(_rows({1.0: noisy, 2.0: good, 4.0: good}), "paper", 0.8)
    per = {p["multiplier"]: p for p in s["per_schedule"]}
    assert per[1.0]["kendall_tau"] == pytest.approx(0.0) and per[1.0]["pick"] == "c"
    assert not per[1.0]["same_pick"]
    assert per[2.0]["kendall_tau"] == 1.0 and per[2.0]["pick"] == "a" and per[2.0]["same_pick"]
    assert s["recommended_multiplier"] == 2.0


def test_summary_falls_back_to_the_longest_and_says_so():
    a = {"basis": 0.1, "a": 0.30, "b": 0.25, "c": 0.20}
    b = {"basis": 0.1, "a": 0.20, "b": 0.25, "c": 0.30}
    s = summarize(_rows({1.0: a, 4.0: b}, std=0.02), "paper", 0.8)
    assert s["recommended_multiplier"] == 4.0 and "no shorter schedule" in s["why"]
    assert s["per_schedule"][0]["seed_std"] == pytest.approx(0.02)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "expand.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_calibrate_cli_writes_its_table_plot_and_state_and_resume_retrains_nothing(tmp_path):
    count = tmp_path / "calls.txt"
    exp = oracle_experiment(tmp_path, options={"videos": 200, "noise": 0.03, "count_file": str(count)})
    out = tmp_path / "cal"
    r = _cli("calibrate", exp, "--out", str(out), "--schedules", "1", "2", "--seeds", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "recommended: " in r.stdout and "kendall_tau" in r.stdout
    table = pd.read_csv(out / "calibration.csv")
    # basis + 6 distinct step-1 candidates, at 2 schedules, 2 seeds each
    assert len(table) == 14 and set(table["seeds"]) == {2} and set(table["multiplier"]) == {1.0, 2.0}
    assert (out / "plots" / "calibration.png").stat().st_size > 10_000
    state = json.loads((out / "state.json").read_text())
    assert state["kind"] == "calibration" and state["status"] == "finished"
    assert all(p["seed_std"] > 0 for p in state["summary"]["per_schedule"])
    calls = count.read_text().splitlines()
    assert len(calls) == 28
    again = _cli("resume", str(out), "--quiet")
    assert again.returncode == 0, again.stderr
    assert count.read_text().splitlines() == calls  # nothing retrained
    shown = _cli("show", str(out), "--format", "json")
    assert json.loads(shown.stdout)["summary"]["recommended_multiplier"] in (1.0, 2.0)
    from expand.results import render_run
    from tests.test_results import _check_latex

    lines = _check_latex(render_run(str(out), "latex"))  # the table for a paper, the rest as comments
    assert any(line.startswith("% recommended: ") for line in lines)


def test_calibrate_refuses_a_single_schedule(tmp_path):
    r = _cli("calibrate", oracle_experiment(tmp_path), "--schedules", "2", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "at least two different multipliers" in r.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("args, message", [
    # 1e308 epochs: an internal OverflowError; 100000x a 10-epoch schedule: past schedule.epochs' bound
    (["--schedules", "1", "1e308"], "--schedules 1e+308: schedule.epochs: must be a finite number, got inf"),
    (["--schedules", "1", "100000"], "--schedules 100000: schedule.epochs: must be > 0 and at most 10000"),
    (["--seeds", "1000000"], "--seeds: must be 1-100 (seeds per model and schedule), got 1000000"),
    (["--min-tau", "2"], "--min-tau: must be in [-1, 1] (a Kendall tau), got 2.0"),
    (["--min-tau", "nan"], "--min-tau: must be in [-1, 1] (a Kendall tau), got nan"),
])
def test_calibrate_arguments_that_would_overflow_run_for_ever_or_recommend_nothing_are_exit_2(
        tmp_path, capsys, args, message):
    from expand.cli import main

    assert main(["calibrate", oracle_experiment(tmp_path), *args, "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_calibration_arguments_from_python_are_checked_like_the_clis(tmp_path):
    from expand.api import start_calibration
    from expand.errors import InputError

    with pytest.raises(InputError, match=r"^--seeds: must be 1-100 .*got 1.5"):
        start_calibration(oracle_experiment(tmp_path), seeds=1.5, out=str(tmp_path / "c"), quiet=True)
    with pytest.raises(InputError, match=r"^--schedules: each multiplier must be a finite number > 0, got -1"):
        start_calibration(oracle_experiment(tmp_path), multipliers=[1, -1], out=str(tmp_path / "c"), quiet=True)
    assert not (tmp_path / "c").exists()


def test_calibrate_from_python_returns_a_run_whose_calibration_is_the_verdict(tmp_path, oracle_run):
    import expand
    from expand.errors import InputError

    exp = oracle_experiment(tmp_path)
    plan = expand.check_calibration(exp, schedules=[1, 2], settings={"trial.options.noise": 0.03})
    assert plan[0] == "settings: --set trial.options.noise=0.03 (for this run; the file is unchanged)"
    assert any(line.startswith("plan: the basis and step 1's 6 candidates at 1x, 2x the schedule, 1 seed(s) each")
               for line in plan)
    assert not list(tmp_path.glob("*calibration*"))
    run = expand.calibrate(exp, schedules=[1, 2], out=tmp_path / "cal", quiet=True,
                           settings={"trial.options.noise": 0.03})
    assert (run.kind, run.status) == ("calibration", "finished")
    cal = run.calibration
    summary = json.loads((tmp_path / "cal" / "state.json").read_text())["summary"]
    assert list(cal["multiplier"]) == [p["multiplier"] for p in summary["per_schedule"]] == [1.0, 2.0]
    assert list(cal["mean_top1_frac"]) == [p["mean_top1"] for p in summary["per_schedule"]]
    assert cal["recommended"].sum() == 1
    assert cal.loc[cal["recommended"], "multiplier"].item() == summary["recommended_multiplier"]
    assert cal.attrs["why"] == summary["why"] and cal.attrs["why"]
    from expand.results import render_run

    assert render_run(str(tmp_path / "cal")).splitlines()[0].startswith(
        "settings: --set trial.options.noise=0.03 (changes to ")  # its figures are not the file's alone
    with pytest.raises(InputError, match=r": not a calibration run \(its kind: expansion\); 'x3d-expand calibrate' makes one$"):
        expand.load_run(str(oracle_run)).calibration
    assert expand.check_baseline(exp, "random", 3, max_gflops=0.01)[-2] == \
        "plan: random baseline, 3 trained trials, models at or under 0.01 GFLOPs (+ retries)"
