"""The worker side of the pool: one long-lived Ray Tune trial that runs search trials until told to stop.

Apart from ``pool.py`` (the driver side) because it runs in another process,
often on another node, and needs none of the driver's tables. Tune names each
worker after the function (``_ray_worker_…``: ``tune_output.py`` matches that
name in Tune's lines), so the function keeps its name wherever it lives.
"""

from __future__ import annotations

import json
import os
from typing import Any

from expand import snapshot
from expand.errors import DeviceBroken
from expand.search import live
from expand.search.scratch import make_scratch, read_files, remove_scratch, sweep_dead_scratch
from expand.search.trial import TrialSpec, call_safely, failed_result, load_trial_function

RESULT_KEY = "trial_result_json"  # one string: Tune flattens nested result dicts
PROGRESS_KEY = "trial_progress_json"  # a running trial's live.report(), for the display


def _ray_worker(config: dict[str, Any]) -> None:
    """One Tune trial = one worker for the whole search: take a trial, run it, report, repeat.

    The worker process imports torch and the package once. It reports each
    result before telling the dispatcher it is done, so a crash in between
    reruns a finished trial (the driver drops the duplicate) rather than
    losing its result. Off the driver's node a trial writes into a scratch
    folder whose files go back through the dispatcher (see the module doc).
    """
    import dataclasses
    import uuid

    import ray
    from ray import tune

    dispatcher = ray.get_actor(config["dispatcher"])
    worker, token = config["worker"], uuid.uuid4().hex
    me = ray.get_runtime_context().current_actor  # for the dispatcher to kill at a trial's time limit
    func = load_trial_function(config["function"])
    node = ray.get_runtime_context().get_node_id()
    remote = node != config.get("driver_node", node)
    while True:
        what, item = ray.get(dispatcher.take.remote(worker, token, me))
        if what == "stop":
            return
        if what == "crashed":
            spec, n = item
            result = failed_result(TrialSpec.from_dict(spec), f"worker crashed running it ({n} time(s))")
        else:
            trial = TrialSpec.from_dict(item)
            if remote:
                sweep_dead_scratch()  # what workers killed mid-trial (a time limit, a crash) on this node left
            scratch = make_scratch(trial.trial_id) if remote and trial.out_dir else ""
            if scratch:
                trial = dataclasses.replace(trial, out_dir=scratch)
                _start_from_mirrored_snapshot(dispatcher, worker, scratch)
            with live.reporting(lambda update: tune.report({PROGRESS_KEY: json.dumps(update, default=str)})), \
                    snapshot.kept_by(_snapshot_mirror(dispatcher, worker) if scratch else None):
                result = call_safely(func, trial)
            result.extra["node"] = node
            if scratch:
                files = read_files(scratch)
                files.pop(snapshot.SNAPSHOT_FILE, None)  # on the head already, as it was written
                result.extra["wrote_in"] = scratch
                result.extra["files"] = sorted(files)
                if files:
                    ray.get(dispatcher.deliver.remote(trial.trial_id, files))
                remove_scratch(scratch)
            if not result.device_broken:  # (any CUDA call would raise it again)
                _free_accelerator_memory()
        tune.report({RESULT_KEY: json.dumps(result.to_dict())})
        ray.get(dispatcher.done.remote(worker))
        if result.device_broken:  # recorded failed; Tune replaces this process, and retries run elsewhere
            raise DeviceBroken(f"{result.device_broken} (in {result.trial_id}): this worker's GPU context "
                               "cannot be used again")


def _start_from_mirrored_snapshot(dispatcher: Any, worker: int, scratch: str) -> None:
    """Put the head's copy of the trial's snapshot (an earlier attempt's, from any node) in its scratch."""
    import ray

    data = ray.get(dispatcher.mirrored.remote(worker, snapshot.SNAPSHOT_FILE))
    if data is not None:
        with open(os.path.join(scratch, snapshot.SNAPSHOT_FILE), "wb") as fh:
            fh.write(data)


def _snapshot_mirror(dispatcher: Any, worker: int) -> snapshot.Keeper:
    """Send each snapshot a remote trial writes (or removes) to the head before training goes on.

    Waiting for the copy costs a transfer per ``trial.snapshot_every_s`` (tens of MB at most);
    not waiting could leave the head without the snapshot the worker died just after.
    """
    import ray

    def keep(path: str) -> None:
        data = None
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                data = fh.read()
        ray.get(dispatcher.mirror.remote(worker, snapshot.SNAPSHOT_FILE, data))

    return keep


def _free_accelerator_memory() -> None:
    """The next trial on this worker starts with the GPU memory the last one freed."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
