"""The run folder's owner: one writer, a repaired log, typed state, files a teammate can read."""

import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest
import yaml

from expand.cli import main
from expand.errors import InputError
from expand.run import RunDir
from tests.search.helpers import oracle_experiment

HOLD = """
import sys, time
from expand.run import RunDir
run = RunDir(sys.argv[1]).acquire("holder")
print("locked", flush=True)
sys.stdin.read()
"""


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        with pytest.raises(InputError) as info:
            RunDir(str(tmp_path / "run")).acquire()
        msg = str(info.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "holder" in msg
    finally:
        proc.stdin.close()
        proc.wait(60)
    RunDir(str(tmp_path / "run")).acquire().release()  # the holder is gone: the lock is free


def test_resume_while_another_process_writes_exits_2_and_trains_nothing(tmp_path, capsys):
    exp = oracle_experiment(tmp_path, search={"max_steps": 1})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    before = (tmp_path / "run" / "trials.jsonl").read_text()
    proc = _holder(tmp_path / "run")
    try:
        assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 2
        assert f"pid {proc.pid}" in capsys.readouterr().err
        assert main(["contract", str(tmp_path / "run"), "--target-gflops", "0.003"]) == 2
        assert main(["show", str(tmp_path / "run")]) == 0  # readers never need the lock
    finally:
        proc.stdin.close()
        proc.wait(60)
    assert (tmp_path / "run" / "trials.jsonl").read_text() == before


def test_two_searches_into_one_folder_a_second_apart_train_each_trial_once(tmp_path):
    exp = oracle_experiment(tmp_path, options={"sleep": 0.3}, search={"max_steps": 1})
    cmd = [sys.executable, "-m", "expand.cli", "search", exp, "--out", str(tmp_path / "run"), "--quiet"]
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    first.wait(600)
    # on a loaded machine either may take the lock first: exactly one searches, the other is refused
    codes = sorted([first.returncode, second.returncode])
    loser = second.stderr if second.returncode == 2 else first.stderr.read()
    assert codes == [0, 2], (codes, loser)
    assert "being written by" in loser or "already holds a run" in loser
    ids = [json.loads(line)["trial_id"] for line in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids))


def _finished_run(tmp_path, steps=2):
    exp = oracle_experiment(tmp_path, search={"max_steps": steps})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return tmp_path / "run"


