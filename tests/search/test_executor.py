"""TrialExecutor: the retry policy and the time limit, on the oracle with the serial runner."""

import os
import time

import pytest

from expand.config import load_experiment
from expand.search.coordinator import Coordinator
from expand.search.runners import SerialRunner
from expand.search.time_limits import TimeLimits
from expand.search.trial import TrialResult, TrialSpec, call_safely
from expand.spec import ArchSpec
from expand.run import RunDir
from tests.search.helpers import oracle_experiment


def _search(exp_path, out, counter):
    exp = load_experiment(exp_path)
    run = RunDir(str(out))
    if not run.exists():
        run.create()
        run.write_config(exp.to_dict())
    try:
        runner = SerialRunner(exp.trial.function, time_limit_s=TimeLimits.of(exp.trial).fixed_s)
        Coordinator(exp, run, runner, counter).run()
    finally:
        run.release()  # as the CLI does: the next call resumes the run
    by = {}
    for r in run.read_trials().records:
        by.setdefault(r.trial.trial_id, []).append(r.result)
    return by


def test_a_hung_trial_is_stopped_at_its_time_limit_retried_per_policy_and_the_search_goes_on(tmp_path, counter):
    exp_path = oracle_experiment(tmp_path, options={"hang_axes": {"depth": 1, "width": 5}, "hang_s": 60},
                                 search={"max_steps": 2}, retries={"timeout": 1}, trial={"time_limit_s": 0.5})
    started = time.perf_counter()
    by = _search(exp_path, tmp_path / "run", counter)
    assert time.perf_counter() - started < 60  # four one-hour hangs, each stopped at 0.5 s
    assert [r.status for r in by["s01-depth"]] == ["timeout", "ok"]  # retried once, then fine
    assert [r.status for r in by["s01-width"]] == ["timeout", "timeout"]  # out of retries: recorded
    stopped = by["s01-width"][-1]
    assert "trial.time_limit_s is 0.5" in stopped.error and 0.5 <= stopped.seconds < 30
    assert stopped.extra["time_limit_s"] == 0.5
    assert all(r.status == "ok" for tid, rs in by.items() if "width" not in tid and "depth" not in tid
               for r in rs)
    assert any(tid.startswith("s02-") for tid in by)  # the search went on to step 2


def test_raising_the_time_limit_and_resuming_retrains_only_what_the_old_limit_cut_short(tmp_path, counter):
    count = tmp_path / "calls.txt"
    options = {"hang_axes": {"depth": 1}, "hang_s": 60, "count_file": str(count)}
    limited = oracle_experiment(tmp_path, "a.yaml", options=options, search={"max_steps": 1},
                                trial={"time_limit_s": 0.5})
    by = _search(limited, tmp_path / "run", counter)
    assert [r.status for r in by["s01-depth"]] == ["timeout"]  # retries.timeout: 0
    calls = len(count.read_text().splitlines())
    _search(limited, tmp_path / "run", counter)  # the same limit: nothing owed, nothing trained
    assert len(count.read_text().splitlines()) == calls
    raised = oracle_experiment(tmp_path, "b.yaml", options=options, search={"max_steps": 1},
                               trial={"time_limit_s": 0.8})
    by = _search(raised, tmp_path / "run", counter)
    assert [r.status for r in by["s01-depth"]] == ["timeout", "ok"]
    assert [line.split()[0] for line in count.read_text().splitlines()[calls:]] == ["s01-depth"]


