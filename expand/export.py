"""A chosen model as a config another code base trains at full length: SlowFast, mmaction2, pytorchvideo.

SlowFast's X3D builder reads the six factors from X3D.* and DATA.* keys; the
stage layout (1, 2, 5, 3 blocks), the SE ratio (1/16) and the stem's temporal
kernel (5) are hard-coded in its code, so a spec that changes them cannot be
expressed and is refused rather than silently exported as another model.
The test crop follows SlowFast's X3D configs (int(train crop x 8/7)) and the
train jitter the experiment's own jitter range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import yaml

from expand.errors import InputError, SpecError
from expand.presets import test_crop_for
from expand.spec import ArchSpec

SLOWFAST_FIXED = {"base_blocks": (1, 2, 5, 3), "se_ratio": 0.0625, "stem_kernel_t": 5}
FORMATS = ("slowfast", "mmaction2", "pytorchvideo")
# Keys a user must set before training; the YAML holds placeholders that fail loudly (a path that
# does not exist) or the X3D recipe's values for one 8-GPU machine, and the printed command sets them.
REQUIRED_PATH = "REQUIRED/set/DATA.PATH_TO_DATA_DIR"
REQUIRED_OUTPUT = "REQUIRED/set/OUTPUT_DIR"
RECIPE_GPUS, RECIPE_BATCH = 8, 128  # SlowFast's configs/Kinetics/X3D_M.yaml


@dataclass(frozen=True)
class ExportedModel:
    path: str
    spec: ArchSpec
    gflops: float
    params: int
    source: str
    format: str = "slowfast"
    command: str = ""  # how to train it there
    data_note: str = ""  # SlowFast: the manifests written for it, or why its data path is a placeholder


def check_expressible(spec: ArchSpec) -> None:
    for key, fixed in SLOWFAST_FIXED.items():
        value = getattr(spec, key)
        if (tuple(value) if isinstance(value, (list, tuple)) else value) != fixed:
            raise SpecError(f"{key}={value}: SlowFast's X3D hard-codes {key}={fixed}; "
                            "this model cannot be exported as a SlowFast config")


def slowfast_config(spec: ArchSpec, fps: float = 30.0,
                    jitter: tuple[float, float] = (1.143, 1.429)) -> dict[str, Any]:
    """The keys SlowFast's X3D model and data pipeline read, plus its X3D recipe's defaults."""
    check_expressible(spec)
    test_crop = test_crop_for(spec.crop)
    return {
        "MODEL": {"ARCH": "x3d", "MODEL_NAME": "X3D", "NUM_CLASSES": int(spec.num_classes),
                  "LOSS_FUNC": "cross_entropy", "DROPOUT_RATE": 0.5},
        "X3D": {"WIDTH_FACTOR": float(spec.width), "DEPTH_FACTOR": float(spec.depth),
                "BOTTLENECK_FACTOR": float(spec.bottleneck), "DIM_C1": int(spec.dim_c1),
                "DIM_C5": int(spec.dim_c5), "SCALE_RES2": False, "BN_LIN5": False,
                "CHANNELWISE_3x3x3": True},
        "DATA": {"NUM_FRAMES": int(spec.frames), "SAMPLING_RATE": int(spec.stride),
                 "TARGET_FPS": int(round(fps)), "TRAIN_CROP_SIZE": int(spec.crop),
                 "TEST_CROP_SIZE": int(test_crop),
                 "TRAIN_JITTER_SCALES": [int(round(spec.crop * jitter[0])), int(round(spec.crop * jitter[1]))],
                 "INPUT_CHANNEL_NUM": [3], "PATH_TO_DATA_DIR": REQUIRED_PATH, "PATH_PREFIX": ""},
        "RESNET": {"ZERO_INIT_FINAL_BN": True, "TRANS_FUNC": "x3d_transform", "STRIDE_1X1": False},
        "BN": {"USE_PRECISE_STATS": True, "NUM_BATCHES_PRECISE": 200, "WEIGHT_DECAY": 0.0},
        "SOLVER": {"BASE_LR": 0.1, "LR_POLICY": "cosine", "MAX_EPOCH": 300, "WEIGHT_DECAY": 5e-5,
                   "WARMUP_EPOCHS": 35.0, "WARMUP_START_LR": 0.01, "OPTIMIZING_METHOD": "sgd",
                   "MOMENTUM": 0.9},
        "TRAIN": {"ENABLE": True, "DATASET": "kinetics", "BATCH_SIZE": RECIPE_BATCH, "EVAL_PERIOD": 10,
                  "CHECKPOINT_PERIOD": 10, "AUTO_RESUME": True},
        "TEST": {"ENABLE": True, "DATASET": "kinetics", "BATCH_SIZE": 64, "NUM_ENSEMBLE_VIEWS": 10,
                 "NUM_SPATIAL_CROPS": 3},
        "DATA_LOADER": {"NUM_WORKERS": 8, "PIN_MEMORY": True},
        "NUM_GPUS": RECIPE_GPUS,
        "RNG_SEED": 0,
        "OUTPUT_DIR": REQUIRED_OUTPUT,
    }


def spec_from_slowfast(cfg: dict[str, Any]) -> ArchSpec:
    """The ArchSpec a SlowFast X3D config builds (the inverse of slowfast_config)."""
    # A key the file leaves out takes SlowFast's default (slowfast/config/defaults.py), as there.
    if not isinstance(cfg, dict):
        raise SpecError("not a SlowFast config: expected a YAML mapping")
    try:
        model, x3d, data = cfg.get("MODEL") or {}, cfg.get("X3D") or {}, cfg.get("DATA") or {}
        if str(model.get("ARCH", "")).lower() != "x3d":
            raise SpecError(f"MODEL.ARCH is {model.get('ARCH')!r}, not x3d: not an X3D config")
        if x3d.get("SCALE_RES2") or x3d.get("BN_LIN5") or x3d.get("CHANNELWISE_3x3x3") is False:
            raise SpecError("X3D.SCALE_RES2/BN_LIN5/CHANNELWISE_3x3x3 differ from X3D's; this builder has "
                            "no such variant")
        return ArchSpec(
            frames=int(data.get("NUM_FRAMES", 8)), stride=int(data.get("SAMPLING_RATE", 8)),
            crop=int(data.get("TRAIN_CROP_SIZE", 224)), width=float(x3d.get("WIDTH_FACTOR", 1.0)),
            bottleneck=float(x3d.get("BOTTLENECK_FACTOR", 1.0)), depth=float(x3d.get("DEPTH_FACTOR", 1.0)),
            num_classes=int(model.get("NUM_CLASSES", 400)), dim_c1=int(x3d.get("DIM_C1", 12)),
            dim_c5=int(x3d.get("DIM_C5", 2048)),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise SpecError(f"not a SlowFast X3D config: {exc}") from None


def read_slowfast_config(path: str) -> ArchSpec:
    """The spec of a SlowFast X3D config file (``flops --slowfast-config``); problems are one-line errors."""
    from expand.errors import ConfigError

    try:
        with open(path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({type(exc).__name__})") from None
    if isinstance(cfg, dict) and cfg.get("_BASE_"):
        raise ConfigError(f"{path}: _BASE_ inheritance is not followed; pass the config that sets "
                          "MODEL, X3D and DATA itself")
    try:
        return spec_from_slowfast(cfg)
    except SpecError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def slowfast_command(config_path: str, data_dir: Optional[str] = None, prefix: str = "",
                     separator: str = " ") -> str:
    """The ``tools/run_net.py`` line that trains an exported config (SlowFast needs ``--opts``)."""
    import shlex

    opts = [("DATA.PATH_TO_DATA_DIR", data_dir or "/path/to/folder/with/train.csv,val.csv,test.csv")]
    if prefix:
        opts.append(("DATA.PATH_PREFIX", prefix))
    if separator != " ":  # yacs keeps a value it cannot literal_eval ("," "|" ";") as the string
        opts.append(("DATA.PATH_LABEL_SEPARATOR", shlex.quote(separator)))
    opts += [("NUM_GPUS", str(RECIPE_GPUS)), ("TRAIN.BATCH_SIZE", str(RECIPE_BATCH)),
             ("OUTPUT_DIR", "/path/to/output")]
    return f"python tools/run_net.py --cfg {config_path} --opts " + " ".join(f"{k} {v}" for k, v in opts)


def file_name(gflops: float, step: Optional[int] = None, fmt: str = "slowfast") -> str:
    prefix = f"x3d_step{step}_" if step is not None else "x3d_"
    suffix = {"slowfast": ".yaml", "mmaction2": "_mmaction2.py", "pytorchvideo": "_pytorchvideo.json"}[fmt]
    return f"{prefix}gflops@{gflops:.3g}{suffix}"


def _header(lines: list[str], comment: str = "# ") -> str:
    return "".join(f"{comment}{line}\n" for line in lines)


def slowfast_data_dir(exp: Any) -> tuple[Optional[str], str]:
    """The run's dataset as SlowFast reads it (a folder with train/val/test.csv), when it is one."""
    data = exp.data
    if data.format != "csv" or (data.train, data.val) != ("train.csv", "val.csv"):
        return None, ""
    root = os.path.abspath(data.root)
    if not os.path.isfile(os.path.join(root, "test.csv")):
        return None, ""
    return root, root if not data.path_prefix else data.path_prefix


