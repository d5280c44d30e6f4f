"""Runners: the serial one in process, the Ray one on a real local cluster (one per session)."""

import pytest

from expand.config import load_experiment
from expand.search.coordinator import Coordinator
from expand.search.runners import RayRunner, SerialRunner
from expand.run import RunDir
from expand.search.trial import TrialResult, TrialSpec
from expand.spec import ArchSpec
from tests.search.helpers import oracle_experiment


def _boom(trial):
    raise ValueError("kaboom")


def test_serial_runner_turns_exceptions_into_failed_results():
    got = []
    trial = TrialSpec("t1", 1, "fast", ArchSpec(1, 8, 32), 7, 0.001, 10)
    SerialRunner(_boom).run([trial], lambda t, r: got.append(r))
    (r,) = got
    assert isinstance(r, TrialResult) and r.status == "failed"
    assert "ValueError: kaboom" in r.error and r.seed == 7


@pytest.mark.ray
def test_ray_runner_runs_a_search_on_a_local_cluster(tmp_path, ray_cluster, counter):
    opts = {"fail_axes": {"depth": 1}, "sleep": 0.2}
    exp = load_experiment(oracle_experiment(tmp_path, options=opts,
                                            search={"max_steps": 1, "runner": "ray"}))
    run = RunDir(str(tmp_path / "run"))
    run.create()
    runner = RayRunner(exp.trial.function, str(tmp_path / "run" / "ray"), cpus_per_trial=1)
    assert runner.parallelism == 2
    serial = Coordinator(exp, RunDir(str(tmp_path / "serial")), SerialRunner(exp.trial.function),
                         counter).run()
    out = Coordinator(exp, run, runner, counter).run()
    runner.close()  # the session fixture owns Ray: close() must not shut it down
    assert ray_cluster.is_initialized()
    assert [(p.axis, p.spec, round(p.top1, 9)) for p in out.path] == \
        [(p.axis, p.spec, round(p.top1, 9)) for p in serial.path]
    records = run.read_trials().records
    depth = [r.result.status for r in records if r.trial.axis == "depth"]
    assert depth == ["failed", "ok"]  # retried through Ray
    assert (tmp_path / "run" / "ray").is_dir()  # Tune's files live under the run folder


@pytest.mark.ray
def test_a_full_disk_under_tunes_own_files_stops_the_search_resumably(tmp_path, ray_cluster, monkeypatch,
                                                                       capsys):
    # Tune saves its experiment state under RUN/ray; when that write fails, Tune stops. Recording
    # the batch's trials failed would retry and then skip them: a silently different path.
    import errno
    import os

    from ray.tune.execution.tune_controller import TuneController

    from expand.cli import main

    full, save = tmp_path / "disk-is-full", TuneController.save_to_dir
    run = tmp_path / "run"

    def save_to_dir(self, *args, **kwargs):
        if full.exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{run}/ray/experiment_state.json")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(TuneController, "save_to_dir", save_to_dir)
    exp = oracle_experiment(tmp_path, options={"sleep": 0.2}, retries={"failed": 3},
                            search={"max_steps": 1, "targets": [], "runner": "ray"})
    full.write_text("")
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("x3d-expand: error: no space left on a disk the trials write to: s00-basis "
                              "(Ray Tune stopped: OSError: [Errno 28]")
    assert err[-1].endswith(f"free space, then 'x3d-expand resume {run}'")
    assert RunDir(str(run)).read_trials().records == []  # not recorded failed: nothing to skip later
    full.unlink()
    assert main(["resume", str(run), "--quiet"]) == 0
    records = RunDir(str(run)).read_trials().records
    assert [r.result.status for r in records] == ["ok"] * 7  # the basis and step 1's six axes, once each
    assert ray_cluster.is_initialized()