def test_an_auto_limit_follows_the_runs_measured_seconds_per_gflop_and_resume_keeps_it(tmp_path, counter):
    count = tmp_path / "calls.txt"
    options = {"hang_axes": {"depth": 1, "width": 5}, "hang_s": 60, "sleep": 0.3, "count_file": str(count)}
    auto = {"time_limit_s": "auto", "time_limit_factor": 3, "time_limit_min_s": 1.0}
    exp_path = oracle_experiment(tmp_path, "a.yaml", options=options, search={"max_steps": 1},
                                 retries={"timeout": 1}, trial=auto)
    started = time.perf_counter()
    by = _search(exp_path, tmp_path / "run", counter)
    assert time.perf_counter() - started < 40  # three one-minute hangs, each stopped after a few seconds
    records = {r.trial.trial_id: r for r in RunDir(str(tmp_path / "run")).read_trials().records}
    basis = records["s00-basis"]
    assert basis.trial.time_limit_s is None  # nothing had finished: no rate, no limit
    rate = basis.result.seconds / basis.trial.gflops
    for tid, r in records.items():  # each attempt got 3 x the rate x its GFLOPs (at least 1 s)
        if tid != "s00-basis":
            assert r.trial.time_limit_s is not None and r.trial.time_limit_s >= 1.0
    assert [r.status for r in by["s01-depth"]] == ["timeout", "ok"]  # retried once, then fine
    assert [r.status for r in by["s01-width"]] == ["timeout", "timeout"]
    # the rate fell once the larger candidates finished; a retry still gets the time its attempt ran out of
    depth = [r.trial.time_limit_s for r in RunDir(str(tmp_path / "run")).read_trials().records
             if r.trial.trial_id == "s01-depth"]
    assert len(depth) == 2 and depth[1] == depth[0]
    stopped = by["s01-width"][0]
    assert stopped.extra["time_limit_factor"] == 3 and "auto: 3 x" in stopped.error
    first_limit = stopped.extra["time_limit_s"]
    assert first_limit == max(1.0, round(3 * rate * records["s01-width"].trial.gflops))
    assert all(r.status == "ok" for tid, rs in by.items() if tid not in ("s01-depth", "s01-width") for r in rs)
    calls = len(count.read_text().splitlines())
    _search(exp_path, tmp_path / "run", counter)  # more trials finished, the rate moved: nothing owed
    assert len(count.read_text().splitlines()) == calls
    raised = oracle_experiment(tmp_path, "b.yaml", options=options, search={"max_steps": 1},
                               retries={"timeout": 1}, trial={**auto, "time_limit_factor": 4})
    by = _search(raised, tmp_path / "run", counter)  # a larger factor retrains what the smaller cut short
    assert [line.split()[0] for line in count.read_text().splitlines()[calls:]] == ["s01-width"]
    assert [r.status for r in by["s01-width"]] == ["timeout"] * 3  # (its third attempt hangs too)
    assert by["s01-width"][-1].extra["time_limit_factor"] == 4


def _swallows_everything(trial):
    try:
        time.sleep(3600)
    except Exception:  # noqa: BLE001 - what a careless trial function does
        pass
    return TrialResult(trial.trial_id, "ok", top1=0.5)


def test_the_in_process_limit_gets_past_a_trial_functions_own_except_exception():
    trial = TrialSpec("t", 1, "fast", ArchSpec(1, 8, 32), 3, 0.001, 10)
    result = call_safely(_swallows_everything, trial, time_limit_s=0.3)
    assert result.status == "timeout" and result.seed == 3 and result.seconds >= 0.3
    assert call_safely(lambda t: TrialResult(t.trial_id, "ok", top1=0.5), trial, time_limit_s=0.3).ok
    time.sleep(0.5)  # the alarm was cancelled with the trial: nothing goes off later


def test_a_full_disk_stops_the_search_after_its_batch_and_resume_reruns_only_that_trial(tmp_path, capsys):
    # Recording it 'failed' would let step 1 choose among the axes that happened to finish: a
    # silently different path. The batch's other trials finish and are kept; nothing reruns.
    from expand.cli import main
    from expand.run import RunDir

    flag = tmp_path / "disk-is-full"
    flag.write_text("")
    exp = oracle_experiment(tmp_path, options={"disk_full_file": str(flag), "disk_full_axes": ["depth"]},
                            search={"max_steps": 2, "targets": []}, retries={"failed": 3})
    run = tmp_path / "run"
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("x3d-expand: error: no space left on a disk the trials write to: ")
    assert f"s01-depth (OSError: [Errno 28] No space left on device: '{run}/trials/s01-depth/weights.pt')" in err[0]
    assert err[0].endswith(f"free space, then 'x3d-expand resume {run}'")
    first = [r.trial.trial_id for r in RunDir(str(run)).read_trials().records]
    axes = ["fast", "temporal", "spatial", "width", "bottleneck"]  # tiny_cpu.yaml's, less depth
    assert sorted(first) == sorted(["s00-basis"] + [f"s01-{a}" for a in axes])
    flag.unlink()  # space freed
    assert main(["resume", str(run), "--quiet"]) == 0
    records = RunDir(str(run)).read_trials().records
    ids = [r.trial.trial_id for r in records]
    assert len(ids) == len(set(ids)) and ids[:len(first)] == first  # nothing trained twice
    assert next(r for r in records if r.trial.trial_id == "s01-depth").result.status == "ok"
    assert any(i.startswith("s02-") for i in ids)


@pytest.mark.parametrize("code, problem", [
    ("ENOSPC", "no space left"), ("EDQUOT", "disk quota exceeded"),
    ("EROFS", "read-only file system"),  # ext4's errors=remount-ro after disk errors, mid-search
    ("EIO", "I/O error"), ("EACCES", ""), (None, ""),
])
def test_only_a_disk_that_cannot_take_writes_is_marked(code, problem):
    import errno

    trial = TrialSpec("t", 1, "depth", ArchSpec(1, 8, 64), 0, 0.002, 1)

    def func(t):
        if code is None:
            raise RuntimeError("no space in the name")
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), "/run/trials/t/model.pt")

    result = call_safely(func, trial)
    assert result.status == "failed" and result.disk_problem == problem


