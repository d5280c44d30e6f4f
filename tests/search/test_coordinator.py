import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from expand.config import load_experiment
from expand.search.axes import expand
from expand.search.coordinator import Coordinator
from expand.search.oracle import oracle_accuracy
from expand.search.runners import SerialRunner
from expand.run import RunDir
from tests.search.helpers import ROOT, oracle_experiment


def run_search(exp_path, out, counter):
    exp = load_experiment(exp_path)
    run = RunDir(str(out))
    run.create()
    run.write_config(exp.to_dict())
    return exp, Coordinator(exp, run, SerialRunner(exp.trial.function), counter).run()


def test_path_is_the_greedy_best_of_a_known_oracle(tmp_path, counter):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 3})
    exp, out = run_search(exp_path, tmp_path / "run", counter)
    # independent greedy reference: expand every axis, score with the oracle, keep the best
    space, spec = exp.search_space, exp.search_space.basis
    basis = spec.to_dict()
    expected = []
    for _ in range(3):
        options = [expand(spec, a, space, counter) for a in space.axes]
        best = max(options, key=lambda e: oracle_accuracy(e.spec.to_dict(), basis, {}))
        expected.append(best.axis)
        spec = best.spec
    assert [p.axis for p in out.path] == ["basis"] + expected
    assert out.path[-1].spec == spec
    assert out.stop_reason == "reached max_steps (3)"
    tops = [p.top1 for p in out.path]
    assert tops == sorted(tops)


def test_each_step_trains_one_candidate_per_axis_with_a_shared_seed(tmp_path, counter):
    exp, out = run_search(oracle_experiment(tmp_path, search={"max_steps": 2}), tmp_path / "r", counter)
    records = RunDir(str(tmp_path / "r")).read_trials().records
    step1 = [r for r in records if r.trial.step == 1]
    assert sorted(r.trial.axis for r in step1) == sorted(exp.search_space.axes)
    assert len({r.trial.seed for r in step1}) == 1
    assert len({r.trial.seed for r in records if r.trial.step == 2}) == 1
    assert step1[0].trial.seed != records[-1].trial.seed


@pytest.mark.parametrize("target_kind", ["between_steps", "below_first_step"])
def test_contraction_meets_targets_within_2_percent(tmp_path, counter, target_kind):
    # width alone pays off, so the path is width steps: a fine 0.01 grid to contract on
    opts = {"weights": {"frames": 0, "rate": 0, "crop": 0, "bottleneck": 0, "depth": 0, "width": 1.0}}
    exp_path = oracle_experiment(tmp_path, options=opts, search={"max_steps": 2, "targets": []})
    exp, out = run_search(exp_path, tmp_path / "run", counter)
    g = [p.gflops for p in out.path]
    assert [p.axis for p in out.path] == ["basis", "width", "width"]
    target = math.sqrt(g[1] * g[2]) if target_kind == "between_steps" else math.sqrt(g[0] * g[1])
    from expand.search.coordinator import contract_path

    (c,) = contract_path(out.path, [target], exp.search_space, counter)
    assert c["gflops"] <= target and c["within_tolerance"], c
    assert c["step"] == (2 if target_kind == "between_steps" else 1)
    lo, hi = (g[1], g[2]) if target_kind == "between_steps" else (g[0], g[1])
    assert lo < c["gflops"] < hi


def test_targets_in_the_experiment_stop_and_contract(tmp_path, counter):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 6, "targets": [0.003, 0.006]})
    exp, out = run_search(exp_path, tmp_path / "run", counter)
    assert "passed the largest target" in out.stop_reason
    assert out.path[-1].gflops > 0.006 and out.path[-2].gflops <= 0.006
    saved = json.loads((tmp_path / "run" / "contractions.json").read_text())
    assert [c["target_gflops"] for c in saved] == [0.003, 0.006]
    assert all(c["gflops"] <= c["target_gflops"] for c in saved)
    assert all(c["flop_error"] == pytest.approx(c["gflops"] / c["target_gflops"] - 1) for c in saved)
    # a run written before 2026-12 called it "error", the name of a trial's message: read as flop_error
    from expand.search.coordinator import load_contractions

    old = [{("error" if k == "flop_error" else k): v for k, v in c.items()} for c in saved]
    (tmp_path / "run" / "contractions.json").write_text(json.dumps(old))
    assert load_contractions(RunDir(str(tmp_path / "run"))) == saved


