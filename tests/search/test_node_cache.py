"""Building every node's frame cache before the first trial (expand/search/node_cache.py).

The tasks a node runs are called here in this process, as two or three
"nodes" would run them, on a real encoded dataset; on the package's one-node Ray
cluster, a node that is gone when its tasks are sent; a search that builds the
caches of a three-node cluster is in test_multinode.py.
"""

import os

import pytest

from expand.config import load_experiment
from expand.data.synth import SynthConfig, write_dataset
from expand.errors import DataError
from expand.search import node_cache
from expand.search.node_cache import CacheJob, NodeCache, build_share, mark, plan_share, seen, unmark
from expand.search.nodes import DATA_ROOT_ENV


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("node-cache") / "data"
    write_dataset(SynthConfig(str(root), classes=2, videos_per_class=4, val_per_class=1, frames=8, size=32, seed=0))
    return str(root)


def _job(root, tmp_path, **data):
    path = tmp_path / "exp.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"name": "nc", "search_space": "x3d_paper",
                                    "data": {"root": root, "num_classes": 2, "cache_format": "jpeg", **data}}))
    return CacheJob.of(load_experiment(str(path)))


def _entries(cache_dir):
    return sorted(f for f in os.listdir(cache_dir) if f.endswith(".jpgs"))


def test_no_job_without_a_cache_or_a_dataset(dataset, tmp_path):
    assert _job(dataset, tmp_path, cache="off") is None
    job = _job(dataset, tmp_path)
    assert job is not None and job.splits == ("train", "val")
    assert _job(dataset, tmp_path, minival=2).splits == ("train", "val", "minival")


def test_two_nodes_sharing_a_folder_split_the_videos_and_together_build_every_entry(dataset, tmp_path):
    job = _job(dataset, tmp_path, cache=str(tmp_path / "shared-cache"))
    cache, paths = job.here()
    assert len(paths) == 10  # 8 train + 2 val videos, each once
    for node in ("a", "b"):
        assert mark(job, node)["cache_dir"] == cache.directory
    assert seen(job) == ["a", "b"]
    plans = [plan_share(job, i, 2, workers=1) for i in range(2)]
    assert [p["share"] for p in plans] == [5, 5]
    # the estimate builds a sample of each share (kept): what is left is the share less the sample
    assert all(p["todo"] == p["share"] - p["sampled"] for p in plans) and all(p["free_bytes"] > 0 for p in plans)
    got = [build_share(job, i, 2, workers=1) for i in range(2)]
    assert sum(g["built"] for g in got) == sum(p["todo"] for p in plans)
    assert len(_entries(cache.directory)) == 10 and all(cache.cached(p) for p in paths)
    shares = [set(paths[i::2]) for i in range(2)]
    assert shares[0].isdisjoint(shares[1]) and shares[0] | shares[1] == set(paths)
    for node in ("a", "b"):
        unmark(job, node)
    assert seen(job) == []
    assert build_share(job, 0, 1, workers=2)["built"] == 0  # nothing left for a node alone


def test_a_node_with_the_dataset_elsewhere_builds_its_own_folder(dataset, tmp_path, monkeypatch):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns(".x3d-*"))
    job = _job(dataset, tmp_path)  # cache: auto, under each node's data root
    monkeypatch.setenv(DATA_ROOT_ENV, copy)
    got = mark(job, "c")
    assert got["root"] == copy and got["cache_dir"] == os.path.join(copy, ".x3d-frame-cache")
    assert build_share(job, 0, 1, workers=1)["built"] == 10
    assert len(_entries(got["cache_dir"])) == 10
    assert not os.path.exists(os.path.join(dataset, ".x3d-frame-cache", node_cache.MARKER + "c"))


def test_a_node_whose_data_root_is_missing_makes_no_folder_there(dataset, tmp_path, monkeypatch):
    job = _job(dataset, tmp_path)
    missing = str(tmp_path / "not-mounted")
    monkeypatch.setenv(DATA_ROOT_ENV, missing)
    with pytest.raises(DataError, match="not-mounted: not a folder here"):
        mark(job, "d")
    unmark(job, "d")  # the driver unmarks every node at the end, this one too
    assert not os.path.exists(missing)


def test_groups_pair_only_nodes_that_see_each_other_at_the_same_root():
    marks = {n: {"root": "/data"} for n in "abcd"}
    marks["d"] = {"root": "/elsewhere"}
    # a and b share a folder; c sees a stale marker of a (an earlier cache folder) that a does not see
    # back; d sees b's marker but reads its dataset at another root
    seen_by = {"a": ["a", "b"], "b": ["a", "b", "d"], "c": ["a", "c"], "d": ["b", "d"]}
    groups = node_cache._groups(marks, seen_by)
    assert groups == {"a": ["a", "b"], "b": ["a", "b"], "c": ["c"], "d": ["d"]}
    # a node that cannot see even its own marker works alone
    assert node_cache._groups({"e": {"root": "/data"}}, {"e": []}) == {"e": ["e"]}


