"""Experiment files -> a typed, validated :class:`Experiment`.

An experiment says *how* a search runs (data, schedule, trial function,
resources, runner, budgets) and names its search space (``expand.config.space``:
*what* may be searched). Paths inside a file are relative to that file, so an
experiment folder can be copied to a cluster as it is.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from expand.config.space import (AXES, SHIPPED_ROOT, Bounds, Grid, SearchSpace, StepRule, load_search_space,
                                 parse_search_space, resolve_search_space_path, resolve_shipped, selection_check)
from expand.errors import ConfigError
from expand.schema import (at_most, check_field, from_mapping, key_path, load_yaml, non_negative, positive,
                           positive_range, positive_values, seed_range, step_count, time_limit, to_plain)
from expand.config.checks import (LOADER_PROCESSES, RETRIES, below_one, check_data_paths, check_run_name,
                                  device_name, per_channel, probability, runner_check)

DEFAULT_TRIAL_FUNCTION = "expand.train:run_trial"


def resolve_experiment_path(name_or_path: str) -> str:
    """An experiment by path, or a shipped one by name (``oracle``, ``synthetic_tiny``, ...).

    Anything that looks like a path (it exists, has a folder or a .yaml
    suffix) is that path, so a typo in a path says "file not found" for it.
    """
    if os.path.exists(name_or_path) or os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return os.path.abspath(name_or_path)
    return resolve_shipped("experiment", "experiments", [], name_or_path)


@dataclass(frozen=True)
class DataConfig:
    """Where the videos are and how clips are sampled (SlowFast conventions)."""

    format: Literal["csv", "folder", "kinetics"] = "csv"
    root: str = ""
    train: str = "train.csv"
    val: str = "val.csv"
    # kinetics only: each split's video folder (flat, or a folder per class), relative to root
    train_videos: str = "train"
    val_videos: str = "val"
    separator: str = check_field(lambda v: None if v and "\n" not in v else "must be one or more characters "
                                 "(not a newline), as SlowFast's PATH_LABEL_SEPARATOR", " ")
    path_prefix: str = ""
    num_classes: int = check_field(positive, 400)
    # the bounds below: a typo (1e308) overflowed a resize or hung the clip sampler, not a config error
    fps: float = check_field(at_most(1000, "frames per second", low_open=True), 30.0)
    hflip: bool = True
    jitter: list[float] = check_field(lambda v: positive_range(v, 8, "x the crop"),
                                      default_factory=lambda: [1.143, 1.429])
    test_crop_ratio: float = check_field(at_most(8, "x the train crop", low_open=True), 1.0)
    mean: list[float] = check_field(per_channel, default_factory=lambda: [0.45, 0.45, 0.45])
    std: list[float] = check_field(lambda v: per_channel(v) or positive_values(v),
                                   default_factory=lambda: [0.225, 0.225, 0.225])
    # the bounds here and below: a typo (1000000 for 10) must not decode a dataset a million times
    val_clips: int = check_field(at_most(100, "clips per video", low=1), 1)
    # Random clips drawn from each training video per epoch: a small dataset of
    # long videos gives more distinct clips without more files (default 1).
    train_clips_per_video: int = check_field(at_most(100, "clips per video", low=1), 1)
    val_crops: Literal[1, 3] = 1
    cache: str = "auto"
    # how the cache stores frames (expand/data/store.py; chosen by benchmarks/data_scale.py):
    # h264 (default: short-GOP re-encode, ~2x the source's bytes), jpeg (faster, 20-30x) or npy (raw)
    cache_format: Literal["h264", "jpeg", "npy"] = "h264"
    # 1-100 (JPEG's scale; h264 maps it to a CRF, 75 -> 23); null: the format's default (h264 75, jpeg 90)
    cache_quality: Optional[int] = check_field(
        lambda v: None if v is None or 1 <= v <= 100 else f"must be 1-100, got {v}", None)
    max_train_videos: Optional[int] = check_field(positive, None)
    max_val_videos: Optional[int] = check_field(positive, None)
    # max_*_videos take a seeded, class-stratified subset (expand.data.manifest.stratified_subset)
    subset_seed: int = check_field(seed_range, 0)
    # Videos carved from the training split (seeded, stratified, never trained on) to *select*
    # with; the validation split then only *reports* the chosen models' accuracy. None: off.
    minival: Optional[int] = check_field(positive, None)


@dataclass(frozen=True)
class ScheduleConfig:
    """The short schedule every candidate gets (scaled-down SlowFast X3D recipe)."""

    epochs: float = check_field(at_most(10000, "a trial's epochs", low_open=True), 10.0)
    iterations: Optional[int] = check_field(at_most(10**8, "a trial's train steps", low=1), None)
    # more is a typo: its first batch fails to allocate, is recorded as an OOM and halved retry by retry
    batch_size: int = check_field(at_most(4096, "clips per step on one device", low=1), 16)
    base_lr: float = check_field(positive, 0.1)
    base_batch_size: int = check_field(positive, 128)
    momentum: float = check_field(below_one, 0.9)
    weight_decay: float = check_field(non_negative, 5e-5)
    warmup_fraction: float = check_field(below_one, 0.1)
    warmup_start_factor: float = check_field(positive, 0.1)
    dropout: float = check_field(below_one, 0.5)
    label_smoothing: float = check_field(below_one, 0.0)
    grad_clip: Optional[float] = check_field(positive, None)

    @property
    def lr(self) -> float:
        """Linear scaling rule: base_lr is for base_batch_size clips per step."""
        return self.base_lr * self.batch_size / self.base_batch_size


@dataclass(frozen=True)
class TrialConfig:
    function: str = DEFAULT_TRIAL_FUNCTION
    device: str = check_field(device_name, "auto")
    # DataLoader worker processes per trial; auto: the trial's CPUs (resources.cpus_per_trial) less
    # the one that runs the training loop, so a trial's loaders never oversubscribe what Ray gave it
    # the bounds: a typo (800 for 8) would start hundreds of processes that each import torch, or,
    # for threads, crash the worker (torch 2.13 segfaults at exit with 100000 threads, measured)
    workers: Union[int, Literal["auto"]] = check_field(
        lambda v: None if v == "auto" else LOADER_PROCESSES(v), "auto")
    # batches loaded ahead in a thread (workers 0; data/prefetch.py)
    prefetch: int = check_field(at_most(64, "batches held in memory"), 0)
    threads: int = check_field(at_most(256, "torch threads"), 0)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    compile: bool = False
    # which trained candidates keep their weights (RUN/trials/<id>/model.pt): path (default) the
    # chosen path's models and trained contractions, all every trial, none no file at all
    checkpoint: Literal["path", "all", "none"] = "path"
    throughput_batches: int = check_field(non_negative, 3)
    # TensorBoard event files per trial (RUN/trials/<id>/tb): train loss, lr, clips/s per epoch, val
    # top-1/top-5, and an hparams summary (the six factors, GFLOPs, top-1); `tensorboard --logdir RUN`
    tensorboard: bool = True
    # evaluate every N epochs during training as well (a running top-1 in the progress table and
    # TensorBoard); 0: only at the end, as the search's decisions need (each costs an evaluation)
    eval_every: int = check_field(non_negative, 0)
    # Precise BN (SlowFast's BN.USE_PRECISE_STATS / NUM_BATCHES_PRECISE, 200 there): before the
    # evaluation, recompute BN statistics as the true average over this many training batches
    # (fvcore's update_bn_stats). 0: off, the running averages of training are used.
    precise_bn_batches: int = check_field(non_negative, 0)
    # wall-clock seconds one attempt may run (opening the data, training, evaluating) before it is
    # stopped and recorded `timeout`: a hung trial (a deadlocked loader, a wedged GPU) must not stall a
    # week-long search. On Ray its worker process is killed (and restarted); the serial runner
    # interrupts the trial at its next Python instruction. auto: time_limit_factor times what this
    # run's finished trials took per GFLOP, at least time_limit_min_s (expand/search/time_limits.py;
    # no limit until a trial has finished). null: no limit
    time_limit_s: Union[float, Literal["auto"], None] = check_field(
        lambda v: None if v == "auto" else time_limit(v), None)
    time_limit_factor: float = check_field(lambda v: None if v >= 1 else f"must be >= 1, got {v}", 4.0)
    time_limit_min_s: float = check_field(time_limit, 900.0)
    # save a snapshot of the training (weights, optimizer, grad scaler, RNGs, place in the data order)
    # to RUN/trials/<id>/snapshot.pt at most this often, at a step's end; the trial's next attempt
    # (after Ctrl-C and resume, a worker crash, a time limit) carries on from it and ends with the
    # model the uninterrupted trial would have. Removed when the trial finishes. null: no snapshots
    snapshot_every_s: Optional[float] = check_field(positive, 600.0)
    options: dict[str, Any] = field(default_factory=dict)


def loader_workers(workers: "int | str", cpus_per_trial: float) -> int:
    """``trial.workers`` as a number: ``auto`` is the trial's CPUs less one (at least 0)."""
    import math

    return max(0, math.ceil(cpus_per_trial) - 1) if workers == "auto" else int(workers)