# SlowFast splits each manifest line on DATA.PATH_LABEL_SEPARATOR and needs exactly two fields
# (three read as path, name, label): the first of these that no path holds
SEPARATORS = (" ", ",", "|", ";")


@dataclass(frozen=True)
class SlowFastData:
    """Where SlowFast finds the run's videos: ``folder`` (train/val/test.csv), prefix and separator."""

    folder: Optional[str]  # None: not known here (the placeholder path is printed)
    prefix: str = ""
    separator: str = " "
    note: str = ""  # what was written, or why the placeholder stays


def slowfast_data(exp: Any, write_to: str) -> SlowFastData:
    """The run's dataset as SlowFast reads it: its own folder when it is already SlowFast's layout and
    every line splits in two there; else manifests written to ``write_to`` from the splits the trials
    read (whole, absolute paths, labels as the trials used; test.csv = val.csv, as ``data synth``)."""
    from expand.data.manifest import load_split
    from expand.errors import DataError

    data = exp.data
    if not data.root:  # a run without videos (the oracle): nothing to point at
        return SlowFastData(None)
    try:
        splits = {"train": load_split(data, "train"), "val": load_split(data, "val")}
    except (DataError, OSError) as exc:  # exported where the dataset is not: the user names it
        return SlowFastData(None, note=f"the run's dataset is not readable here ({exc}): set "
                                       "DATA.PATH_TO_DATA_DIR to a folder with its train.csv, val.csv, test.csv")
    paths = [os.path.abspath(i.path) for items in splits.values() for i in items]
    root, prefix = slowfast_data_dir(exp)
    if root is not None and data.separator in SEPARATORS and not any(data.separator in p for p in paths):
        return SlowFastData(root, prefix, data.separator)
    from expand.data.checks import known_unusable

    # SlowFast's test loader raises on a video it cannot open: leave out what the trials skipped
    # (unless none is here: exported where the manifests are but not the videos, all are kept)
    listed = [i.path for items in splits.values() for i in items]
    skipped = known_unusable(data.root, listed)
    if len(skipped) == len(set(listed)):
        skipped = set()
    splits = {k: [i for i in items if i.path not in skipped] for k, items in splits.items()}
    paths = [os.path.abspath(i.path) for items in splits.values() for i in items]
    separator = next((s for s in SEPARATORS if not any(s in p for p in paths)), None)
    if separator is None:
        return SlowFastData(None, note=f"every separator SlowFast could split on ({' '.join(map(repr, SEPARATORS))})"
                                       " is in some video's path: write the manifests yourself")
    from expand.fileio import atomic_write

    for name, items in (("train", splits["train"]), ("val", splits["val"]), ("test", splits["val"])):
        atomic_write(os.path.join(write_to, f"{name}.csv"),
                     "".join(f"{os.path.abspath(i.path)}{separator}{i.label}\n" for i in items))
    return SlowFastData(write_to, "", separator,
                        note=f"SlowFast manifests written to {write_to} ({len(splits['train'])} train, "
                             f"{len(splits['val'])} val videos; separator {separator!r})"
                             + (f"; {len(skipped)} missing or unreadable video(s) left out" if skipped else ""))


