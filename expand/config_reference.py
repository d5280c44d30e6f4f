"""The configuration reference (docs/configuration.md), generated from the schema so it cannot drift.

Keys, types and defaults are read from the dataclasses in ``expand.config``
(the schema the loader enforces); ``MEANINGS`` says what each key is for. A
test regenerates the file and compares it with the checked-in copy, and fails
when a schema key has no meaning here or a meaning names no key: adding a
config field means adding its line below and running ``make docs``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterator

MEANINGS: dict[str, str] = {
    # ---------------------------------------------------------------- experiment file
    "name": "Names the run: the default run folder is `results/<name>-<time>` (letters, digits, `.`, `_`, `-`).",
    "search_space": "A search space file (path relative to the experiment, or a shipped name: `x3d_paper`, "
                    "`tiny_cpu`, ...) or the search space inline as a mapping (keys below).",
    "data.format": "`csv`: SlowFast manifests (`path label` lines); `folder`: one folder per class; "
                   "`kinetics`: the official Kinetics annotation CSVs (`label,youtube_id,time_start,time_end,"
                   "split`) with the videos as downloaded (see `train_videos`).",
    "data.root": "Dataset folder; manifest paths are relative to it. On a cluster node, the environment "
                 "variable `X3D_EXPAND_DATA_ROOT` says where that node mounts it.",
    "data.train": "Training split: a manifest file (csv), a folder (folder) or an annotation CSV (kinetics), "
                  "relative to `root`.",
    "data.val": "Validation split, as `train`.",
    "data.train_videos": "`kinetics` only: the training videos' folder, relative to `root`, flat or a folder "
                         "per class; files are `<youtube_id>_<start:06d>_<end:06d>.mp4` (or `<youtube_id>.mp4`).",
    "data.val_videos": "`kinetics` only: the validation videos' folder, as `train_videos`.",
    "data.separator": "Column separator of the manifests, not empty (SlowFast's `DATA.PATH_LABEL_SEPARATOR`).",
    "data.path_prefix": "Prefix joined to every manifest path (SlowFast's `DATA.PATH_PREFIX`).",
    "data.num_classes": "Classes; labels must be below it. Sets the network's output width.",
    "data.fps": "Frame rate clips are sampled at: `stride` counts frames at this rate (30 in X3D; at most 1000).",
    "data.hflip": "Random horizontal flips in training.",
    "data.jitter": "Training scale jitter: the short side is resized to [min, max] x the crop, then cropped "
                   "(X3D: 256-320 px for a 224 crop); max at most 8.",
    "data.test_crop_ratio": "Validation crop = train crop x this (1.0: the train crop, as the search counts "
                            "FLOPs; at most 8).",
    "data.mean": "Per-channel (R, G, B) mean subtracted from frames in [0, 1] (SlowFast's `DATA.MEAN`).",
    "data.std": "Per-channel (R, G, B) std frames are divided by (SlowFast's `DATA.STD`); each > 0.",
    "data.val_clips": "Clips per validation video, averaged, 1-100 (1: the centre clip).",
    "data.train_clips_per_video": "Random clips drawn from each training video per epoch (more distinct clips "
                                  "from a small set of long videos), 1-100.",
    "data.val_crops": "Spatial crops per validation clip: 1 (centre) or 3.",
    "data.cache": "Frame cache folder: `auto` (`<root>/.x3d-frame-cache`; a dataset on a read-only mount needs a path), a path (relative to the experiment "
                  "file, like `data.root`), or `off` (decode videos in "
                  "every trial). Build it once with `x3d-expand data cache`.",
    "data.cache_format": "How the cache stores frames: `h264` (short-GOP re-encode, ~2x the source's bytes), "
                         "`jpeg` (faster, 20-30x) or `npy` (raw).",
    "data.cache_quality": "1-100 (JPEG's scale; h264 maps it to a CRF, 75 -> 23); null: the format's default.",
    "data.max_train_videos": "Use a seeded, class-stratified subset of this many training videos (null: all).",
    "data.max_val_videos": "Use a seeded, class-stratified subset of this many validation videos (null: all).",
    "data.subset_seed": "Seed of the `max_*_videos` subsets and of the minival (0-4294967295).",
    "data.minival": "Videos carved from the training split (stratified, never trained on) to *select* with; "
                    "the validation split then only reports. null: select on the validation split.",
    "schedule.epochs": "Epochs each trial trains, at most 10000 (the short schedule every candidate gets).",
    "schedule.iterations": "Train steps instead of epochs (null: use `epochs`); at most 100000000.",
    "schedule.batch_size": "Clips per step per trial, 1-4096 (halved per OOM with `retries.oom_halve_batch`).",
    "schedule.base_lr": "Learning rate for `base_batch_size` clips; the trial's is scaled linearly to its batch.",
    "schedule.base_batch_size": "The batch `base_lr` is given for (X3D: 0.1 for 128 clips, SlowFast's X3D_M.yaml).",
    "schedule.momentum": "SGD momentum, in [0, 1).",
    "schedule.weight_decay": "Weight decay (not on BN and biases, as SlowFast's X3D recipe).",
    "schedule.warmup_fraction": "Fraction of the steps spent warming up linearly before the cosine decay.",
    "schedule.warmup_start_factor": "Warm-up starts at this x the learning rate.",
    "schedule.dropout": "Dropout before the classifier.",
    "schedule.label_smoothing": "Label smoothing of the cross-entropy loss.",
    "schedule.grad_clip": "Clip gradients to this global norm (null: off).",
    "trial.function": "The trial function, `module:function` taking a TrialSpec and returning a TrialResult "
                      "(default: the trainer; `expand.search.oracle:run_oracle` trains nothing).",
    "trial.device": "`auto` (the first GPU Ray gave the trial, else the CPU), `cpu`, `cuda`/`cuda:N`, `mps` or `xpu`.",
    "trial.workers": "DataLoader processes per trial, 0-256; `auto`: the trial's CPUs less one.",
    "trial.prefetch": "Batches loaded ahead in a thread when `workers` is 0 (0-64).",
    "trial.threads": "torch threads per trial, 0-256 (0: torch's default).",
    "trial.amp": "Mixed precision: `auto` (on CUDA: bf16 where the GPU supports it, else fp16; off on CPU), "
                 "`bf16`, `fp16` (with a grad scaler) or `off`.",
    "trial.channels_last": "Use `channels_last_3d` (about halves an X3D step on CPU; off under bf16 autocast "
                           "on the CPU, where a torch kernel gave NaN gradients).",
    "trial.compile": "`torch.compile` the model (slower on CPU: 44 s to compile).",
    "trial.checkpoint": "Which trials keep weights (`RUN/trials/<id>/model.pt`): `path` (the chosen path and "
                        "trained contractions; the other candidates' files are deleted once their step is "
                        "decided), `all`, or `none`.",
    "trial.throughput_batches": "Batches timed for inference clips/s after training (0: not measured).",
    "trial.tensorboard": "TensorBoard event files per trial in `RUN/trials/<id>/tb` (loss, lr, clips/s, val "
                         "top-1/top-5, hparams); `tensorboard --logdir RUN`.",
    "trial.eval_every": "Evaluate every N epochs during training too (a running top-1 in the progress table "
                        "and TensorBoard); 0: only at the end.",
    "trial.precise_bn_batches": "Recompute BN statistics over this many training batches before evaluating "
                                "(SlowFast's precise BN; 0: off).",
    "trial.time_limit_s": "Seconds one attempt may run before it is stopped and recorded `timeout` (Ray: its "
                          "worker is killed and restarted); `auto`: `time_limit_factor` times what this run's "
                          "finished trials took per GFLOP, at least `time_limit_min_s` (no limit until one has "
                          "finished); null: no limit. At most 30 days. Raise it and `resume --force` to "
                          "retrain the trials it stopped.",
    "trial.time_limit_factor": "With `time_limit_s: auto`: an attempt may run this many times the seconds its "
                               "GFLOPs took in this run's finished trials.",
    "trial.time_limit_min_s": "With `time_limit_s: auto`: no attempt's limit is shorter than this.",
    "trial.snapshot_every_s": "Save the training's state (weights, optimizer, grad scaler, RNGs, place in the "
                              "data order) to `trials/<id>/snapshot.pt` at most this often; the trial's next "
                              "attempt (resume after Ctrl-C, a worker crash, a time limit) carries on from it and "
                              "ends with the model the uninterrupted trial would have. Removed when the trial "
                              "finishes; null: off.",
    "trial.options": "Free-form options passed to the trial function (the oracle's `noise`, `sleep`, ...).",
    "resources.cpus_per_trial": "CPUs Ray reserves per trial (fractions allowed).",
    "resources.gpus_per_trial": "GPUs Ray reserves per trial (0.5: two trials share a GPU). The default "
                                "trainer uses one: more is an error (a trial function of your own may take "
                                "whole GPUs). More than the cluster has is an error at start.",
    "resources.max_concurrent": "At most this many trials at once (null: as many as the resources allow).",
    "resources.ship_package": "Upload this checkout's `expand` package to the Ray cluster (for nodes that "
                              "have the dependencies but not the package).",
    "search.max_steps": "Expansion steps after the basis, 1-100 (each trains one candidate per axis).",
    "search.max_gflops": "Candidates above this many GFLOPs are skipped (null: no cap).",
    "search.targets": "GFLOP budgets to contract the path to at the end (paper §4); each must be reachable "
                      "in `max_steps`.",
    "search.seed": "The run's seed (0-4294967295); each trial's seed is derived from it and the trial's place.",
    "search.runner": "Where trials run: `ray` (parallel workers) or `serial` (this process), or a "
                     "registered runner.",
    "search.selection": "Selection rule (overrides the search space's): `paper`, `gain_per_gflop`, "
                        "`accuracy`, or a registered rule.",
    "search.confirm.confidence": "A step whose chosen candidate is picked with less confidence than this is "
                                 "marked `*?` and, with `max_extra_trials`, confirmed with more seeds.",
    "search.confirm.max_extra_trials": "Extra seeded trials per step to confirm a close call, 0-1000 (0: off).",
    "search.confirm.contender": "A candidate with at least this chance of being the pick is confirmed too.",
    "search.confirm.seed_std": "Seed-to-seed std of top-1 as a fraction, 0-0.5 (from `x3d-expand calibrate`; "
                               "3.5 points is 0.035); null: measured in the run.",
    "retries.failed": "Retries of a trial that raised (each retries key: 0-100).",
    "retries.oom": "Retries of a trial that ran out of GPU memory.",
    "retries.diverged": "Retries of a trial whose loss became non-finite.",
    "retries.worker_crash": "Reruns of a trial whose Ray worker (or node) died.",
    "retries.timeout": "Retries of a trial stopped at `trial.time_limit_s`.",
    "retries.oom_halve_batch": "An OOM retry runs with half the batch (and the linearly scaled lr).",
    # ---------------------------------------------------------------- search space file
    "space.name": "The search space's name.",
    "space.basis.frames": "γt of the basis: frames per clip (X2D: 1).",
    "space.basis.stride": "γτ of the basis: temporal stride at `data.fps`.",
    "space.basis.crop": "Train crop in pixels (the paper's γs = crop / 112); a multiple of `grid.crop`.",
    "space.basis.width": "SlowFast's `WIDTH_FACTOR` (the paper's γw = WIDTH_FACTOR / 2).",
    "space.basis.bottleneck": "γb: inner width of each block / its output width.",
    "space.basis.depth": "γd: blocks per stage = ceil(γd x base_blocks).",
    "space.basis.num_classes": "Classes of the counted model (the experiment's `data.num_classes` replaces it).",
    "space.basis.dim_c1": "Stem width before the width factor (SlowFast's `X3D.DIM_C1`).",
    "space.basis.dim_c5": "Width of the head's last layer (SlowFast's `X3D.DIM_C5`).",
    "space.basis.base_blocks": "Blocks per stage at depth 1 (X3D: 1, 2, 5, 3).",
    "space.basis.se_ratio": "Squeeze-excitation ratio (every other block).",
    "space.basis.stem_kernel_t": "Temporal kernel of the stem.",
    "space.axes": "The axes expanded each step (X-Fast `fast`, X-Temporal `temporal`, X-Spatial `spatial`, "
                  "X-Depth `depth`, X-Width `width`, X-Bottleneck `bottleneck`), or registered ones.",
    "space.grid.crop": "Crop values the search visits are multiples of this (a multiple of 4).",
    "space.grid.width": "Resolution of width factors.",
    "space.grid.bottleneck": "Resolution of bottleneck factors.",
    "space.grid.depth": "Resolution of depth factors.",
    "space.bounds.frames": "[min, max] frames; expansions beyond are skipped. Each max is at most the "
                           "ceiling of `expand.spec.CEILINGS` (frames/stride 256, crop 1024, factors 16).",
    "space.bounds.stride": "[min, max] stride.",
    "space.bounds.crop": "[min, max] crop in pixels.",
    "space.bounds.width": "[min, max] width factor.",
    "space.bounds.bottleneck": "[min, max] bottleneck factor.",
    "space.bounds.depth": "[min, max] depth factor.",
    "space.step.flops_factor": "Each expansion aims at this x the parent's GFLOPs, in (1, 10] (the paper: 2).",
    "space.step.mode": "`nearest`: the grid value closest to the factor in log-FLOPs; `at_least`: the "
                       "smallest one that reaches it (the literal rule).",
    "space.step.tolerance": "`at_least` accepts values this fraction short of the factor.",
    "space.selection": "The default selection rule of this space (see `search.selection`).",
}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _type_text(tp: Any) -> str:
    text = str(tp).replace("typing.", "").replace("NoneType", "None")
    return getattr(tp, "__name__", text) if isinstance(tp, type) else text


def schema_keys() -> Iterator[tuple[str, str, Any]]:
    """(dotted key, type, default) of every key an experiment or search space file may set."""
    from expand import config
    from expand.config import space
    from expand.spec import ArchSpec

    def walk(cls: type, prefix: str) -> Iterator[tuple[str, str, Any]]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                yield from walk(tp, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}", _type_text(tp), _default(f)

    yield from walk(config._ExperimentFile, "")
    hints = typing.get_type_hints(space._SearchSpaceFile)
    for f in dataclasses.fields(space._SearchSpaceFile):
        tp = hints[f.name]
        if f.name == "basis":
            spec_hints = typing.get_type_hints(ArchSpec)
            for g in dataclasses.fields(ArchSpec):
                if g.init:
                    yield f"space.basis.{g.name}", _type_text(spec_hints[g.name]), _default(g)
        elif dataclasses.is_dataclass(tp):
            yield from walk(tp, f"space.{f.name}.")
        else:
            yield f"space.{f.name}", _type_text(tp), _default(f)


def _cell(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "**required**"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    if isinstance(value, str):
        return f'`"{value}"`' if value.strip() != value or not value else f"`{value}`"
    return str(value)


def render_reference() -> str:
    """docs/configuration.md, from the schema and MEANINGS."""
    rows = list(schema_keys())
    lines = ["# Configuration reference", "",
             "<!-- generated by `python -m expand.config_reference` (make docs); a test checks it matches -->", "",
             "Every key of an experiment file and of a search space file, with its type, default and meaning. "
             "A key that is not listed is an error (`experiment.yaml: data.roott: unknown key`). Keys of the "
             "search space file are shown as `space.*` (in an experiment, the same keys go under "
             "`search_space:` when the space is inline).", "",
             "Any experiment key can be changed for one run without editing the file: `--set KEY=VALUE` "
             "(`search`, `baseline`, `calibrate`, `train`, `data check`, `data cache`; e.g. "
             "`--set schedule.epochs=2 --set search_space.bounds.crop=[64,160]`), or `settings={\"schedule.epochs\": 2}` "
             "from Python. Values are YAML (a mapping merges into a section: `--set 'data={num_classes: 7}'` keeps "
             "`data.root`); relative paths are from the current folder; a key given twice, or "
             "given both by `--set search.seed` and `--seed`, is refused. The run keeps its settings "
             "(`state.json`, shown by `show`) and `resume` applies them again; `resume --set KEY=VALUE` changes a key "
             "from there on (one that trials' fingerprints read, such as the schedule or the data, needs `--force`).", ""]
    section = None
    for key, tp, default in rows:
        head = _section_of(key)
        if head != section:
            section = head
            title = {"space": "Search space file (`space.*`)", "": "Experiment file: top level"}.get(
                head, f"Experiment file: `{head}`")
            lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        meaning = MEANINGS.get(key, "")
        tp_text = tp.replace("|", "\\|")
        lines.append(f"| `{key}` | {tp_text} | {_cell(default)} | {meaning} |")
    lines = _blank_before_headings(lines)
    return "\n".join(lines) + "\n"


def _section_of(key: str) -> str:
    return "space" if key.startswith("space.") else key.split(".")[0] if "." in key else ""


def _blank_before_headings(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line.startswith("## ") and out and out[-1] != "":
            out.append("")
        out.append(line)
    return out


def missing_meanings() -> tuple[list[str], list[str]]:
    """(schema keys without a meaning, meanings without a schema key)."""
    keys = [k for k, _, _ in schema_keys()]
    return [k for k in keys if k not in MEANINGS], [k for k in MEANINGS if k not in keys]


if __name__ == "__main__":
    print(render_reference(), end="")