@dataclass(frozen=True)
class ResourcesConfig:
    cpus_per_trial: float = check_field(positive, 1.0)
    gpus_per_trial: float = check_field(non_negative, 0.0)
    max_concurrent: Optional[int] = check_field(positive, None)
    # upload this checkout's expand package to the Ray cluster (runtime_env py_modules), for a cluster
    # whose nodes have the dependencies but not the package; off: every node imports its own install
    ship_package: bool = False


@dataclass(frozen=True)
class RetriesConfig:
    # at most 100 each: a typo (1000000000) would retry a trial that always fails for ever
    failed: int = check_field(RETRIES, 1)
    oom: int = check_field(RETRIES, 0)
    diverged: int = check_field(RETRIES, 0)
    worker_crash: int = check_field(RETRIES, 1)
    timeout: int = check_field(RETRIES, 0)  # retries of an attempt stopped at trial.time_limit_s
    # an OOM retry runs with half the batch (and the linearly scaled learning rate)
    oom_halve_batch: bool = False


@dataclass(frozen=True)
class ConfirmConfig:
    """Confirmation of close calls (expand.search.confirm): extra seeds for a step's contenders.

    ``confidence`` is also the level ``show`` marks uncertain steps against, so
    it matters with confirmation off (``max_extra_trials: 0``, the default).
    """

    confidence: float = check_field(probability, 0.9)
    max_extra_trials: int = check_field(at_most(1000, "extra trials per step"), 0)  # 0: confirmation off
    # a candidate whose chance of being the rule's pick is at least this is a contender
    contender: float = check_field(probability, 0.05)
    # the seed-to-seed std of top-1 (a fraction), when known (x3d-expand calibrate measures it);
    # null: measured in the run, pooled with the binomial std of the selection videos
    # at most 0.5 (no std of a fraction is larger): 3.5, top-1 points where a fraction is meant, made
    # every step look like a coin toss and spent max_extra_trials on each
    seed_std: Optional[float] = check_field(
        lambda v: None if v is None or 0 <= v <= 0.5 else
        f"must be a fraction of top-1 in [0, 0.5] (3.5 points is 0.035), got {v}", None)