def render_export(fmt: str, spec: ArchSpec, fps: float, jitter: tuple[float, float], notes: list[str],
                  command: str, data: Optional[tuple[str, str, str]] = None) -> str:
    """The file's text in ``fmt``; ``notes`` say where the model came from; ``data``: the run's
    manifests for mmaction2 (folder, prefix, separator; SlowFast's are in ``command``)."""
    import json

    from expand import interop

    if fmt == "slowfast":
        cfg = slowfast_config(spec, fps, jitter)
        head = _header(["SlowFast X3D config written by x3d-expand; train it with", f"  {command}",
                        "REQUIRED before training: DATA.PATH_TO_DATA_DIR (train.csv, val.csv, test.csv), "
                        "OUTPUT_DIR;", f"check NUM_GPUS ({RECIPE_GPUS}) and TRAIN.BATCH_SIZE ({RECIPE_BATCH}, "
                        "all GPUs together) for your machine.", *notes])
        return head + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
    if fmt == "mmaction2":
        return interop.mmaction2_config(spec, fps, jitter, data=data) + "\n" + _header(notes)
    if fmt == "pytorchvideo":
        return json.dumps({**interop.pytorchvideo_export(spec, fps), "notes": notes,
                           "usage": "from pytorchvideo.models.x3d import create_x3d; "
                                    "model = create_x3d(**export['create_x3d'])"}, indent=1) + "\n"
    raise InputError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")


