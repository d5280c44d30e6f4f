"""WorkerPool on a real local Ray cluster: trials in, one event per trial out, then a clean stop."""

import pytest

from expand.config import load_experiment
from expand.search.pool import WorkerPool
from expand.search.trial import TrialSpec
from tests.search.helpers import oracle_experiment


@pytest.mark.ray
def test_a_pool_runs_submitted_trials_on_its_workers_and_stops(tmp_path, ray_cluster):
    exp = load_experiment(oracle_experiment(tmp_path))
    basis = exp.search_space.basis
    trials = [TrialSpec(f"t{i}", 1, "fast", basis.replace(frames=i + 1), 0, 0.001, 10, exp.to_dict())
              for i in range(3)]
    pool = WorkerPool(exp.trial.function, str(tmp_path / "ray"), {"cpu": 1, "gpu": 0}, size=2)
    assert not pool.running
    pool.start()
    try:
        assert pool.running
        pool.submit(trials)
        events, progress = [], []
        while len(events) < len(trials):  # a running trial's reports come through Tune before its result
            what, item = pool.next_event()
            (events if what == "result" else progress).append((what, item))
        assert {what for what, _ in progress} == {"progress"}
        assert sorted({item["trial_id"] for _, item in progress}) == ["t0", "t1", "t2"]
        assert sorted(item["epoch"] for _, item in progress) == [0, 0, 0, 1, 1, 1]  # start, then its one epoch
        assert sorted(item["trial_id"] for _, item in events) == ["t0", "t1", "t2"]
        assert all(item["status"] == "ok" for _, item in events)
        # the oracle scores more frames higher: the results belong to the trials they name
        top1 = {item["trial_id"]: item["top1"] for _, item in events}
        assert top1["t0"] < top1["t1"] < top1["t2"]
    finally:
        pool.stop(wait=60)
    assert not pool.running