def test_a_folder_whose_disk_is_too_small_is_refused_for_all_its_nodes_and_named():
    gb = 1e9
    reports = [NodeCache("a" * 8, "h1", "/shared/c", bytes=3 * gb, free_bytes=int(7 * gb)),
               NodeCache("b" * 8, "h2", "/shared/c", bytes=4 * gb, free_bytes=int(7 * gb)),
               NodeCache("c" * 8, "h3", "/local/c", bytes=4 * gb, free_bytes=int(4.5 * gb))]
    groups = {"a" * 8: ["a" * 8, "b" * 8], "b" * 8: ["a" * 8, "b" * 8], "c" * 8: ["c" * 8]}
    messages = node_cache._refuse_full_disks(reports, groups)
    # the shared folder needs 7 GB (both shares) and has 7: under the 10 % headroom; the local one fits
    assert len(messages) == 1 and "/shared/c" in messages[0] and "~7.00 GB more" in messages[0]
    assert "h1" in messages[0] and "h2" in messages[0]
    assert [bool(r.problem) for r in reports] == [True, True, False]


def test_the_summary_counts_folders_and_names_each_node_with_a_problem():
    reports = [NodeCache("a" * 8, "h1", "/d/c", built=5), NodeCache("b" * 8, "h2", "/d/c", built=5),
               NodeCache("c" * 8, "h3", "/e/c", problem="its build stopped: ActorDiedError")]
    line = node_cache.summary(reports)
    assert line.startswith("frame caches ready on 2 of 3 node(s) (2 folder(s), 10 video(s) decoded now)")
    assert "h3 (node cccccccc): its build stopped" in line


def test_the_summary_counts_each_unreadable_video_once_however_the_nodes_share_folders():
    reports = [NodeCache("a" * 8, "h1", "/d/c", skipped=1), NodeCache("b" * 8, "h2", "/d/c", skipped=2),
               NodeCache("c" * 8, "h3", "/e/c", skipped=3)]  # a and b split the list; c holds all of it
    line = node_cache.summary(reports, "/data")
    assert "; 3 listed video(s) unreadable or missing, skipped by every trial ('x3d-expand data check /data'" in line
    assert "unreadable" not in node_cache.summary([NodeCache("a" * 8, "h1", "/d/c", built=2)])


