"""Runners: the serial one in process, the Ray one on a real local cluster (one per session)."""

import pytest

from expand.config import load_experiment
from expand.search.coordinator import Coordinator
from expand.search.runners import RayRunner, SerialRunner
from expand.search.state import RunDir
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


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


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
