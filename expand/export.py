"""A chosen model as a SlowFast X3D config, so it can be trained at full length there.

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


@dataclass(frozen=True)
class ExportedModel:
    path: str
    spec: ArchSpec
    gflops: float
    params: int
    source: str


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
                 "INPUT_CHANNEL_NUM": [3]},
        "RESNET": {"ZERO_INIT_FINAL_BN": True, "TRANS_FUNC": "x3d_transform", "STRIDE_1X1": False},
        "BN": {"USE_PRECISE_STATS": True, "NUM_BATCHES_PRECISE": 200, "WEIGHT_DECAY": 0.0},
        "SOLVER": {"BASE_LR": 0.1, "LR_POLICY": "cosine", "MAX_EPOCH": 300, "WEIGHT_DECAY": 5e-5,
                   "WARMUP_EPOCHS": 35.0, "WARMUP_START_LR": 0.01, "OPTIMIZING_METHOD": "sgd",
                   "MOMENTUM": 0.9},
        "TEST": {"NUM_ENSEMBLE_VIEWS": 10, "NUM_SPATIAL_CROPS": 3},
    }


def spec_from_slowfast(cfg: dict[str, Any]) -> ArchSpec:
    """The ArchSpec a SlowFast X3D config builds (the inverse of slowfast_config)."""
    try:
        x3d, data = cfg["X3D"], cfg["DATA"]
        if str(cfg["MODEL"]["ARCH"]).lower() != "x3d":
            raise SpecError(f"MODEL.ARCH is {cfg['MODEL']['ARCH']!r}, not x3d")
        return ArchSpec(
            frames=int(data["NUM_FRAMES"]), stride=int(data["SAMPLING_RATE"]),
            crop=int(data["TRAIN_CROP_SIZE"]), width=float(x3d["WIDTH_FACTOR"]),
            bottleneck=float(x3d["BOTTLENECK_FACTOR"]), depth=float(x3d["DEPTH_FACTOR"]),
            num_classes=int(cfg["MODEL"]["NUM_CLASSES"]), dim_c1=int(x3d.get("DIM_C1", 12)),
            dim_c5=int(x3d.get("DIM_C5", 2048)),
        )
    except (KeyError, TypeError) as exc:
        raise SpecError(f"not a SlowFast X3D config: missing {exc}") from None


def file_name(gflops: float, step: Optional[int] = None) -> str:
    prefix = f"x3d_step{step}_" if step is not None else "x3d_"
    return f"{prefix}gflops@{gflops:.3g}.yaml"


def _header(lines: list[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)


def write_export(out_dir: str, name: str, spec: ArchSpec, fps: float,
                 jitter: tuple[float, float], notes: list[str]) -> str:
    from expand.fileio import atomic_write

    cfg = slowfast_config(spec, fps, jitter)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    text = _header(["SlowFast X3D config written by x3d-expand; train it with",
                    "  python tools/run_net.py --cfg THIS_FILE DATA.PATH_TO_DATA_DIR YOUR_DATA",
                    *notes])
    atomic_write(path, text + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False))
    return path


def export_run(run_dir: str, step: Optional[int] = None, target_gflops: Optional[float] = None) -> ExportedModel:
    """Write RUN_DIR/export/<name>.yaml for a path step or a contracted budget."""
    from expand.api import load_run
    from expand.complexity import COUNTER_SHORT, ComplexityCounter
    from expand.search.coordinator import PathEntry, contract_path, load_contractions

    run, state, exp = load_run(run_dir)
    path = [PathEntry.from_dict(p) for p in state.get("path", [])]
    if not path:
        raise InputError(f"{run.path}: the run has no trained step yet")
    counter = ComplexityCounter()
    if step is not None:
        entry = next((p for p in path if p.step == step), None)
        if entry is None:
            raise InputError(f"--step {step}: the path has steps {path[0].step}..{path[-1].step}")
        spec, name = entry.spec, file_name(entry.gflops, step)
        source = f"step {step} ({entry.axis}), trial {entry.trial_id}, val top-1 {entry.top1:.4f}"
    else:
        assert target_gflops is not None
        saved = {c["target_gflops"]: c for c in load_contractions(run)}
        item = saved.get(target_gflops) or contract_path(path, [target_gflops], exp.search_space, counter)[0]
        if not item.get("spec"):
            raise InputError(f"--target-gflops {target_gflops:g}: {item.get('note')}")
        spec, name = ArchSpec.from_dict(item["spec"]), file_name(target_gflops)
        trained = f", val top-1 {item['top1']:.4f}" if item.get("top1") is not None else ", not trained"
        source = f"budget {target_gflops:g} GFLOPs: step {item['step']} ({item['axis']}) contracted{trained}"
    gflops, params = counter.gflops(spec), counter.params(spec)
    notes = [f"run: {os.path.abspath(run.path)}", f"model: {spec.name}; {source}",
             f"{gflops:.4g} GFLOPs ({COUNTER_SHORT}, {spec.frames}x{spec.crop}^2), {params:,} params"]
    out = write_export(run.file("export"), name, spec, exp.data.fps,
                       tuple(exp.data.jitter), notes)
    return ExportedModel(out, spec, gflops, params, source)