def test_over_cap_candidates_are_skipped_with_the_reason(tmp_path, counter):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 2, "max_gflops": 0.0041})
    run_search(exp_path, tmp_path / "run", counter)
    state = RunDir(str(tmp_path / "run")).read_state()
    step1 = {c["axis"]: c for c in state["steps"][0]["candidates"]}
    skipped = [a for a, c in step1.items() if c["status"] == "skipped"]
    assert skipped and all("over the cap" in step1[a]["reason"] for a in skipped)
    trained = RunDir(str(tmp_path / "run")).read_trials().records
    assert all(r.trial.gflops <= 0.0041 for r in trained)


def test_injected_failures_are_retried_then_recorded_and_the_search_goes_on(tmp_path, counter):
    opts = {"fail_axes": {"spatial": 1, "depth": 5}, "diverge_axes": ["width"]}
    exp_path = oracle_experiment(tmp_path, options=opts, search={"max_steps": 2},
                                 retries={"failed": 1, "diverged": 0})
    exp, out = run_search(exp_path, tmp_path / "run", counter)
    assert len(out.path) == 3  # two steps despite failures
    records = RunDir(str(tmp_path / "run")).read_trials().records
    by = {}
    for r in records:
        by.setdefault(r.trial.trial_id, []).append(r.result.status)
    assert by["s01-spatial"] == ["failed", "ok"]  # retried once, then fine
    assert by["s01-depth"] == ["failed", "failed"]  # one retry, then recorded failed
    assert by["s01-width"] == ["diverged"]  # diverged: no retry by policy
    state = RunDir(str(tmp_path / "run")).read_state()
    step1 = {c["axis"]: c for c in state["steps"][0]["candidates"]}
    assert step1["depth"]["status"] == "failed" and "injected failure" in step1["depth"]["reason"]
    assert step1["depth"]["chosen"] is False


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "expand.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, **kw)


def test_kill_9_then_resume_reruns_no_finished_trial(tmp_path):
    count = tmp_path / "calls.txt"
    opts = {"sleep": 0.15, "count_file": str(count), "noise": 0.02}
    exp_path = oracle_experiment(tmp_path, options=opts, search={"max_steps": 3, "targets": [0.01]})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "expand.cli", "search", exp_path, "--out",
                             str(run_dir), "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    trials_file = run_dir / "trials.jsonl"
    deadline = time.time() + 600  # generous: it exits as soon as the trials are there
    while time.time() < deadline:
        if trials_file.exists() and len(trials_file.read_text().splitlines()) >= 8:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {json.loads(line)["trial_id"] for line in trials_file.read_text().splitlines()}
    assert 8 <= len(finished_before) < 19
    resumed = _cli("resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    calls = [line.split()[0] for line in count.read_text().splitlines()]
    for trial_id in finished_before:
        assert calls.count(trial_id) == 1, trial_id

    # the same search uninterrupted gives the same path and the same table
    ref_dir = tmp_path / "ref"
    opts_ref = dict(opts, count_file=str(tmp_path / "ref_calls.txt"))
    ref_exp = oracle_experiment(tmp_path, name="ref.yaml", options=opts_ref,
                                search={"max_steps": 3, "targets": [0.01]})
    ref = _cli("search", ref_exp, "--out", str(ref_dir), "--quiet")
    assert ref.returncode == 0, ref.stderr
    a, b = RunDir(str(run_dir)).read_state(), RunDir(str(ref_dir)).read_state()
    assert a["path"] == b["path"]
    assert a["steps"] == b["steps"]
    import pandas as pd

    cols = ["step", "axis", "frames", "stride", "crop", "width", "bottleneck", "depth", "gflops",
            "top1_frac", "status", "chosen"]
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "steps.csv")[cols],
                                  pd.read_csv(ref_dir / "steps.csv")[cols])
    assert json.loads((run_dir / "contractions.json").read_text()) == \
        json.loads((ref_dir / "contractions.json").read_text())