def test_a_complete_cache_still_says_how_many_listed_videos_its_trials_will_skip(dataset, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    broken = sorted((root / "videos").rglob("*.mp4"))[0]
    broken.write_bytes(b"not a video")
    job = _job(str(root), tmp_path, cache=str(tmp_path / "cache"))
    first = node_cache.build_here(job, progress=False)
    assert first.startswith("frame cache: ") and "video(s) decoded" in first
    assert first.endswith(f"; 1 listed video(s) unreadable or missing, skipped by every trial "
                          f"('x3d-expand data check {root}' says why)")
    again = node_cache.build_here(job, progress=False)  # nothing to decode: the line says only what is skipped
    assert again == (f"frame cache: complete at {tmp_path / 'cache'}; 1 listed video(s) unreadable or missing, "
                     f"skipped by every trial ('x3d-expand data check {root}' says why)")
    broken.unlink()
    shutil.copy(sorted((root / "videos").rglob("*.mp4"))[0], broken)  # mended: a complete cache is quiet
    node_cache.build_here(job, progress=False)
    assert node_cache.build_here(job, progress=False) is None


def _oracle_with_data(tmp_path, root, **data):
    from tests.search.helpers import oracle_experiment

    return oracle_experiment(tmp_path, search={"max_steps": 1},
                             data={"root": root, "num_classes": 2, "cache": str(tmp_path / "cache"),
                                   "cache_format": "jpeg", **data})


def test_a_serial_search_builds_the_cache_with_every_core_before_its_first_trial(dataset, tmp_path, capsys):
    import expand

    exp = _oracle_with_data(tmp_path, dataset)
    expand.search(exp, out=str(tmp_path / "run"))
    out = capsys.readouterr().out.splitlines()
    cache_line = next(i for i, line in enumerate(out) if "frame cache: 10 video(s) decoded" in line)
    first_trial = next(i for i, line in enumerate(out) if line.lstrip().startswith("start "))
    assert cache_line < first_trial and f"on {os.cpu_count()} core(s)" in out[cache_line]
    assert len(_entries(tmp_path / "cache")) == 10
    expand.resume(str(tmp_path / "run"))  # complete already: nothing decoded, nothing said
    assert not [line for line in capsys.readouterr().out.splitlines() if "frame cache" in line]


def test_a_search_whose_disk_cannot_hold_the_cache_stops_before_any_trial(dataset, tmp_path, monkeypatch):
    import expand
    from expand.data import cache as cache_module

    monkeypatch.setattr(cache_module, "disk_free", lambda directory: 1000)
    exp = _oracle_with_data(tmp_path, dataset)
    with pytest.raises(DataError, match=r"cache needs ~0\.\d+ GB more \(estimated from 6 videos\) but only 0\.00 GB"):
        expand.search(exp, out=str(tmp_path / "run"), quiet=True)
    assert not os.path.exists(tmp_path / "run" / "trials.jsonl")  # nothing trained
    assert len(_entries(tmp_path / "cache")) == 6  # the estimate's sample is kept for the next try
    monkeypatch.undo()
    expand.resume(str(tmp_path / "run"), quiet=True)  # room now: the rest is built and the search runs
    assert len(_entries(tmp_path / "cache")) == 10


def test_a_node_gone_before_its_task_is_named_and_the_others_build_everything(dataset, tmp_path, monkeypatch,
                                                                               ray_cluster):
    """A node Ray lists but cannot run a task on (it died after trial_nodes() looked): its reports
    carry the error, the live node builds the whole cache, and nothing waits on the dead one."""
    import time

    from expand.search import nodes as node_checks

    live = node_checks.trial_nodes()
    dead = {"NodeID": "ab" * 28, "NodeManagerAddress": "10.0.0.9", "Resources": {"CPU": 8.0}}
    monkeypatch.setattr(node_cache, "trial_nodes", lambda: live + [dead])
    job = _job(dataset, tmp_path, cache=str(tmp_path / "cache"))
    said = []
    start = time.monotonic()
    reports = node_cache.build_on_nodes(job, workers=1, say=said.append, progress=False)
    assert time.monotonic() - start < 60  # a failed task, not a hang
    by_id = {r.node_id: r for r in reports}
    assert by_id[dead["NodeID"]].problem.startswith("cannot open its cache folder: ")
    assert not by_id[live[0]["NodeID"]].problem and by_id[live[0]["NodeID"]].built == 10
    assert len(_entries(tmp_path / "cache")) == 10 and len(said) == 1  # one line: the live node's
    assert node_cache.summary(reports).startswith("frame caches ready on 1 of 2 node(s)")
    assert not [f for f in os.listdir(tmp_path / "cache") if f.startswith(node_cache.MARKER)]  # markers removed

    # and at the build itself: the dead node's share is its problem, the live node's share is built
    reports = {n["NodeID"]: NodeCache(n["NodeID"], todo=5) for n in live + [dead]}
    job2 = _job(dataset, tmp_path, cache=str(tmp_path / "cache2"))
    node_cache._build(live + [dead], lambda n: (job2, 0 if n is dead else 1, 2, 1), reports, progress=False)
    assert reports[dead["NodeID"]].problem.startswith("its build stopped: ")
    assert "its trials build what is missing" in reports[dead["NodeID"]].problem
    assert reports[live[0]["NodeID"]].built == 5 and len(_entries(tmp_path / "cache2")) == 5


def test_a_cache_folder_a_node_cannot_make_is_refused_before_any_trial_in_the_nodes_words(dataset, tmp_path,
                                                                                           ray_cluster):
    # a dataset on a read-only mount with data.cache: auto: the search went on to fail every trial
    # ("make it writable, then resume"), after a note that quoted Ray's coloured task wrapper.
    # /proc takes no folder, even from root (a read-only mount cannot be made in a test)
    job = _job(dataset, tmp_path, cache="/proc/x3d-expand-test/cache")
    with pytest.raises(DataError) as caught:
        node_cache.build_on_nodes(job, workers=1, say=lambda line: None, progress=False)
    message = str(caught.value)
    assert message.startswith("data.cache: cannot create the cache folder /proc/x3d-expand-test/cache: ")
    assert "--set data.cache=" in message and "(node " in message and "ray::" not in message


def test_a_serial_search_in_a_process_with_ray_up_builds_here_not_on_the_ray_nodes(dataset, tmp_path, capsys,
                                                                                   ray_cluster):
    """Its trials run in this process: the cache they read is this machine's (a notebook's Ray
    cluster, up for something else, is not where they run)."""
    import expand

    assert ray_cluster.is_initialized()
    expand.search(_oracle_with_data(tmp_path, dataset), out=str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "frame cache: 10 video(s) decoded" in out and f"on {os.cpu_count()} core(s)" in out
    assert "frame caches ready on" not in out