def _path_model(run: Any, state: dict[str, Any], exp: Any, step: Optional[int], target_gflops: Optional[float],
                fmt: str, counter: Any) -> tuple[ArchSpec, str, str]:
    """An expansion's model: a step of its path, or the path contracted to a budget."""
    from expand.preflight import check_has_path
    from expand.results import contraction_source
    from expand.search.coordinator import PathEntry, contract_path, saved_contractions

    path = [PathEntry.from_dict(p) for p in state.get("path", [])]
    check_has_path(run.path, "expansion", path)
    if step is None and target_gflops is None:  # Run.export(): the last path model, as Run.model()
        step = path[-1].step
    if step is not None:
        entry = next((p for p in path if p.step == step), None)
        if entry is None:
            raise InputError(f"--step {step}: the path has steps {path[0].step}..{path[-1].step}")
        source = f"step {step} ({entry.axis}), trial {entry.trial_id}, val top-1 {100 * entry.top1:.1f}%"
        return entry.spec, file_name(entry.gflops, step, fmt), source
    assert target_gflops is not None
    saved = {c["target_gflops"]: c for c in saved_contractions(run, state.get("path", []))}
    item = saved.get(target_gflops) or contract_path(path, [target_gflops], exp.search_space, counter)[0]
    if not item.get("spec"):
        raise InputError(f"--target-gflops {target_gflops:g}: {item.get('note')}")
    top1 = f", val top-1 {100 * item['top1']:.1f}%" if item.get("top1") is not None else ""
    source = f"budget {target_gflops:g} GFLOPs: {contraction_source(item)}{top1}"
    return ArchSpec.from_dict(item["spec"]), file_name(target_gflops, None, fmt), source


