"""A search on a multi-node Ray cluster (three one-CPU nodes on this machine, no shared scratch).

The cluster runs in a subprocess (tests/search/multinode.py) once for the module;
the tests read what it did from the run folders on the "head" (this machine's
tmp folder) and from each node's own TMPDIR. One search carries every multi-node
check (spread, shipped files, a node lost mid-step): it is the module's largest cost.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from expand.data.synth import SynthConfig, write_dataset
from tests.search.helpers import TINY

HERE = os.path.dirname(os.path.abspath(__file__))


def _experiment(path, options, data=None, runner="ray"):
    exp = {"name": os.path.basename(path)[:-5], "search_space": TINY,
           "data": {"num_classes": 10 if data is None else 2, **(data or {})},
           "trial": {"function": "expand.search.oracle:run_oracle", "options": options},
           "search": {"max_steps": 1, "runner": runner, "seed": 0}, "resources": {"cpus_per_trial": 1}}
    with open(path, "w") as fh:
        yaml.safe_dump(exp, fh)
    return str(path)


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("multinode")
    write_dataset(SynthConfig(str(work / "data"), classes=2, videos_per_class=2, val_per_class=1, frames=8,
                              size=32, seed=0))
    data_exp = _experiment(work / "with-data.yaml", {}, {"root": str(work / "data")})
    remove = _experiment(work / "remove.yaml", {"snapshot_steps": 6, "step_s": 0.5, "save_weights": True,
                                                "count_file": str(work / "calls.txt"),
                                                "hold_file": str(work / "go")})
    plain = _experiment(work / "plain.yaml", {})
    proc = subprocess.run([sys.executable, os.path.join(HERE, "multinode.py"), str(work), data_exp, remove, plain],
                          capture_output=True, text=True, timeout=540, cwd=work,  # not the checkout
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, json.loads(line[len("RESULT "):])


def _records(run):
    with open(os.path.join(run, "trials.jsonl")) as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.ray
def test_a_node_that_cannot_read_the_data_is_named_before_any_trial(cluster_runs):
    work, report = cluster_runs
    node1 = next(n for n, name in report["nodes"].items() if name == "node1")
    err = report["data_error"]
    assert "1 of 3 Ray node(s) cannot run trials" in err and node1[:8] in err and "not-mounted-here" in err
    assert not os.path.exists(work / "run-data" / "trials.jsonl")  # nothing trained


@pytest.mark.ray
def test_the_search_builds_every_nodes_frame_cache_before_its_first_trial_sharing_a_shared_folder(cluster_runs):
    from expand.config import load_experiment
    from expand.search.node_cache import MARKER, CacheJob

    work, report = cluster_runs
    name = {n: label for n, label in report["nodes"].items()}
    records = _records(work / "run-data-2")
    assert len(records) == 7 and all(r["result"]["status"] == "ok" for r in records)
    job = CacheJob.of(load_experiment(str(work / "with-data.yaml")))
    _, paths = job.here()  # this process reads the data at the experiment's root, as node0 and node2 do
    for root in ("data", "not-mounted-here"):  # node1 reads its copy (X3D_EXPAND_DATA_ROOT)
        folder = work / root / ".x3d-frame-cache"
        files = os.listdir(folder)
        assert len([f for f in files if f.endswith(".mp4")]) == len(paths) == 6
        assert not [f for f in files if f.startswith(MARKER)]  # the markers are gone
    lines = report["cache_lines"]
    assert any("frame caches ready on 3 of 3 node(s) (2 folder(s), 12 video(s) decoded now)" in line
               for line in lines), lines
    first_trial = next(i for i, line in enumerate(lines) if line.lstrip().startswith("start "))
    assert all(i < first_trial for i, line in enumerate(lines) if "frame caches ready" in line)
    shared = [line for line in lines if "shared with 1 other node(s)" in line]
    assert len(shared) == 2 and all(str(work / "data") in line for line in shared)
    # data cache --address afterwards: nothing left to build; node0 and node2 split the videos
    assert report["cache_rc"] == 0
    by = {name[n["node_id"]]: n for n in report["cache_json"]["nodes"]}
    assert set(by) == {"node0", "node1", "node2"}
    assert [by[n]["todo"] for n in sorted(by)] == [0, 0, 0] and not any(by[n]["problem"] for n in by)
    assert by["node0"]["shared_with"] == [by["node2"]["node_id"]] and by["node1"]["shared_with"] == []
    assert by["node0"]["share"] + by["node2"]["share"] == by["node1"]["share"] == 6
    assert by["node1"]["cache_dir"] == str(work / "not-mounted-here" / ".x3d-frame-cache")


@pytest.mark.ray
def test_trials_run_on_several_nodes_and_their_files_reach_the_run_folder(cluster_runs):
    work, report = cluster_runs
    run = work / "run-remove"
    records = _records(run)
    where = {r["trial_id"]: r["result"]["extra"] for r in records}
    assert len(records) == 7 and all(r["result"]["status"] == "ok" for r in records)
    used = {report["nodes"][e["node"]] for e in where.values()}
    assert len(used) >= 2 and report["head"] not in {e["node"] for e in where.values()}
    for tid, e in where.items():  # written in the node's own scratch folder, then shipped to the head
        assert e["wrote_in"].startswith(str(work / f"{report['nodes'][e['node']]}-tmp"))
        assert e["files"] == ["model.pt"] and not os.path.exists(e["wrote_in"])
    state = json.loads((run / "state.json").read_text())
    path_ids = {p["trial_id"] for p in state["path"]}
    kept = {t for t in os.listdir(run / "trials") if os.path.isfile(run / "trials" / t / "model.pt")}
    assert kept == path_ids  # trial.checkpoint "path": the losers' weights were deleted on the head


@pytest.mark.ray
def test_the_run_is_read_shown_and_exported_from_the_head_alone(cluster_runs):
    import torch

    import expand
    from expand.cli import main

    work, _ = cluster_runs
    run = expand.load_run(str(work / "run-remove"))
    model = run.model()  # weights written on a worker node, loaded from the head's run folder
    last = run.path.iloc[-1]
    torch.manual_seed(int(run.trials.set_index("trial_id").loc[last.trial_id, "seed"]))
    fresh = expand.build_x3d(model.spec)  # the oracle saves a seeded fresh network: the same tensors
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    assert main(["show", str(work / "run-remove")]) == 0
    assert main(["export", str(work / "run-remove"), "--step", "1"]) == 0
    assert os.listdir(work / "run-remove" / "export")


@pytest.mark.ray
def test_a_node_lost_mid_step_reruns_its_trial_elsewhere_from_its_snapshot_and_the_search_ends_as_undisturbed(
        cluster_runs):
    work, report = cluster_runs
    assert report["remove_finished"] and not report["remove_errors"]
    assert report["records_when_removed"] < 7  # the node went in the middle of step 1
    records = _records(work / "run-remove")
    ids = [r["trial_id"] for r in records]
    assert len(ids) == len(set(ids)) == 7  # nothing recorded twice
    assert all(r["result"]["status"] == "ok" for r in records)
    after = records[report["records_when_removed"]:]  # what finished once the node was gone ran elsewhere
    assert after and report["removed"] not in {r["result"]["extra"]["node"] for r in after}
    calls = (work / "calls.txt").read_text().split()[::2]
    rerun = [t for t in set(calls) if calls.count(t) > 1]
    assert rerun  # the trial the lost node was running started again on another node
    by_id = {r["trial_id"]: r["result"]["extra"] for r in records}
    # ... from the snapshot its lost attempt had mirrored to the head, not from step 0
    assert set(rerun) <= set(report["snapshots_when_removed"])
    assert all(by_id[t]["resumed_from_step"] >= 1 for t in rerun)
    assert all(e["resumed_from_step"] == 0 for t, e in by_id.items() if t not in rerun)
    assert all(e["files"] == ["model.pt"] for e in by_id.values())  # the snapshot travelled on its own
    left = [t for t in os.listdir(work / "run-remove" / "trials")
            if os.path.exists(work / "run-remove" / "trials" / t / "snapshot.pt")]
    assert not left  # each removed on the head when its trial finished
    # the same search on one machine, run serially, undisturbed
    import expand

    reference = _experiment(work / "reference.yaml", {}, runner="serial")
    expand.search(reference, out=str(work / "run-reference"), quiet=True)
    undisturbed = json.loads((work / "run-reference" / "state.json").read_text())
    disturbed = json.loads((work / "run-remove" / "state.json").read_text())
    assert disturbed["status"] == "finished"
    assert [p["spec"] for p in disturbed["path"]] == [p["spec"] for p in undisturbed["path"]]


@pytest.mark.ray
def test_with_ship_package_the_nodes_import_the_package_ray_uploaded(cluster_runs):
    import expand

    _, report = cluster_runs
    shipped = report["shipped_package"]
    assert len(shipped) == 2 and not report["shipped_problems"]  # the two nodes left, both fine
    checkout = os.path.dirname(expand.__file__)
    assert all(path and path != checkout and "runtime_resources" in path for path in shipped.values())


@pytest.mark.ray
def test_a_node_lost_while_its_pinned_task_runs_is_that_nodes_error_and_the_others_return(cluster_runs):
    """The frame caches are built before the first trial by one pinned task per node (on_each):
    a node that dies mid-build must not hang the search or take the other nodes' builds with it."""
    _, report = cluster_runs
    lost, got = report["hold_node"], report["hold_got"]
    assert report["hold_finished"]
    assert len(got) == 3 and lost in report["hold_started"] and len(report["hold_started"]) == 3
    assert got[lost].startswith("error ")
    assert all(v == "ok" for k, v in got.items() if k != lost)


@pytest.mark.ray
def test_a_search_without_address_starts_its_own_cluster_while_another_runs_here(cluster_runs):
    """Ray's default address ("auto") joins the last cluster started on the machine: a search
    meant to be local ran its trials on someone else's cluster. Each trial records its node."""
    work, report = cluster_runs
    assert report["own_rc"] == 0, report["own_stderr"]
    records = _records(work / "run-own")
    nodes = {r["result"]["extra"]["node"] for r in records}
    assert len(records) == 7 and all(r["result"]["status"] == "ok" for r in records)
    assert len(nodes) == 1 and not nodes & {*report["nodes"], report["head"]}