def test_resume_refuses_a_changed_experiment(tmp_path):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 1})
    run_dir = tmp_path / "run"
    assert _cli("search", exp_path, "--out", str(run_dir), "--quiet").returncode == 0
    before = (run_dir / "trials.jsonl").read_text()
    oracle_experiment(tmp_path, search={"max_steps": 2}, retries={"failed": 3})
    r = _cli("resume", str(run_dir), "--quiet")
    assert r.returncode == 2
    assert "search.max_steps" in r.stderr and "retries.failed" in r.stderr
    assert r.stderr.count("\n") == 1
    assert (run_dir / "trials.jsonl").read_text() == before  # nothing lost or added
    forced = _cli("resume", str(run_dir), "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(RunDir(str(run_dir)).read_state()["path"]) == 3


def test_search_refuses_an_existing_run_and_bad_input_writes_nothing(tmp_path):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 1})
    run_dir = tmp_path / "run"
    assert _cli("search", exp_path, "--out", str(run_dir), "--quiet").returncode == 0
    again = _cli("search", exp_path, "--out", str(run_dir), "--quiet")
    assert again.returncode == 2 and "already holds a run" in again.stderr
    bad = oracle_experiment(tmp_path, name="bad.yaml", trial={"function": "nowhere:fn"})
    out = tmp_path / "bad_run"
    r = _cli("search", bad, "--out", str(out))
    assert r.returncode == 2 and "cannot import 'nowhere'" in r.stderr
    assert not out.exists()
    missing = _cli("search", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "x"))
    assert missing.returncode == 2 and "file not found" in missing.stderr
    assert not (tmp_path / "x").exists()


class OutOfProcessLike(SerialRunner):
    """Runs in process but says it does not, and lets the lookahead finish before
    returning a batch: a batch long enough to count everything ahead."""

    trials_in_process = False
    coordinator = None

    def run(self, trials, on_result):
        super().run(trials, on_result)
        assert self.coordinator.lookahead.drain(timeout=300)


def test_the_lookahead_counts_each_next_step_while_the_trials_run(tmp_path, counter):
    from expand.complexity import ComplexityCounter
    from tests.search.helpers import TINY

    # the three axes that count fast: a step's lookahead is ~9 counts per parent
    space = tmp_path / "space.yaml"
    space.write_text(open(TINY).read().replace("axes: [fast, temporal, spatial, depth, width, bottleneck]",
                                               "axes: [fast, temporal, spatial]"))
    exp = load_experiment(oracle_experiment(tmp_path, search={"max_steps": 3}, search_space=str(space)))
    outcomes = {}
    for kind in ("serial", "lookahead"):
        run = RunDir(str(tmp_path / kind))
        run.create()
        run.write_config(exp.to_dict())
        runner = SerialRunner(exp.trial.function) if kind == "serial" else OutOfProcessLike(exp.trial.function)
        fresh = ComplexityCounter(path=None) if kind == "lookahead" else counter
        coordinator = Coordinator(exp, run, runner, fresh)
        runner.coordinator = coordinator
        assert (coordinator.lookahead is not None) == (kind == "lookahead")
        outcomes[kind] = (coordinator.run(), coordinator.counted_between_steps, fresh.misses)
    serial, ahead = outcomes["serial"][0], outcomes["lookahead"][0]
    assert [p.spec for p in ahead.path] == [p.spec for p in serial.path]  # it decides nothing
    assert ahead.steps == serial.steps and len(ahead.path) == 4
    counts, misses = outcomes["lookahead"][1:]
    assert counts == [0, 0, 0] and misses > 3 * 3  # all counted, none after a batch