def _baseline_model(run: Any, state: dict[str, Any], step: Optional[int], target_gflops: Optional[float],
                    fmt: str) -> tuple[ArchSpec, str, str]:
    """A baseline's model: trial N as ``show`` numbers them, or its most accurate one within a budget
    (what ``compare`` reports for that budget)."""
    import math

    from expand.results import baseline_rows
    from expand.run import latest_by_trial

    attempts = latest_by_trial(run.read_trials().records)
    rows = baseline_rows(state, attempts)
    trained = [r for r in rows if r["status"] == "ok" and not math.isnan(r["top1"])]
    what = f"the {state.get('kind')} baseline"
    if step is not None:
        row = next((r for r in rows if r["step"] == step), None)
        if row is None:
            raise InputError(f"--step {step}: {what} has trials 1..{len(rows)} (as 'show' numbers them)"
                             if rows else f"{run.path}: {what} has no trial yet")
        if row not in trained:
            raise InputError(f"--step {step}: trial {row['trial_id']} of {what} did not train ({row['status']})")
    else:  # Run.best: the rule run.model(budget=) uses, with compare's tolerance at the budget
        from expand.run_view import Run

        best = Run(run.path).best(target_gflops)  # no budget (Run.export()): its most accurate model
        if best is None and target_gflops is None:
            raise InputError(f"{run.path}: {what} has no trained model yet")
        if best is None:
            smallest = min((r["gflops"] for r in trained), default=None)
            raise InputError(f"--target-gflops {target_gflops:g}: {what} trained no model at or under it"
                             + (f" (its smallest: {smallest:.4g} GFLOPs)" if smallest is not None else ""))
        row = next(r for r in rows if r["trial_id"] == best.trial_id)
    source = (f"{state.get('kind')} baseline trial {row['step']} ({row['trial_id']}), val top-1 "
              f"{100 * row['top1']:.1f}%" + (f", the best at or under {target_gflops:g} GFLOPs"
                                             if target_gflops is not None else ""))
    name = file_name(row["gflops"], None, fmt).replace("x3d_", f"x3d_{state.get('kind')}_trial{row['step']}_", 1)
    return attempts[row["trial_id"]][-1].trial.spec, name, source


def export_run(run_dir: str, step: Optional[int] = None, target_gflops: Optional[float] = None,
               fmt: str = "slowfast") -> ExportedModel:
    """Write RUN_DIR/export/<name> for a path step or a contracted budget, in ``fmt``."""
    from expand.api import load_run
    from expand.complexity import COUNTER_SHORT, ComplexityCounter
    from expand.fileio import atomic_write

    run, state, exp = load_run(run_dir)
    counter = ComplexityCounter()
    kind = state.get("kind", "expansion")
    if kind == "calibration":
        raise InputError(f"{run.path}: a calibration run ranks schedules and chooses no model; export from a "
                         "search or a baseline")
    if kind != "expansion":
        spec, name, source = _baseline_model(run, state, step, target_gflops, fmt)
    else:
        spec, name, source = _path_model(run, state, exp, step, target_gflops, fmt, counter)
    gflops, params = counter.gflops(spec), counter.params(spec)
    notes = [f"run: {os.path.abspath(run.path)}", f"model: {spec.name}; {source}",
             f"{gflops:.4g} GFLOPs ({COUNTER_SHORT}, {spec.frames}x{spec.crop}^2), {params:,} params"]
    out = os.path.join(run.file("export"), name)
    data_note, data = "", None
    if fmt in ("slowfast", "mmaction2"):  # both read 'path label' lines split in exactly two
        sf = slowfast_data(exp, os.path.join(run.file("export"), "slowfast_data"))
        data_note, data = sf.note, (sf.folder, sf.prefix, sf.separator) if sf.folder else None
    if fmt == "slowfast":
        command = slowfast_command(out, sf.folder, sf.prefix, sf.separator)
    elif fmt == "mmaction2":
        command = f"python tools/train.py {out}"
    else:
        command = f"create_x3d(**json.load(open('{out}'))['create_x3d'])"
    notes += [data_note] if data_note else []
    text = render_export(fmt, spec, exp.data.fps, tuple(exp.data.jitter), notes, command, data)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    atomic_write(out, text)
    return ExportedModel(out, spec, gflops, params, source, fmt, command, data_note)
