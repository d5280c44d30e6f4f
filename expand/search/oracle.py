"""An analytic trial function: accuracy as a known function of the six factors.

It lets the coordinator, runners, resume and baselines be tested in seconds,
with a path that can be predicted. Accuracy saturates in the "information" a
network gets: each factor contributes ``weight x log2(factor / basis)`` with
diminishing returns, and ``1 - chance`` of the error is removed by it.

Options (experiment ``trial.options``):
    weights: {frames, rate, crop, width, bottleneck, depth}  contribution per doubling
    chance: accuracy of the basis-level model (default 0.1)
    noise: std of Gaussian noise added to top-1 (seeded by trial seed and spec)
    sleep: seconds each trial sleeps (for overhead benchmarks)
    fail_axes: {axis: n}  the first n attempts of each trial on that axis raise
    diverge_axes: [axis, ...]  trials on these axes report 'diverged'
    count_file: a path; each call appends one line (the trial id) to it
    crash_axes: {axis: n}  the first n calls of each trial attempt on that axis kill the
        worker process (os._exit), as a segfault or the OOM killer would; needs count_file
    basis: the basis factors the log-ratios are taken against (default: search space's)
    oom_axes: {axis: n}  the first n attempts of each trial on that axis report 'oom'
    hang_axes: {axis: n}  the first n attempts of each trial on that axis hang (sleep ``hang_s``, default
        an hour, as a deadlocked loader would), after appending {trial_id, attempt, pid, hung} to env_file
    env_file: a path; each trial appends a JSON line: attempt, pid, start/end time, CUDA_VISIBLE_DEVICES
    minival_gap: report a validation top-1 this much below top-1, as a trial with a minival does
    videos: n  report per-video results on n simulated validation videos (and top-1 = their mean):
        each video has a fixed difficulty shared by every trial (so trials are paired, as on a
        real validation set), jittered per trial by ``video_jitter`` (default 0.15); a model of
        accuracy a gets the round(a x n) easiest right. Same spec and seed: the same videos.
    save_weights: true  write the trial's weights file as the trainer does (a freshly initialised
        network of the spec, seeded by the trial seed; no training): tests of where weights go
    snapshot_steps: n  "train" n steps of ``step_s`` seconds (default 0.5), saving a snapshot
        (expand/snapshot.py) after each but the last and resuming from one an earlier attempt
        left, as the trainer does; the result's extra.resumed_from_step says where it started:
        tests of where snapshots go
    broken_device_axes: {axis: n}  the first n attempts of each trial on that axis raise torch's
        "CUDA error: an illegal memory access was encountered", after which a real process could
        not use its GPU again
    disk_full_file, disk_full_axes: while the file exists, trials on those axes raise
        OSError(ENOSPC) naming their weights file, as a trainer finding the disk full would
    hold_file: a path; with snapshot_steps, a trial of step 1 or later waits after its attempt's
        first snapshot until this file exists: the moment a test acts on (a node removed) while
        every running trial is part-way, its snapshot saved
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import time
from typing import Any, Optional

from expand.search import live
from expand.search.trial import TrialResult, TrialSpec

DEFAULT_WEIGHTS = {
    "frames": 0.55,
    "rate": 0.25,
    "crop": 0.35,
    "width": 0.12,
    "bottleneck": 0.10,
    "depth": 0.22,
}


def oracle_accuracy(factors: dict[str, float], basis: dict[str, float], options: dict[str, Any]) -> float:
    """Noise-free top-1 of a spec under the oracle."""
    w = dict(DEFAULT_WEIGHTS, **(options.get("weights") or {}))
    chance = float(options.get("chance", 0.1))

    def doublings(key: str) -> float:
        return max(0.0, math.log2(factors[key] / basis[key]))

    rate = basis["stride"] / factors["stride"]  # frames per source frame, relative
    info = (
        w["frames"] * doublings("frames")
        + w["rate"] * max(0.0, math.log2(rate)) * min(1.0, factors["frames"] - 1)
        + w["crop"] * doublings("crop")
        + w["width"] * doublings("width")
        + w["bottleneck"] * doublings("bottleneck")
        + w["depth"] * doublings("depth")
    )
    return chance + (1 - chance) * (1 - math.exp(-info))


def run_oracle(trial: TrialSpec) -> TrialResult:
    options: dict[str, Any] = dict((trial.experiment.get("trial") or {}).get("options") or {})
    count_file = options.get("count_file")
    if count_file:
        with open(count_file, "a", encoding="utf-8") as fh:
            fh.write(f"{trial.trial_id} {trial.attempt}\n")
            fh.flush()
            os.fsync(fh.fileno())
    axis = trial.axis.split(":")[-1]
    crash_n = int((options.get("crash_axes") or {}).get(axis, 0))
    if crash_n and count_file:
        with open(count_file, encoding="utf-8") as fh:
            calls = sum(1 for line in fh if line.strip() == f"{trial.trial_id} {trial.attempt}")
        if calls <= crash_n:
            os._exit(1)
    started = time.time()
    live.report(trial.trial_id, phase="training", epoch=0, epochs=1)
    if trial.attempt <= int((options.get("hang_axes") or {}).get(axis, 0)):
        if options.get("env_file"):
            with open(options["env_file"], "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"trial_id": trial.trial_id, "attempt": trial.attempt, "pid": os.getpid(),
                                     "hung": True}) + "\n")
        time.sleep(float(options.get("hang_s", 3600)))
    if options.get("sleep"):
        time.sleep(float(options["sleep"]))
    resumed_from = 0
    if options.get("snapshot_steps") and trial.out_dir:
        hold = options.get("hold_file") if trial.step >= 1 else None
        resumed_from = _steps_with_snapshots(trial, int(options["snapshot_steps"]), float(options.get("step_s", 0.5)),
                                             hold)
    if options.get("env_file"):  # where the trial ran: the GPUs Ray gave it, and when
        with open(options["env_file"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"trial_id": trial.trial_id, "attempt": trial.attempt, "pid": os.getpid(),
                                 "start": started,
                                 "end": time.time(),
                                 "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
    full_flag = options.get("disk_full_file")  # while this file exists, these axes find the disk full
    if full_flag and axis in (options.get("disk_full_axes") or []) and os.path.exists(full_flag):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(trial.out_dir or ".", "weights.pt"))
    if trial.attempt <= int((options.get("broken_device_axes") or {}).get(axis, 0)):  # as torch reports it
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be "
                           "asynchronously reported at some other API call, so the stacktrace below might be "
                           "incorrect.")
    fail_n = int((options.get("fail_axes") or {}).get(axis, 0))
    if trial.attempt <= fail_n:
        raise RuntimeError(f"injected failure on {axis} (attempt {trial.attempt})")
    oom_n = int((options.get("oom_axes") or {}).get(axis, 0))
    if trial.attempt <= oom_n:  # as the trainer reports a CUDA OOM
        return TrialResult(trial.trial_id, "oom", error="CUDA out of memory (injected)",
                           extra={"batch_scale": trial.batch_scale})
    if axis in (options.get("diverge_axes") or []):
        return TrialResult(trial.trial_id, "diverged", error="loss became NaN (injected)")
    basis = options.get("basis") or (trial.experiment.get("search_space") or {}).get("basis")
    if basis is None:
        basis = trial.spec.to_dict()
    acc = oracle_accuracy(trial.spec.to_dict(), basis, options)
    noise = float(options.get("noise", 0.0))
    if noise:
        rng = random.Random(f"{trial.seed}|{trial.spec.key()}")
        acc = min(1.0, max(0.0, acc + rng.gauss(0.0, noise)))
    # one "epoch" of progress, as the trainer reports each of its own (the display and its tests)
    live.report(trial.trial_id, phase="training", epoch=1, epochs=1, loss=1.0 - acc)
    per_video: dict[str, Any] = {}
    if options.get("save_weights") and trial.out_dir:
        _save_untrained_weights(trial)
    if options.get("videos"):
        acc, per_video = _simulated_videos(acc, int(options["videos"]), float(options.get("video_jitter", 0.15)),
                                           f"{trial.seed}|{trial.spec.key()}")
    return TrialResult(
        trial.trial_id,
        "ok",
        top1=acc,
        top5=min(1.0, acc + (1 - acc) * 0.6),
        val_loss=-math.log(max(acc, 1e-6)),
        train_loss=[1.0, 0.5],
        seconds=float(options.get("sleep", 0.0)),
        infer_clips_per_s=1000.0 / max(trial.gflops, 1e-6),
        device="oracle",
        # as the trainer reports with data.minival: top1 selects, val_top1 only reports
        extra={"batch_scale": trial.batch_scale, "resumed_from_step": resumed_from,
               **({"selected_on": "minival", "val_top1": acc - float(options["minival_gap"])}
                  if "minival_gap" in options else {})},
        per_video=per_video,
    )


def _save_untrained_weights(trial: TrialSpec) -> None:
    import torch

    from expand.models.x3d import build_x3d
    from expand.weights import WEIGHTS_FILE, save_weights

    torch.manual_seed(trial.seed)
    model = build_x3d(trial.spec, num_classes=trial.spec.num_classes)
    save_weights(os.path.join(trial.out_dir, WEIGHTS_FILE), trial.spec, model, 0.5)


def _steps_with_snapshots(trial: TrialSpec, steps: int, step_s: float, hold_file: Optional[str]) -> int:
    """Sleep through ``steps`` steps with a snapshot after each, from an earlier attempt's if any."""
    import torch

    from expand.snapshot import SNAPSHOT_FILE, TrainState, load_snapshot, remove_snapshot, save_snapshot, snapshot_key

    path, cpu = os.path.join(trial.out_dir, SNAPSHOT_FILE), torch.device("cpu")
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    key = snapshot_key(trial.fingerprint(), 1, steps, steps, None)
    st = load_snapshot(path, key, model, opt, scaler, cpu)[0] or TrainState()
    resumed_from = st.step
    while st.step < steps:
        time.sleep(step_s)
        st.step += 1
        if st.step < steps:
            save_snapshot(path, key, st, model, opt, scaler, cpu)
            while hold_file and st.step == resumed_from + 1 and not os.path.exists(hold_file):
                time.sleep(0.05)
    remove_snapshot(path)
    return resumed_from


def _simulated_videos(acc: float, n: int, jitter: float, key: str) -> tuple[float, dict[str, Any]]:
    """Per-video results of a model of accuracy ``acc`` on n videos of fixed difficulty."""
    import hashlib

    import numpy as np

    from expand.search.confidence import encode_per_video, video_ids_digest

    difficulty = np.random.default_rng(12345).random(n)  # the "validation set": the same for every trial
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    score = difficulty + jitter * np.random.default_rng(seed).standard_normal(n)
    right = int(round(acc * n))
    correct = np.zeros(n, dtype=bool)
    correct[np.argsort(score, kind="stable")[:right]] = True
    return right / n, encode_per_video(correct, None, video_ids_digest(f"video{i}" for i in range(n)))