@pytest.mark.ray
def test_a_worker_whose_gpu_a_trial_broke_is_replaced_and_the_retry_runs_in_a_new_process(tmp_path, ray_cluster):
    # After an illegal memory access every CUDA call in that process fails: a worker that took the
    # next trial would fail it at once, and every trial after it.
    import json
    import logging
    import time

    from expand.cli import main

    env, run = tmp_path / "env.jsonl", tmp_path / "run"
    exp = oracle_experiment(tmp_path, options={"broken_device_axes": {"depth": 1}, "env_file": str(env),
                                               "sleep": 0.2},
                            search={"max_steps": 1, "targets": [], "runner": "ray"}, retries={"failed": 1})
    tune_log, seen = logging.getLogger("ray.tune.execution.tune_controller"), []
    handler = logging.Handler()
    handler.emit = seen.append
    tune_log.addHandler(handler)
    try:
        assert main(["search", exp, "--out", str(run), "--quiet"]) == 0
    finally:
        tune_log.removeHandler(handler)
    assert not [r for r in seen if r.exc_info]  # no worker traceback: the trial's FAILED line says it
    records = RunDir(str(run)).read_trials().records
    depth = [r.result for r in records if r.trial.trial_id == "s01-depth"]
    assert [r.status for r in depth] == ["failed", "ok"]
    assert depth[0].device_broken.startswith("CUDA error: an illegal memory access")
    lines = [json.loads(x) for x in env.read_text().splitlines()]
    (broke,) = [x for x in lines if x["trial_id"] == "s01-depth" and x["attempt"] == 1]
    later = [x for x in lines if x["start"] >= broke["end"]]
    assert later and all(x["pid"] != broke["pid"] for x in later)  # its process ran nothing more
    deadline = time.time() + 30
    while _alive(broke["pid"]) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(broke["pid"])


@pytest.mark.ray
def test_a_trial_that_kills_its_worker_is_rerun_then_recorded_failed(tmp_path, ray_cluster):
    count = tmp_path / "calls.txt"
    count.write_text("")
    exp = load_experiment(oracle_experiment(tmp_path, options={
        "count_file": str(count), "crash_axes": {"depth": 1, "width": 9}}))
    runner = RayRunner(exp.trial.function, str(tmp_path / "ray"), cpus_per_trial=1, worker_crash_retries=1)
    d = exp.to_dict()
    trials = [TrialSpec("d", 1, "depth", ArchSpec(1, 8, 64, depth=2.0), 0, 0.003, 10, d),
              TrialSpec("w", 1, "width", ArchSpec(1, 8, 64, width=2.0), 0, 0.003, 10, d),
              TrialSpec("c", 1, "crop", ArchSpec(1, 8, 80), 0, 0.003, 10, d)]
    got = {}
    runner.run(trials, lambda t, r: got.__setitem__(t.trial_id, r))
    again = {}
    runner.run(trials[2:], lambda t, r: again.__setitem__(t.trial_id, r))  # the pool survived the crashes
    runner.close()
    calls = count.read_text().split()[::2]
    assert got["d"].status == "ok" and calls.count("d") == 2  # killed once, rerun on a restarted worker
    assert got["w"].status == "failed" and "worker crashed" in got["w"].error and calls.count("w") == 2
    assert got["c"].status == "ok" and again["c"].status == "ok"


def _alive(pid):
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.ray
def test_a_hung_trial_has_its_worker_killed_at_the_time_limit_and_the_pool_goes_on(tmp_path, ray_cluster):
    import json
    import logging
    import time

    env = tmp_path / "env.jsonl"
    options = {"hang_axes": {"depth": 1}, "hang_s": 60, "env_file": str(env)}
    exp = load_experiment(oracle_experiment(tmp_path, options=options))
    # the runner's limit is what a trial without its own gets; the hung trial carries 3 s (as the
    # executor gives each attempt under trial.time_limit_s: auto), and its own limit wins
    runner = RayRunner(exp.trial.function, str(tmp_path / "ray"), cpus_per_trial=1, time_limit_s=60,
                       trial_time_limits=True)
    d = exp.to_dict()
    hung = TrialSpec("h", 1, "depth", ArchSpec(1, 8, 64, depth=2.0), 0, 0.003, 10, d, time_limit_s=3)
    fine = TrialSpec("c", 1, "crop", ArchSpec(1, 8, 80), 0, 0.003, 10, d)
    got = {}
    tune_log, seen = logging.getLogger("ray.tune.execution.tune_controller"), []
    handler = logging.Handler()
    handler.emit = seen.append
    tune_log.addHandler(handler)
    try:
        runner.run([hung, fine], lambda t, r: got.__setitem__(t.trial_id, r))
        assert got["c"].status == "ok"  # its neighbour on the other worker was not disturbed
        assert got["h"].status == "timeout" and "Ray worker was killed" in got["h"].error
        assert 3 <= got["h"].seconds < 30 and got["h"].extra["time_limit_s"] == 3
        (line,) = [json.loads(x) for x in env.read_text().splitlines() if '"hung"' in x]
        deadline = time.time() + 30
        while _alive(line["pid"]) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(line["pid"])  # the process that hung is gone (and its GPU memory with it)
        again = {}
        retry = TrialSpec("h", 1, "depth", ArchSpec(1, 8, 64, depth=2.0), 0, 0.003, 10, d, attempt=2)
        runner.run([retry], lambda t, r: again.__setitem__(t.trial_id, r))
        assert again["h"].status == "ok"  # Tune restarted the worker; the next attempt ran
    finally:
        runner.close()
        tune_log.removeHandler(handler)
    # the search's own TIMEOUT line says it: no Tune traceback for the worker we killed, no worker names
    assert not [r for r in seen if "Trial task failed" in r.getMessage()]