def test_a_torn_last_line_is_cut_kept_aside_and_its_trial_rerun(tmp_path):
    run = _finished_run(tmp_path)
    log = run / "trials.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    state = json.loads((run / "state.json").read_text())
    last = json.loads(lines[-1])["trial_id"]
    torn = lines[-1][: len(lines[-1]) // 2]
    log.write_text("".join(lines[:-1]) + torn)  # power loss in the middle of the last record
    assert RunDir(str(run)).read_trials().torn_tail == torn  # readers see it, never touch it
    assert main(["resume", str(run), "--quiet"]) == 0
    after = log.read_text().splitlines()
    records = [json.loads(line) for line in after]  # every line is valid JSON again
    assert [r["trial_id"] for r in records].count(last) == 1  # the torn trial ran again, once
    assert len(records) == len(lines)  # and nothing else did
    assert (run / "trials.jsonl.torn").read_text() == torn + "\n"
    assert json.loads((run / "state.json").read_text())["path"] == state["path"]


def test_a_record_glued_onto_a_fragment_is_salvaged(tmp_path):
    run = _finished_run(tmp_path, steps=1)
    log = run / "trials.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]) + '{"trial_id": "s01-wi' + lines[-1])  # the old bug's file
    records = RunDir(str(run)).read_trials().records
    assert len(records) == len(lines)


def test_force_resume_after_the_space_changed_retrains_changed_models(tmp_path):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 1})
    assert main(["search", exp_path, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    data = yaml.safe_load(open(exp_path))
    space = yaml.safe_load(open(data["search_space"]))
    space["basis"]["crop"] = 96  # every model of the search changes
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    data["search_space"] = str(tmp_path / "space.yaml")
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(data))
    assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 2  # changed: refused without --force
    assert main(["resume", str(tmp_path / "run"), "--force", "--quiet"]) == 0
    state = RunDir(str(tmp_path / "run")).state()
    records = RunDir(str(tmp_path / "run")).read_trials().records
    assert state.path[0].spec.crop == 96
    for p in state.path:  # each path model's result came from a trial of that very model
        mine = [r for r in records if r.trial.trial_id == p.trial_id and r.result.ok]
        assert mine[-1].trial.spec == p.spec and mine[-1].result.top1 == pytest.approx(p.top1)
    log = (tmp_path / "run" / "progress.log").read_text()  # the run's record says what --force changed
    assert "plan: basis " in log and f"resumed with --force: {exp_path} changed (" in log
    assert log.count("== x3d-expand resume ") == 1  # the refused resume wrote nothing


def test_resume_with_more_steps_grows_a_finished_search_as_far_as_one_search_would(tmp_path, capsys):
    """The demo's way: `search --max-steps 1` (a flag, so editing the file could not grow it)."""
    exp_path = oracle_experiment(tmp_path, options={"noise": 0.01}, search={"max_steps": 3})
    run = tmp_path / "run"
    assert main(["search", exp_path, "--out", str(run), "--max-steps", "1", "--quiet"]) == 0
    before = (run / "trials.jsonl").read_text().splitlines()
    capsys.readouterr()
    assert main(["resume", str(run), "--max-steps", "2"]) == 0
    assert "search 'oracle-test': up to 2 steps" in capsys.readouterr().out
    assert "resumed to grow the search: search.max_steps 2" in (run / "progress.log").read_text()
    lines = (run / "trials.jsonl").read_text().splitlines()
    assert lines[:len(before)] == before  # nothing finished trained again
    assert sorted(json.loads(line)["trial_id"][:3] for line in lines[len(before):]) == ["s02"] * 6
    grown = RunDir(str(run)).state()
    assert len(grown.path) == 3 and grown.origin.overrides["max_steps"] == 2
    assert main(["search", exp_path, "--out", str(tmp_path / "fresh"), "--max-steps", "2", "--quiet"]) == 0
    fresh = RunDir(str(tmp_path / "fresh")).state()
    assert [p.spec for p in grown.path] == [p.spec for p in fresh.path]  # the path one 2-step search finds
    assert main(["resume", str(run), "--quiet"]) == 0  # the new max_steps stays with the run
    assert (run / "trials.jsonl").read_text().splitlines() == lines
    # the same with a larger budget: the search grows until its path passes it, then contracts to it
    assert main(["resume", str(run), "--max-steps", "3", "--targets", "0.012", "--quiet"]) == 0
    state = RunDir(str(run)).state()
    assert state.path[-1].gflops > 0.012 and len(state.path) == 4
    assert 0.012 in [c["target_gflops"] for c in json.loads((run / "contractions.json").read_text())]


def test_a_forced_resume_grows_against_the_edited_files_targets(tmp_path):
    """--max-steps was checked against config.yaml's largest target even when --force brought a larger one."""
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 1, "targets": [0.003]})
    run = tmp_path / "run"
    assert main(["search", exp_path, "--out", str(run), "--quiet"]) == 0  # step 1 passes 0.003: it stops
    data = yaml.safe_load(open(exp_path))
    data["search"]["targets"] = [0.006]
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(data))
    config = (run / "config.yaml").read_text()
    assert main(["resume", str(run), "--max-steps", "2", "--quiet"]) == 2  # changed: --force first
    assert (run / "config.yaml").read_text() == config
    assert main(["resume", str(run), "--max-steps", "2", "--force", "--quiet"]) == 0
    state = RunDir(str(run)).state()
    assert len(state.path) == 3 and state.path[-1].gflops > 0.006
    saved = yaml.safe_load((run / "config.yaml").read_text())["search"]
    assert saved["max_steps"] == 2 and saved["targets"] == [0.006]


