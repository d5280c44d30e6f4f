import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from expand.baselines import Baseline, best_under, run_points
from expand.cli import main
from expand.config import load_experiment, load_search_space
from expand.search.runners import SerialRunner
from expand.run import RunDir
from tests.search.helpers import ROOT, confirmed_oracle_run, oracle_experiment

CAP = 0.012


class TwoAtATime(SerialRunner):
    """A serial runner that asks for batches of two, like a Ray runner with two workers."""

    parallelism = 2


def run_baseline(tmp_path, counter, method, budget, cap=CAP, options=None, name="run", runner=SerialRunner):
    exp = load_experiment(oracle_experiment(tmp_path, name=f"{name}.yaml", options=options or {"noise": 0.01}))
    run = RunDir(str(tmp_path / name))
    run.create()
    run.write_config(exp.to_dict())
    state = Baseline(exp, run, runner(exp.trial.function), counter, method, budget, cap).run()
    return run, state


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_optuna_baselines_train_the_budget_under_the_cap(tmp_path, counter, method):
    run, state = run_baseline(tmp_path, counter, method, budget=6)
    records = run.read_trials().records
    assert state.trained == len(records) == 6
    assert all(r.trial.gflops <= CAP for r in records)
    assert all(counter.gflops(r.trial.spec) <= CAP for r in records)
    assert len({r.trial.spec for r in records}) == 6  # no model trained twice
    assert state.samples == 6 + state.over_cap + state.repeats
    assert state.over_cap > 0  # factor combinations reach past the cap: the cap did something
    best = max(records, key=lambda r: r.result.top1)
    assert state.best["trial_id"] == best.trial.trial_id
    assert os.path.getsize(run.file("optuna.journal")) > 0
    saved = run.read_state()
    assert saved["kind"] == method and saved["status"] == "finished" and saved["trained"] == 6


def test_compound_doubles_flops_per_trial_until_the_cap(tmp_path, counter):
    run, state = run_baseline(tmp_path, counter, "compound", budget=10)
    records = run.read_trials().records
    basis = counter.gflops(load_search_space("tiny_cpu").basis)
    ratios = [r.trial.gflops / basis for r in records]
    assert len(records) == 2  # 2x and 4x fit under 0.012 GFLOPs; 8x does not
    for k, ratio in enumerate(ratios, start=1):
        assert 2 ** (k - 0.5) <= ratio <= 2 ** (k + 0.5)
    assert "over the cap" in state.stop_reason and state.over_cap == 1
    spec = records[-1].trial.spec
    basis_spec = load_search_space("tiny_cpu").basis
    grown = [spec.frames > basis_spec.frames, spec.crop > basis_spec.crop, spec.width > basis_spec.width,
             spec.depth > basis_spec.depth]
    assert sum(grown) >= 3  # all axes grow together, not one


TIGHT_CAP = 0.00425  # 1.5x the basis: over the cap are 2 frames, or crop 80 px, or width 1.3 ...


def test_tpe_fills_a_batch_under_a_tight_cap(tmp_path, counter):
    # With the default gamma, TPE took over-cap samples for its "good" group while
    # the first trial of a batch ran, and trained 1 of 7 (1399 of 1400 samples over).
    run, state = run_baseline(tmp_path, counter, "tpe", budget=7, cap=TIGHT_CAP, runner=TwoAtATime)
    assert state.trained == 7, state.stop_reason
    assert all(r.trial.gflops <= TIGHT_CAP for r in run.read_trials().records)
    assert state.over_cap < 200  # random sampling draws 256 over-cap samples for these 7 trials


def test_compound_trains_the_largest_model_under_a_cap_below_its_first_budget(tmp_path, counter):
    run, state = run_baseline(tmp_path, counter, "compound", budget=5, cap=TIGHT_CAP)
    records = run.read_trials().records
    basis = load_search_space("tiny_cpu").basis
    assert len(records) == 1 and "largest compound model" in state.stop_reason
    spec = records[0].trial.spec
    assert counter.gflops(basis) < records[0].trial.gflops <= TIGHT_CAP
    assert spec.width > basis.width and spec.bottleneck > basis.bottleneck and spec.depth > basis.depth