@pytest.mark.ray
def test_kill_9_in_the_ray_start_up_window_then_resume_cleans_up_and_retrains_nothing(tmp_path):
    """Issue 14: the coordinator killed while Ray starts; its cluster lingers until the next resume."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from expand.search import ray_session

    exp = oracle_experiment(tmp_path, options={"sleep": 1.0}, search={"max_steps": 1, "runner": "ray"})
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "expand.cli", "search", exp, "--out", str(run), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    session_file = run / ray_session.FILE
    deadline = time.monotonic() + 600  # generous: it exits as soon as Ray is up
    while not session_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert session_file.exists(), "the search never recorded its Ray session"
    session = json.loads(session_file.read_text())["session_dir"]
    os.kill(proc.pid, signal.SIGKILL)  # no finally, no atexit: Ray's processes are orphaned
    proc.wait()
    assert not (run / "trials.jsonl").exists() or "s00-basis" not in (run / "trials.jsonl").read_text()
    left = ray_session.session_processes(session)
    assert left, "a kill -9 should leave Ray's processes behind (else this test tests nothing)"
    resumed = subprocess.run([sys.executable, "-m", "expand.cli", "resume", str(run), "--quiet"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "stopped" in resumed.stdout and "Ray session" in resumed.stdout
    assert "Token authentication" not in resumed.stderr  # --quiet: Ray's notice of its default is dropped
    assert not [p for p in left if ray_session.pid_alive(p)]  # the killed search's cluster is gone
    assert not session_file.exists()  # and the resumed one shut its own down
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    ids = [r["trial_id"] for r in records]
    assert len(ids) == len(set(ids)) == 7  # the basis and six candidates, each once
    assert json.loads((run / "state.json").read_text())["status"] == "finished"


@pytest.mark.ray
def test_sigterm_stops_the_search_and_its_ray_cluster(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from expand.search import ray_session

    exp = oracle_experiment(tmp_path, options={"sleep": 2.0}, search={"max_steps": 1, "runner": "ray"})
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "expand.cli", "search", exp, "--out", str(run), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600  # generous: it exits as soon as Ray is up
    while not (run / ray_session.FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    session = json.loads((run / ray_session.FILE).read_text())["session_dir"]
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(300) == 143, proc.stderr.read()
    assert "terminated" in proc.stderr.read()
    deadline = time.monotonic() + 120
    while ray_session.session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ray_session.session_processes(session)
    assert not (run / ray_session.FILE).exists()


def _ppid(pid):
    """The parent of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