@dataclass(frozen=True)
class SearchConfig:
    max_steps: int = check_field(step_count, 5)
    max_gflops: Optional[float] = check_field(positive, None)
    targets: list[float] = field(default_factory=list)
    seed: int = check_field(seed_range, 0)
    runner: str = check_field(runner_check, "ray")  # a name in expand.search.runners.RUNNERS
    selection: Optional[str] = check_field(lambda v: v and selection_check(v), None)
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)


@dataclass(frozen=True)
class Experiment:
    name: str
    search_space: SearchSpace
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    retries: RetriesConfig = field(default_factory=RetriesConfig)
    source: str = ""

    @property
    def selection(self) -> str:
        return self.search.selection or self.search_space.selection

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment: search space inlined, paths absolute."""
        return {
            "name": self.name,
            "search_space": self.search_space.to_dict(),
            "data": to_plain(self.data),
            "schedule": to_plain(self.schedule),
            "trial": to_plain(self.trial),
            "resources": to_plain(self.resources),
            "search": to_plain(self.search),
            "retries": to_plain(self.retries),
        }


@dataclass(frozen=True)
class _ExperimentFile:
    name: str
    search_space: Any
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    retries: RetriesConfig = field(default_factory=RetriesConfig)


def _upgrade(data: Any) -> Any:
    """Older files' spellings of keys that changed meaning (run folders keep their config.yaml)."""
    trial = data.get("trial") if isinstance(data, dict) else None
    if isinstance(trial, dict) and isinstance(trial.get("checkpoint"), bool):
        # before 0.2: true (every trial) / false, the default then: a run started with the old
        # default resumes with the new one rather than being refused as "changed"
        data = dict(data, trial=dict(trial, checkpoint="all" if trial["checkpoint"] else "path"))
    return data


