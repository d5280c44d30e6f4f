"""The worker side's snapshot mirror, against a real dispatcher actor: a remote trial's snapshot
reaches its folder on the head as it is written, is removed there when the trial removes it, and
its next attempt starts from the head's copy."""

import os

import pytest

from expand import snapshot
from expand.search.dispatcher import dispatcher_class
from expand.search.worker import _snapshot_mirror, _start_from_mirrored_snapshot


@pytest.mark.ray
def test_a_remote_trials_snapshot_is_mirrored_to_its_run_folder_and_handed_to_its_next_attempt(
        tmp_path, ray_cluster):
    ray = ray_cluster
    dispatcher = dispatcher_class().remote(1)
    trial_dir = tmp_path / "run" / "trials" / "t0"
    scratch, later_scratch = tmp_path / "scratch-a", tmp_path / "scratch-b"
    scratch.mkdir(), later_scratch.mkdir()
    try:
        ray.get(dispatcher.put.remote([{"trial_id": "t0", "out_dir": str(trial_dir)}]))
        assert ray.get(dispatcher.take.remote(0, "token-0"))[0] == "run"
        keep = _snapshot_mirror(dispatcher, 0)
        written = scratch / snapshot.SNAPSHOT_FILE
        written.write_bytes(b"step 40")
        keep(str(written))
        assert (trial_dir / snapshot.SNAPSHOT_FILE).read_bytes() == b"step 40"

        _start_from_mirrored_snapshot(dispatcher, 0, str(later_scratch))  # the next attempt, any node
        assert (later_scratch / snapshot.SNAPSHOT_FILE).read_bytes() == b"step 40"

        written.unlink()  # the trial finished and removed its snapshot: so does the head
        keep(str(written))
        assert not (trial_dir / snapshot.SNAPSHOT_FILE).exists()

        ray.get(dispatcher.done.remote(0))  # a worker holding no trial (taken at its time limit) mirrors nothing
        written.write_bytes(b"stale")
        keep(str(written))
        assert not os.path.exists(trial_dir / snapshot.SNAPSHOT_FILE)
        empty = tmp_path / "scratch-c"
        empty.mkdir()
        _start_from_mirrored_snapshot(dispatcher, 0, str(empty))
        assert list(empty.iterdir()) == []
    finally:
        ray.kill(dispatcher)