@pytest.mark.ray
def test_a_search_whose_raylet_dies_stops_resumably_instead_of_waiting_forever(tmp_path, capsys):
    """The OOM killer takes the raylet: Tune waited for cluster resources for ever, and the search too."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from expand.cli import main
    from expand.search import ray_session

    # Three steps of 2 s trials, two at a time: finishing takes 18 s after the basis, well past the
    # ~11 s in which the loss is seen (whatever trials still finish on the dying node meanwhile).
    exp = oracle_experiment(tmp_path, options={"sleep": 2.0}, search={"max_steps": 3, "targets": [], "runner": "ray"})
    run = tmp_path / "run"
    # the GCS marks a dead node after period x threshold: 10 s, not Ray's ~15 + 5; not less, or a
    # loaded machine's late heartbeats would be taken for a death
    env = dict(os.environ, RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="10",
               RAY_health_check_initial_delay_ms="0")
    with open(tmp_path / "stderr.txt", "w") as err:  # a file: Tune's tracebacks could fill a pipe and block it
        proc = subprocess.Popen([sys.executable, "-m", "expand.cli", "search", exp, "--out", str(run), "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
    try:
        deadline = time.monotonic() + 600
        log = run / "trials.jsonl"
        while not (log.exists() and "s00-basis" in log.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            time.sleep(0.05)
        session = json.loads((run / ray_session.FILE).read_text())["session_dir"]
        # ray.init started the raylet as the search's child (a worker it is forking has its name too)
        (raylet,) = [p for p in ray_session.session_processes(session) if _ppid(p) == proc.pid
                     and b"raylet/raylet" in open(f"/proc/{p}/cmdline", "rb").read()]
        os.kill(raylet, signal.SIGKILL)  # as the out-of-memory killer does
        assert proc.wait(120) == 1
    finally:  # a search that hangs must not outlive its test (it would slow the rest of the suite)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
    statuses = [json.loads(line)["result"]["status"] for line in log.read_text().splitlines()]
    assert statuses[0] == "ok" and set(statuses) == {"ok"}  # nothing recorded failed for its node's death
    lines = (tmp_path / "stderr.txt").read_text().strip().splitlines()
    ours = [i for i, line in enumerate(lines) if line.startswith("x3d-expand: error: the Ray node this search")]
    capsys.readouterr()
    if ours:
        # ours is the last line: Tune's loop has ended before Ray shut down (else Ray's "core worker has
        # already been shutdown ... The process will exit" came after it, once in a CI run)
        last = lines[-1]
        assert ours == [len(lines) - 1] and "dmesg" in last
        assert "unfinished (running or queued) are not recorded" in last and f"x3d-expand resume {run}'" in last
        deadline = time.monotonic() + 60
        while ray_session.session_processes(session) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not ray_session.session_processes(session)  # what was left of the cluster is shut down
        assert main(["show", str(run), "--format", "json"]) == 0
        shown = json.loads(capsys.readouterr().out)  # stopped, the lock free: 'resume' may go on
        assert shown["status"] == "stopped" and "stopped: NodeLost: the Ray node" in shown["stop_reason"]
    else:
        # Ray's own core worker may see the raylet's socket close first and end the driver at once
        # (exit 1, from C++: no Python handler runs; once in 9 runs on 2026-12-07). Nothing is lost:
        # show says the log ended without a last word, and what resume does first stops the rest.
        assert main(["show", str(run), "--format", "json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["status"] == "stopped" and "without a last word: killed" in shown["stop_reason"]
        ray_session.clean_stale(str(run))
        deadline = time.monotonic() + 30  # a SIGKILL is delivered, not waited for
        while [p for p in ray_session.session_processes(session) if ray_session.pid_alive(p)] and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in ray_session.session_processes(session) if ray_session.pid_alive(p)]
    assert f"x3d-expand resume {run}'" in shown["stop_reason"]


GPU_SCRIPT = """
import json, sys
import ray
ray.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
from expand.config import load_experiment
from expand.search.runners import RayRunner
from expand.search.trial import TrialSpec
from expand.spec import ArchSpec
outs = {}
for exp_path, storage, gpus in zip(*[iter(sys.argv[1:])] * 3):  # one pool after another, one Ray session
    exp = load_experiment(exp_path)
    runner = RayRunner(exp.trial.function, storage, cpus_per_trial=1, gpus_per_trial=float(gpus))
    d = exp.to_dict()
    trials = [TrialSpec(f"t{i}", 1, "depth", ArchSpec(1, 8, 64, depth=1.0 + i / 10), 0, 0.003, 10, d)
              for i in range(8)]
    got = {}
    runner.run(trials, lambda t, r: got.__setitem__(t.trial_id, r.status))
    outs[gpus] = {"parallelism": runner.parallelism, "statuses": got}
    runner.close()