def parse_experiment(data: Any, where: str, base_dir: str, check_paths: bool = True) -> Experiment:
    raw = from_mapping(_ExperimentFile, _upgrade(data), where)
    if isinstance(raw.search_space, str):
        space_path = resolve_search_space_path(raw.search_space, base_dir)
        space = parse_search_space(load_yaml(space_path), f"{space_path}:", raw.data.num_classes)
    else:
        space = parse_search_space(raw.search_space, key_path(where, 'search_space'), raw.data.num_classes)
    root = raw.data.root
    if root and not os.path.isabs(root):
        root = os.path.normpath(os.path.join(base_dir, root))
    cache = raw.data.cache
    if cache not in ("auto", "off") and not os.path.isabs(cache):
        # like data.root: relative to the experiment file, and absolute in the run's config.yaml,
        # so that a resume from another folder finds the cache instead of decoding it all again
        cache = os.path.normpath(os.path.join(base_dir, cache))
    data_cfg = dataclasses.replace(raw.data, root=root, cache=cache)
    # A custom trial function (the oracle, a user's trainer) may need no videos.
    if check_paths and (root or raw.trial.function == DEFAULT_TRIAL_FUNCTION):
        check_data_paths(data_cfg, where)
    for i, target in enumerate(raw.search.targets):
        if target <= 0:
            raise ConfigError(f"{key_path(where, f'search.targets[{i}]')}: must be > 0, got {target}")
    if raw.resources.gpus_per_trial > 0 and raw.trial.device == "cpu":
        raise ConfigError(f"{key_path(where, 'trial.device')}: 'cpu' with resources.gpus_per_trial > 0")
    for key in ("train_videos", "val_videos"):  # set with another format, it would be ignored without a word
        if raw.data.format != "kinetics" and getattr(raw.data, key) != getattr(DataConfig(), key):
            raise ConfigError(f"{key_path(where, f'data.{key}')}: read only with data.format: kinetics "
                              f"(this experiment's is {raw.data.format})")
    check_gpus_per_trial(raw.resources.gpus_per_trial, raw.trial.function, key_path(where, "resources.gpus_per_trial"))
    if ":" not in raw.trial.function:
        raise ConfigError(
            f"{key_path(where, 'trial.function')}: expected 'module:function', got {raw.trial.function!r}"
        )
    return Experiment(
        name=raw.name,
        search_space=space,
        data=data_cfg,
        schedule=raw.schedule,
        trial=raw.trial,
        resources=raw.resources,
        search=raw.search,
        retries=raw.retries,
        source=where.split(":")[0],
    )


def check_gpus_per_trial(gpus: float, function: str, where: str) -> None:
    """A share of one GPU, or whole GPUs (Ray's rule); the default trainer uses one GPU.

    Ray refuses 1.5 only when it schedules the first trial; and the default trainer
    trains on ``cuda:0`` of the trial's GPUs, so a second one would sit idle for the
    whole search while it counted against the cluster. A trial function of your own
    may use several.
    """
    if gpus > 1 and not float(gpus).is_integer():
        raise ConfigError(f"{where}: more than one GPU must be a whole number (Ray's rule), got {gpus:g}")
    if gpus > 1 and function == DEFAULT_TRIAL_FUNCTION:
        raise ConfigError(f"{where}: the default trainer trains on one GPU, so {gpus:g} would leave "
                          f"{gpus - 1:g} idle; give 1 (or 0.5: two trials share one) and let more trials run at once")


def load_experiment(path: str, check_paths: bool = True) -> Experiment:
    """Load and validate an experiment file (or a shipped one by name); problems are one-line ConfigErrors."""
    path = resolve_experiment_path(path)
    exp = parse_experiment(load_yaml(path), f"{path}:", os.path.dirname(path), check_paths)
    check_run_name(exp.name, f"{path}:")
    return exp


def experiment_from_dict(data: dict[str, Any], where: str = "config.yaml:") -> Experiment:
    """Rebuild an experiment from its resolved form (``results/<run>/config.yaml``)."""
    # Its paths are absolute; a relative data.cache can only come from a run made before they were
    # resolved, when it meant the current folder.
    return parse_experiment(data, where, base_dir=os.getcwd(), check_paths=False)


# the search-space names most callers want from here too: ``from expand.config import load_search_space``
__all__ = [
    "AXES", "DEFAULT_TRIAL_FUNCTION", "SHIPPED_ROOT", "Bounds", "ConfirmConfig", "DataConfig", "Experiment",
    "Grid", "ResourcesConfig", "RetriesConfig", "ScheduleConfig", "SearchConfig", "SearchSpace", "StepRule",
    "TrialConfig", "check_data_paths", "check_gpus_per_trial", "experiment_from_dict", "load_experiment",
    "load_search_space", "loader_workers", "parse_experiment", "parse_search_space", "resolve_experiment_path",
    "resolve_search_space_path",
]