def test_a_disk_error_a_trial_function_wrapped_in_its_own_is_still_marked():
    import errno

    trial = TrialSpec("t", 1, "depth", ArchSpec(1, 8, 64), 0, 0.002, 1)

    def func(t):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/run/trials/t/model.pt")
        except OSError as exc:
            raise RuntimeError("could not save the checkpoint") from exc

    result = call_safely(func, trial)
    assert result.status == "failed" and result.disk_problem == "no space left"
    assert result.extra["errno"] == errno.ENOSPC and "could not save the checkpoint" in result.error


def test_a_trial_that_breaks_the_gpu_is_recorded_and_the_serial_search_stops_for_a_new_process(tmp_path, capsys):
    # A later trial in this process would fail at once, and so would the rest of the step:
    # the step would choose among the axes that ran before it. resume runs in a new process.
    from expand.cli import main
    from expand.run import RunDir

    exp = oracle_experiment(tmp_path, options={"broken_device_axes": {"depth": 1}},
                            search={"max_steps": 1, "targets": []}, retries={"failed": 1})
    run = tmp_path / "run"
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("x3d-expand: error: CUDA error: an illegal memory access was "
                                               "encountered (in s01-depth, recorded failed)")
    assert f"'x3d-expand resume {run}' goes on in a new process" in err[0]
    records = RunDir(str(run)).read_trials().records
    assert records[-1].trial.trial_id == "s01-depth" and records[-1].result.status == "failed"
    assert records[-1].result.device_broken.startswith("CUDA error: an illegal memory access")
    stopped_after = len(records)
    assert stopped_after < 7  # the step's trials after it were not run in the broken process
    assert main(["resume", str(run), "--quiet"]) == 0
    records = RunDir(str(run)).read_trials().records
    depth = [r.result.status for r in records if r.trial.trial_id == "s01-depth"]
    assert depth == ["failed", "ok"]  # retried as retries.failed allows, in the new process
    assert sorted(r.trial.trial_id for r in records if r.result.ok) == sorted(
        ["s00-basis"] + [f"s01-{a}" for a in ("fast", "temporal", "spatial", "depth", "width", "bottleneck")])


def test_a_gpu_that_breaks_two_trials_is_taken_for_faulty_and_one_model_breaking_twice_is_not():
    from expand.search.executor import faulty_gpu
    from expand.search.trial import TrialResult

    def broke(tid, host="gpu-b", gpu="3"):
        return TrialResult(tid, "failed", extra={"device_broken": "CUDA error: an illegal memory access was "
                                                 "encountered", "host": host, "cuda_visible_devices": gpu})

    assert faulty_gpu([]) == ""
    assert faulty_gpu([broke("s01-fast"), broke("s01-fast")]) == ""  # one model (a kernel bug?), twice
    assert faulty_gpu([broke("s01-fast"), broke("s01-depth", gpu="4"), broke("s01-width", host="gpu-c")]) == ""
    said = faulty_gpu([broke("s01-fast"), broke("s01-depth", gpu="4"), broke("s01-width")])
    assert said.startswith("GPU CUDA_VISIBLE_DEVICES=3 on gpu-b broke 2 trials' processes (s01-fast, s01-width: "
                           "CUDA error: an illegal memory access was encountered): likely a faulty GPU")


def test_a_stopped_executor_names_the_command_that_goes_on(tmp_path):
    """Contracted models are trained by `contract --train`, not `resume`: its stops say so."""
    from expand.config import RetriesConfig
    from expand.errors import DeviceBroken, StopRequested
    from expand.run.stop import STOP_FILE
    from expand.search.executor import TrialExecutor
    from expand.search.progress import SilentProgress

    def breaks(trial):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    run = RunDir(str(tmp_path / "run"))
    trial = TrialSpec("contract-0.003", 1, "contract:spatial", ArchSpec(1, 8, 64), 0, 0.003, 10)
    again = f"x3d-expand contract {run.path} --target-gflops 0.003 --train"
    executor = TrialExecutor(run, SerialRunner(breaks), RetriesConfig(failed=1), SilentProgress(), again=again)
    with pytest.raises(DeviceBroken, match=f"'{again}' goes on in a new process"):
        executor.train([trial])
    (tmp_path / "run" / STOP_FILE).write_text("{}")
    with pytest.raises(StopRequested, match=f"'{again}' continues"):
        TrialExecutor(run, SerialRunner(breaks), RetriesConfig(), SilentProgress(), again=again).train([trial])
    plain = TrialExecutor(run, SerialRunner(breaks), RetriesConfig(), SilentProgress())
    (tmp_path / "run" / STOP_FILE).write_text("{}")
    with pytest.raises(StopRequested, match=f"'x3d-expand resume {run.path}' continues"):
        plain.train([trial])