print(json.dumps(outs))  # Tune prints its own lines while it stops: ours goes last
"""

GPU_CASES = [("1.0", 2), ("0.5", 4)]


def _max_overlap(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


@pytest.fixture(scope="module")
def gpu_pools(tmp_path_factory):
    """Both cases in one subprocess: a Ray session told the node has 2 GPUs, one pool per case."""
    import json
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("gpus")
    args, env_files = [], {}
    for gpus, _ in GPU_CASES:
        env_files[gpus] = tmp / f"env-{gpus}.jsonl"
        exp = oracle_experiment(tmp, name=f"exp-{gpus}.yaml", options={"sleep": 1.5, "env_file": str(env_files[gpus])})
        args += [exp, str(tmp / f"ray-{gpus}"), gpus]
    proc = subprocess.run([sys.executable, "-c", GPU_SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), env_files


@pytest.mark.ray
@pytest.mark.parametrize("gpus, most", GPU_CASES)
def test_gpus_per_trial_bound_concurrency_and_set_cuda_visible_devices(gpu_pools, gpus, most):
    """Issue 21, without a GPU: Ray is told the node has 2 GPUs; it schedules and assigns them."""
    import json

    outs, env_files = gpu_pools
    out = outs[gpus]
    assert out["parallelism"] == most and set(out["statuses"].values()) == {"ok"}
    rows = [json.loads(line) for line in env_files[gpus].read_text().splitlines()]
    assert len(rows) == 8
    overlap = _max_overlap([(r["start"], r["end"]) for r in rows])
    assert 2 <= overlap <= most  # trials did run side by side, never more than the GPUs allow
    for r in rows:
        assert r["cuda_visible_devices"] in ("0", "1"), r  # each worker sees the GPU Ray gave it
    if gpus == "1.0":  # a whole GPU each: trials that overlap in time hold different GPUs
        for a in rows:
            for b in rows:
                if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                    assert a["cuda_visible_devices"] != b["cuda_visible_devices"]


@pytest.mark.ray
def test_a_trial_asking_for_more_gpus_than_the_cluster_has_is_exit_2_not_a_hang(tmp_path):
    import subprocess
    import sys

    exp = oracle_experiment(tmp_path, search={"max_steps": 1, "runner": "ray"},
                            resources={"gpus_per_trial": 4})
    proc = subprocess.run([sys.executable, "-m", "expand.cli", "search", exp, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "GPUs per trial" in proc.stderr and "cluster has 0" in proc.stderr


def test_a_runner_registered_in_the_table_is_used_by_name(tmp_path):
    """RUNNERS is where config validation and make_runner look: one entry adds a runner."""
    import expand
    from expand.errors import ConfigError
    from expand.search.runners import RUNNERS, RunnerKind

    seen = []

    class Recording(SerialRunner):
        def run(self, trials, on_result):
            seen.extend(t.trial_id for t in trials)
            super().run(trials, on_result)

    RUNNERS.register("recording", RunnerKind("recording", lambda function, options: Recording(function),
                                             "serial, remembering each trial"))
    try:
        run = expand.search(oracle_experiment(tmp_path, search={"max_steps": 1, "runner": "recording"}),
                            out=str(tmp_path / "run"), quiet=True)
        assert sorted(seen) == sorted(run.trials.trial_id) and len(seen) == 7
    finally:
        RUNNERS.unregister("recording")
    with pytest.raises(ConfigError, match="search.runner: unknown runner 'recording' \\(runners: ray, serial\\)"):
        load_experiment(oracle_experiment(tmp_path, "e2.yaml", search={"runner": "recording"}))


def test_a_lazy_runner_starts_once_when_a_trial_first_needs_it_and_closes_only_what_it_started():
    from expand.search.runners import LazyRunner, SerialRunner

    started = []

    def start():
        started.append(SerialRunner(lambda t: TrialResult(t.trial_id, "ok", top1=0.5)))
        return started[-1]

    idle = LazyRunner(start, trials_in_process=True)
    assert idle.trials_in_process and not idle.started
    idle.close()  # a replay that trained nothing: nothing was started, nothing to close
    assert started == []
    lazy = LazyRunner(start, trials_in_process=True)
    got = []
    spec = TrialSpec("t0", 0, "basis", ArchSpec(frames=1, stride=8, crop=64), 0, 0.002, 1, {})
    lazy.run([spec], lambda t, r: got.append(r.status))
    assert lazy.parallelism == 1 and len(started) == 1 and got == ["ok"]
    lazy.run([spec], lambda t, r: got.append(r.status))
    assert len(started) == 1 and got == ["ok", "ok"]  # one runner for the command's whole life


def test_resume_of_a_finished_run_replays_it_without_starting_a_runner(tmp_path, capsys, monkeypatch):
    import expand.api
    from expand.cli import main

    exp = oracle_experiment(tmp_path, search={"max_steps": 1, "targets": []})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    before = capsys.readouterr().out

    def no_runner(*args, **kwargs):
        raise AssertionError("a finished run needs no runner to resume")

    monkeypatch.setattr(expand.api, "runner_for", no_runner)
    assert main(["resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1] == before.split("\n", 1)[1]  # the same table


@pytest.mark.ray
def test_a_gpu_that_breaks_trial_after_trial_stops_the_search_resumably(tmp_path, ray_cluster, capsys):
    """On Ray a worker whose GPU context broke is replaced, and the next trial lands on the same GPU:
    a faulty one would fail the step's every candidate. Here every worker shares one "GPU" (no
    CUDA_VISIBLE_DEVICES on a CPU node), so depth's and width's broken contexts count on one."""
    from expand.cli import main

    run = tmp_path / "run"
    exp = oracle_experiment(tmp_path, options={"broken_device_axes": {"depth": 1, "width": 1}},
                            search={"max_steps": 1, "targets": [], "runner": "ray"}, retries={"failed": 1})
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "broke 2 trials' processes (s01-depth, s01-width: CUDA error: an illegal memory access" in err
    assert "likely a faulty GPU" in err and f"'x3d-expand resume {run}'" in err
    records = RunDir(str(run)).read_trials().records
    assert sorted(r.trial.trial_id for r in records if r.result.status == "failed") == ["s01-depth", "s01-width"]
    assert len(records) == 7  # the batch finished; the retries did not start
    assert main(["resume", str(run), "--quiet"]) == 0  # the GPU "replaced": the retries run and pass
    last = {r.trial.trial_id: r.result.status for r in RunDir(str(run)).read_trials().records}
    assert last["s01-depth"] == last["s01-width"] == "ok"


@pytest.mark.ray
def test_stop_on_ray_waits_for_the_running_trials_and_takes_back_the_queued_ones(tmp_path, ray_cluster, capsys):
    """Two workers, six candidates: asked to stop while step 1 runs, the two trials training finish and are
    recorded, the queued ones never start (the dispatcher gives them back), and resume runs each once."""
    import threading
    import time

    from expand.cli import main
    from tests.run.test_stop import _wait_for_records

    count = tmp_path / "calls.txt"
    exp = oracle_experiment(tmp_path, options={"sleep": 1.0, "count_file": str(count)},
                            search={"max_steps": 1, "targets": [], "runner": "ray"})
    run = tmp_path / "run"
    codes = []
    thread = threading.Thread(target=lambda: codes.append(main(["search", exp, "--out", str(run), "--quiet"])),
                              daemon=True)
    thread.start()
    _wait_for_records(run, 1)  # the basis; step 1's first two start now
    deadline = time.time() + 30
    while len(count.read_text().splitlines()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert main(["stop", str(run)]) == 0
    thread.join(120)
    assert codes == [1] and "stopped as asked by " in capsys.readouterr().err
    recorded = [r.trial.trial_id for r in RunDir(str(run)).read_trials().records]
    started = [line.split()[0] for line in count.read_text().splitlines()]
    assert sorted(recorded) == sorted(started) and 3 <= len(recorded) < 7  # what started finished; no more
    assert main(["resume", str(run), "--quiet"]) == 0
    calls = [line.split()[0] for line in count.read_text().splitlines()]
    assert len(calls) == 7 and len(set(calls)) == 7