def test_compound_respects_the_trial_budget(tmp_path, counter):
    run, state = run_baseline(tmp_path, counter, "compound", budget=1, cap=None)
    assert state.trained == 1 and len(run.read_trials().records) == 1


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "expand.cli", *args], cwd=ROOT, capture_output=True, text=True)


def test_random_baseline_resumes_after_kill_9_without_retraining(tmp_path):
    count = tmp_path / "calls.txt"
    exp_path = oracle_experiment(tmp_path, options={"sleep": 0.3, "count_file": str(count), "noise": 0.01})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "expand.cli", "baseline", exp_path, "--method", "random",
                             "--trials", "8", "--max-gflops", str(CAP), "--out", str(run_dir), "--quiet"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    trials_file = run_dir / "trials.jsonl"
    deadline = time.time() + 600  # generous: it exits as soon as the trials are there
    while time.time() < deadline:
        if trials_file.exists() and len(trials_file.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {json.loads(line)["trial_id"] for line in trials_file.read_text().splitlines()}
    assert 3 <= len(before) < 8
    resumed = _cli("resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    calls = [line.split()[0] for line in count.read_text().splitlines()]
    for trial_id in before:
        assert calls.count(trial_id) == 1, trial_id
    records = RunDir(str(run_dir)).read_trials().records
    assert len({r.trial.trial_id for r in records}) == 8
    assert len({r.trial.spec for r in records}) == 8
    assert RunDir(str(run_dir)).read_state()["status"] == "finished"


def test_compare_table_and_plot(tmp_path, oracle_run, capsys):
    exp_path = oracle_experiment(tmp_path, options={"noise": 0.01})
    assert main(["baseline", exp_path, "--method", "random", "--trials", "4", "--max-gflops", "0.01",
                 "--out", str(tmp_path / "random"), "--quiet", "--runner", "serial"]) == 0
    capsys.readouterr()
    plot = tmp_path / "cmp.png"
    assert main(["compare", str(oracle_run), str(tmp_path / "random"), "--budgets", "0.004", "0.008",
                 "--format", "json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budgets_gflops"] == [0.004, 0.008] and len(out["runs"]) == 2
    expansion, random = out["runs"]
    points = run_points(str(oracle_run))
    assert expansion["best_top1_frac"][0] == pytest.approx(best_under(points, 0.004))
    assert expansion["trials"] == len(RunDir(str(oracle_run)).read_trials().records)
    assert random["trials"] == 4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000
    assert main(["compare", str(oracle_run), str(tmp_path / "random"), "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "expansion: run" in table and "random: random" in table and "best top1 % @" in table
    assert main(["compare", str(oracle_run), "--budgets", "0.008", "--plot", str(plot)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("expansion"))
    assert row.split()[-1] == f"{100 * best_under(points, 0.008):.1f}"  # percent for people, fractions in JSON
    assert plot.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_compare_refuses_a_run_given_twice_and_a_plot_it_cannot_write_before_reading_runs(
        tmp_path, oracle_run, capsys):
    import shutil

    for argv, why in (([str(oracle_run), str(oracle_run) + "/"], f"{oracle_run}: given twice; compare each run once"),
                      ([str(oracle_run), "--plot", str(tmp_path / "c.svg")], "give a .png path"),
                      ([str(tmp_path / "missing"), "--plot", "/dev/null/c.png"],
                       "--plot /dev/null/c.png: /dev/null: exists and is not a folder")):
        assert main(["compare", *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and why in err and len(err.strip().splitlines()) == 1
    assert main(["compare", str(oracle_run), "--plot", str(tmp_path / "new" / "c.png")]) == 0
    assert (tmp_path / "new" / "c.png").is_file()  # a missing folder for the plot is made
    capsys.readouterr()
    # two runs in folders of the same name: a row and a curve each, told apart by their parents
    for parent in ("a", "b"):
        shutil.copytree(oracle_run, tmp_path / parent / "run")
    assert main(["compare", str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run"), "--json",
                 "--plot", str(tmp_path / "two.png")]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run"] for r in rows] == ["expansion: a/run", "expansion: b/run"]


def test_compare_says_when_runs_did_not_train_alike(tmp_path, oracle_run, capsys):
    import shutil

    import yaml

    for name in ("a", "b"):
        shutil.copytree(oracle_run, tmp_path / name)
    plot = ["--plot", str(tmp_path / "c.png")]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", *plot]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []  # one experiment: nothing to say
    config = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    config["schedule"]["epochs"] += 1
    config["data"]["cache_format"] = "npy"  # how frames are stored is not how a model trains
    (tmp_path / "b" / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), *plot]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == ["note: expansion: b trained unlike expansion: a (schedule.epochs): its top-1s are not "
                     "comparable"]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "csv", *plot]) == 0
    out, err = capsys.readouterr()
    assert "note" not in out and err.startswith("note: expansion: b trained unlike")  # stdout: one CSV


def test_compare_says_when_runs_counted_or_trained_under_other_versions(tmp_path, oracle_run, capsys):
    import shutil

    from expand.run import environment

    for name in ("a", "b"):
        shutil.copytree(oracle_run, tmp_path / name)
    plot = ["--plot", str(tmp_path / "c.png")]
    sessions = environment.sessions(str(tmp_path / "b"))
    assert len(sessions) == 1  # the search's
    upgraded = {**sessions[0], "packages": {**sessions[0]["packages"], "fvcore": "0.2.0"}}
    (tmp_path / "b" / environment.FILE).write_text(json.dumps(sessions[0]) + "\n" + json.dumps(upgraded) + "\n")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", *plot]) == 0
    fvcore = sessions[0]["packages"]["fvcore"]
    assert json.loads(capsys.readouterr().out)["notes"] == [
        f"expansion: b: fvcore {', '.join(sorted([fvcore, '0.2.0']))} against {fvcore} for expansion: a "
        "(GFLOPs counted by another "
        "fvcore: budgets may not line up)"]
    (tmp_path / "a" / environment.FILE).unlink()  # a run from before the record: nothing to compare
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", *plot]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []


def test_a_calibration_in_compare_is_said_to_mix_schedule_lengths(tmp_path):
    from expand.comparison import _comparability_notes
    from expand.config import load_experiment

    exp = load_experiment(oracle_experiment(tmp_path))
    notes = _comparability_notes(["expansion: s", "calibration: c"],
                                 [{"kind": "expansion"}, {"kind": "calibration", "multipliers": [1.0, 2.0, 4.0]}],
                                 [exp, exp])
    assert notes == ["calibration: c trained each candidate at 1x, 2x, 4x the schedule: its column is the best "
                     "over those lengths"]


def test_best_under():
    pts = [(1.0, 0.2), (2.0, 0.5), (4.0, 0.4)]
    assert best_under(pts, 0.5) != best_under(pts, 0.5)  # nan: nothing fits
    assert best_under(pts, 1.0) == 0.2 and best_under(pts, 3.0) == 0.5 and best_under(pts, 9) == 0.5
    assert math.isnan(best_under([], 1.0))


def test_baseline_bad_input_exits_2(tmp_path, capsys):
    exp_path = oracle_experiment(tmp_path)
    assert main(["baseline", exp_path, "--method", "grid", "--trials", "3"]) == 2
    assert main(["baseline", exp_path, "--method", "random", "--trials", "0"]) == 2
    assert main(["baseline", str(tmp_path / "missing.yaml"), "--method", "random", "--trials", "3"]) == 2
    out = tmp_path / "r"
    assert main(["baseline", exp_path, "--method", "random", "--trials", "2", "--out", str(out), "--quiet"]) == 0
    assert main(["baseline", exp_path, "--method", "random", "--trials", "2", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nope")]) == 2


def test_a_baseline_method_registered_in_the_table_runs_like_the_shipped_ones(tmp_path):
    """One entry: an Optuna sampler of our choice, run by the same code as random/tpe."""
    import optuna

    import expand
    from expand.baselines import Baseline, BaselineMethod, METHODS
    from tests.search.helpers import oracle_experiment

    METHODS.register("random7", BaselineMethod("random7", "random sampling, seed 7", Baseline.run_optuna,
                                               lambda b: optuna.samplers.RandomSampler(seed=7)))
    try:
        assert "random7" in expand.BASELINES
        run = expand.baseline(oracle_experiment(tmp_path), "random7", 3, out=str(tmp_path / "b"), quiet=True)
        assert run.kind == "random7" and run.status == "finished" and len(run.trials) == 3
        assert (tmp_path / "b" / "optuna.journal").is_file()
    finally:
        METHODS.unregister("random7")
    with pytest.raises(expand.InputError, match="method 'random7': must be one of random, tpe, compound"):
        expand.baseline(oracle_experiment(tmp_path, "e2.yaml"), "random7", 3, out=str(tmp_path / "c"), quiet=True)
    assert not (tmp_path / "c").exists()  # refused before its folder is written


def test_a_baseline_stopped_by_a_full_disk_with_its_journal_torn_resumes(tmp_path, capsys):
    # A full disk can cut the Optuna journal's last append short. Optuna reads past a torn
    # last line, but the next append glues a whole line to it and then no read gets past it.
    flag = tmp_path / "disk-is-full"
    flag.write_text("")
    exp = oracle_experiment(tmp_path, options={"noise": 0.01, "disk_full_file": str(flag),
                                               "disk_full_axes": ["random"]})
    run = tmp_path / "run"
    assert main(["baseline", exp, "--method", "random", "--trials", "4", "--max-gflops", str(CAP),
                 "--out", str(run), "--quiet"]) == 1
    assert "no space left on a disk the trials write to: random-" in capsys.readouterr().err  # the first under the cap
    with open(run / "optuna.journal", "ab") as fh:
        fh.write(b'{"op_code": 6, "worker_id": "torn-by-the-full-di')  # half of an append
    flag.unlink()  # space freed
    assert main(["resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    records = RunDir(str(run)).read_trials().records
    assert len({r.trial.trial_id for r in records}) == len(records) == 4  # each trained once
    assert (run / "optuna.journal.torn").read_bytes().startswith(b'{"op_code": 6, "worker_id": "torn')
    assert RunDir(str(run)).read_state()["status"] == "finished"
    assert main(["resume", str(run), "--quiet"]) == 0  # and the journal reads back whole


def test_compare_counts_a_model_trained_with_several_seeds_once_at_its_mean(tmp_path):
    run = confirmed_oracle_run(tmp_path)
    records = [json.loads(line) for line in open(os.path.join(run, "trials.jsonl"))]
    by_model: dict = {}
    for r in records:
        by_model.setdefault(r["trial_id"].split("-seed")[0], []).append(r["result"]["top1"])
    means = {m: sum(a) / len(a) for m, a in by_model.items()}
    assert any(len(a) == 2 and a[0] != a[1] for a in by_model.values())  # seeds that disagree
    points = run_points(run)
    assert sorted(a for _, a in points) == pytest.approx(sorted(means.values()))  # one point per model
    # the best is a model's mean, not its luckiest seed (which the old per-trial points reported)
    assert best_under(points, 1.0) == pytest.approx(max(means.values()))
    assert max(max(a) for a in by_model.values()) > max(means.values())


def test_compare_says_how_sure_each_runs_best_figure_is_from_its_validation_videos(tmp_path, oracle_run, capsys):
    run = confirmed_oracle_run(tmp_path)  # its trials record per-video results on 200 videos
    capsys.readouterr()
    assert main(["compare", run, str(oracle_run), "--json", "--plot", str(tmp_path / "c.png")]) == 0
    confirmed, plain = json.loads(capsys.readouterr().out)["runs"]
    best = max(b for b in confirmed["best_top1_frac"] if b is not None)
    assert confirmed["scored_videos"] == 200
    assert confirmed["binomial_se_frac"] == pytest.approx(math.sqrt(best * (1 - best) / 200))
    assert plain["scored_videos"] == 0 and plain["binomial_se_frac"] is None  # its oracle scored no videos
    assert main(["compare", run, str(oracle_run), "--plot", str(tmp_path / "c.png")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("how sure:"))
    assert f"expansion: confirmed {100 * confirmed['binomial_se_frac']:.1f} pts on 200 videos" in line
    assert "expansion: run" not in line  # nothing said of a run whose trials did not say