def test_resume_refuses_to_shorten_a_path_or_grow_a_baseline_and_changes_nothing(tmp_path, capsys):
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 2, "targets": [0.006]})
    run = tmp_path / "run"
    assert main(["search", exp_path, "--out", str(run), "--quiet"]) == 0
    assert main(["baseline", exp_path, "--method", "random", "--trials", "2", "--out", str(tmp_path / "random"),
                 "--quiet"]) == 0
    capsys.readouterr()
    files = {p: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    for argv, why in (([str(run), "--max-steps", "1"], "--max-steps 1: the run already decided 2 steps"),
                      ([str(run), "--targets", "1e9"], "resume --max-steps/--targets: search.targets: 1e+09 "
                                                       "GFLOPs is out of reach"),
                      ([str(tmp_path / "random"), "--max-steps", "3"], "a random run has no expansion path"),
                      # more steps past the run's largest target: the search would stop where it stands
                      ([str(run), "--max-steps", "3"], "already passed the run's largest target (0.006 GFLOPs), "
                                                       "where the search stops; give --targets too")):
        assert main(["resume", *argv]) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == files


def test_a_dataset_moved_to_another_mount_is_resumed_with_a_hint_and_nothing_retrained(tmp_path, capsys):
    """The error named only the missing data.root; a forced resume retrains nothing (a trial's
    fingerprint leaves paths out), and the messages now say so."""
    from expand.data.synth import SynthConfig, write_dataset

    write_dataset(SynthConfig(str(tmp_path / "data"), classes=2, videos_per_class=2, val_per_class=1, frames=8,
                              size=32))
    exp_path = oracle_experiment(tmp_path, search={"max_steps": 1}, data={"root": "data", "num_classes": 2})
    assert main(["search", exp_path, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    trained = len(RunDir(str(tmp_path / "run")).read_trials().records)
    os.rename(tmp_path / "data", tmp_path / "mnt")
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 2
    assert (f"data.root: {tmp_path / 'data'} does not exist; moved the dataset? resume with --set "
            "data.root=WHERE_IT_IS_NOW (only paths changed: no finished trial reruns)") in capsys.readouterr().err
    import shutil

    shutil.copytree(tmp_path / "run", tmp_path / "run2")  # for the other way: the file edited
    # the way the hint says: no --force (no fingerprint reads a path), nothing retrained, kept
    assert main(["resume", str(tmp_path / "run"), "--quiet", "--set", f"data.root={tmp_path / 'mnt'}"]) == 0
    assert len(RunDir(str(tmp_path / "run")).read_trials().records) == trained
    assert RunDir(str(tmp_path / "run")).read_config()["data"]["root"] == str(tmp_path / "mnt")
    assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 0  # a later resume keeps the new root
    data = yaml.safe_load(open(exp_path))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**data, "data": {**data["data"], "root": "mnt"}}))
    assert main(["resume", str(tmp_path / "run2"), "--quiet"]) == 2
    assert "changed since the run started (data.root); use --force to resume with the new file (no trial's " \
           "fingerprint reads these: no finished trial reruns)" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "run2"), "--force", "--quiet"]) == 0
    assert len(RunDir(str(tmp_path / "run2")).read_trials().records) == trained


def test_a_run_killed_before_its_first_state_resumes(tmp_path):
    run = _finished_run(tmp_path, steps=1)
    for name in ("state.json", "trials.jsonl", "steps.csv"):
        (run / name).unlink()
    assert main(["resume", str(run), "--quiet"]) == 0
    assert RunDir(str(run)).state().status == "finished"


@pytest.mark.parametrize("name, content", [
    ("state.json", "{not json"), ("state.json", b"\xff\xfe\x00"), ("state.json", '{"kind": "quantum"}'),
    ("state.json", '{"path": [{"step": 0}]}'), ("state.json", "[1, 2]"),
    ("config.yaml", "name: [unclosed"), ("config.yaml", b"\xff\xfe"), ("config.yaml", "42"),
])
def test_corrupt_run_files_exit_2_naming_the_file(tmp_path, capsys, name, content, oracle_run):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(oracle_run, run)
    path = run / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for argv in (["show", str(run)], ["resume", str(run)], ["contract", str(run), "--target-gflops", "0.003"],
                 ["export", str(run), "--step", "1"], ["plot", str(run)], ["compare", str(run)]):
        code = main(argv)
        err = capsys.readouterr().err
        if name == "config.yaml" and argv[0] in ("show", "plot"):
            assert code == 0, (argv, err)  # they read only the state and the log
            continue
        assert code == 2, (argv, err)
        assert name in err and err.count("\n") == 1, (argv, err)


def test_every_run_file_has_the_same_readable_mode(tmp_path):
    old = os.umask(0o022)
    try:
        run = _finished_run(tmp_path, steps=1)
        assert main(["contract", str(run), "--target-gflops", "0.003"]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert {"state.json", "config.yaml", "trials.jsonl", "steps.csv", "contractions.json"} <= set(modes)
    assert set(modes.values()) == {0o644}, modes


def test_a_dropped_writer_frees_the_run_for_the_next_one(tmp_path):
    import gc

    first = RunDir(str(tmp_path / "run")).acquire()
    with pytest.raises(InputError):
        RunDir(str(tmp_path / "run")).acquire()
    del first
    gc.collect()
    RunDir(str(tmp_path / "run")).acquire().release()
