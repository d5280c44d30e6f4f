"""A spec as mmaction2 and pytorchvideo speak it, and back.

The units differ between the three code bases, and copying numbers across
without converting builds another network:

* mmaction2's ``X3D(gamma_w=...)`` is the paper's γw: its base width is 24
  channels (SlowFast's ``DIM_C1`` 12 × ``WIDTH_FACTOR`` 2), so
  ``gamma_w = WIDTH_FACTOR / 2`` (X3D-M: ``gamma_w=1``, ``WIDTH_FACTOR: 2.0``).
  ``gamma_b`` and ``gamma_d`` are SlowFast's factors unchanged; frames and
  stride are the data pipeline's ``clip_len`` and ``frame_interval``.
* pytorchvideo's ``create_x3d(width_factor=...)`` is SlowFast's
  ``WIDTH_FACTOR`` (its stem is ``stem_dim_in`` 12 × ``width_factor``); the
  stride is not a model argument, so the export records it beside.

Neither library is imported here; the round-trip tests read the configs back.
"""

from __future__ import annotations

import ast
import os
from typing import Any, Optional

from expand.errors import SpecError
from expand.presets import test_crop_for
from expand.spec import ArchSpec

MMACTION_BASE_CHANNELS = 24  # mmaction2's X3D: base_channels = 24 at gamma_w = 1
PYTORCHVIDEO_FIXED = {"base_blocks": (1, 2, 5, 3), "stem_kernel_t": 5}
MMACTION_FIXED = {"base_blocks": (1, 2, 5, 3), "stem_kernel_t": 5, "dim_c1": 12, "dim_c5": 2048, "se_ratio": 0.0625}


def _check(spec: ArchSpec, fixed: dict[str, Any], library: str) -> None:
    for key, value in fixed.items():
        have = getattr(spec, key)
        if (tuple(have) if isinstance(have, (list, tuple)) else have) != value:
            raise SpecError(f"{key}={have}: {library}'s X3D hard-codes {key}={value}; "
                            f"this model cannot be exported for {library}")


# ------------------------------------------------------------------ pytorchvideo
def pytorchvideo_kwargs(spec: ArchSpec, dropout: float = 0.5) -> dict[str, Any]:
    """Keyword arguments of ``pytorchvideo.models.x3d.create_x3d`` that build ``spec``."""
    _check(spec, PYTORCHVIDEO_FIXED, "pytorchvideo")
    return {
        "input_clip_length": int(spec.frames), "input_crop_size": int(spec.crop),
        "model_num_class": int(spec.num_classes), "dropout_rate": float(dropout),
        "width_factor": float(spec.width), "depth_factor": float(spec.depth),
        "bottleneck_factor": float(spec.bottleneck), "stem_dim_in": int(spec.dim_c1),
        "se_ratio": float(spec.se_ratio), "head_dim_out": int(spec.dim_c5),
    }


def pytorchvideo_export(spec: ArchSpec, fps: float = 30.0, dropout: float = 0.5) -> dict[str, Any]:
    """``create_x3d`` kwargs plus the clip sampling it does not take (stride, fps, test crop)."""
    return {"create_x3d": pytorchvideo_kwargs(spec, dropout),
            "clip": {"num_frames": int(spec.frames), "sampling_rate": int(spec.stride),
                     "target_fps": float(fps), "train_crop": int(spec.crop), "test_crop": test_crop_for(spec.crop)}}


def spec_from_pytorchvideo(export: dict[str, Any]) -> ArchSpec:
    try:
        kw, clip = export["create_x3d"], export["clip"]
        return ArchSpec(frames=int(kw["input_clip_length"]), stride=int(clip["sampling_rate"]),
                        crop=int(kw["input_crop_size"]), width=float(kw["width_factor"]),
                        bottleneck=float(kw["bottleneck_factor"]), depth=float(kw["depth_factor"]),
                        num_classes=int(kw["model_num_class"]), dim_c1=int(kw.get("stem_dim_in", 12)),
                        dim_c5=int(kw.get("head_dim_out", 2048)), se_ratio=float(kw.get("se_ratio", 0.0625)))
    except (KeyError, TypeError) as exc:
        raise SpecError(f"not a pytorchvideo export: missing {exc}") from None


# ------------------------------------------------------------------ mmaction2
def mmaction2_config(spec: ArchSpec, fps: float = 30.0, jitter: tuple[float, float] = (1.143, 1.429),
                     batch_size: int = 16, epochs: int = 300, lr: float = 0.1,
                     data: Optional[tuple[str, str, str]] = None) -> str:
    """An mmaction2 (1.x, mmengine) config for ``tools/train.py``: model, pipelines, schedule.

    ``data``: (a folder with train.csv and val.csv, the path prefix, the separator) — the run's
    videos as 'path label' lines, which mmaction2's VideoDataset splits on its ``delimiter`` into
    exactly two fields, as SlowFast does; without it the paths are placeholders that fail loudly.
    The schedule is the X3D recipe (cosine, warm-up, SGD 0.9, wd 5e-5) at ``batch_size`` per GPU.
    """
    _check(spec, MMACTION_FIXED, "mmaction2")
    if data is not None:
        folder, prefix, delimiter = data
        data_lines = (f"# the run's videos, as the search read them: 'path{delimiter}label' lines in {folder}\n"
                      f"data_root = {prefix!r}\ndata_root_val = {prefix!r}\n"
                      f"ann_file_train = {os.path.join(folder, 'train.csv')!r}\n"
                      f"ann_file_val = {os.path.join(folder, 'val.csv')!r}\n")
    else:
        delimiter = " "
        data_lines = ("# REQUIRED: your data. Annotation files are 'path label' lines (the same as SlowFast's csv).\n"
                      "data_root = 'REQUIRED/path/to/videos'\ndata_root_val = 'REQUIRED/path/to/videos'\n"
                      "ann_file_train = 'REQUIRED/path/to/train.csv'\nann_file_val = 'REQUIRED/path/to/val.csv'\n")
    test_crop = test_crop_for(spec.crop)
    short = (int(round(spec.crop * jitter[0])), int(round(spec.crop * jitter[1])))
    gamma_w = spec.width / 2
    set_paths = "" if data else " --cfg-options train_dataloader.dataset.ann_file=... (or edit the paths below)"
    return f'''# mmaction2 X3D config written by x3d-expand (mmaction2 1.x / mmengine); train it with
#   python tools/train.py THIS_FILE{set_paths}
# gamma_w is the paper's width factor: SlowFast's WIDTH_FACTOR {spec.width:g} / 2 = {gamma_w:g}.
# model: {spec.name} ({spec.frames}x{spec.stride}, crop {spec.crop})
default_scope = 'mmaction'

model = dict(
    type='Recognizer3D',
    backbone=dict(type='X3D', gamma_w={gamma_w!r}, gamma_b={float(spec.bottleneck)!r}, gamma_d={float(spec.depth)!r}),
    cls_head=dict(
        type='X3DHead',
        in_channels={int(spec.head_inner_width)},
        num_classes={int(spec.num_classes)},
        spatial_type='avg',
        dropout_ratio=0.5,
        fc1_bias=False,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[114.75, 114.75, 114.75],
        std=[57.38, 57.38, 57.38],
        format_shape='NCTHW'))

dataset_type = 'VideoDataset'
{data_lines}
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len={spec.frames}, frame_interval={spec.stride}, num_clips=1, target_fps={int(round(fps))}),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=({short[0]}, {short[1]})),
    dict(type='RandomCrop', size={spec.crop}),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len={spec.frames}, frame_interval={spec.stride}, num_clips=1, target_fps={int(round(fps))}, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, {test_crop})),
    dict(type='CenterCrop', crop_size={test_crop}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ann_file_train, data_prefix=dict(video=data_root),
                 delimiter={delimiter!r}, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size={batch_size}, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file_val, data_prefix=dict(video=data_root_val),
                 delimiter={delimiter!r}, pipeline=val_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs={epochs}, val_begin=1, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='SGD', lr={lr!r}, momentum=0.9, weight_decay=5e-5),
                     paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=35, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max={epochs - 35}, eta_min=0, by_epoch=True, begin=35, end={epochs})
]
auto_scale_lr = dict(enable=False, base_batch_size={batch_size * 8})

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'), timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20), param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, save_best='auto', max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'), sync_buffers=dict(type='SyncBuffersHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
'''


def read_mmaction2_config(text: str) -> dict[str, Any]:
    """The assignments of an mmaction2 config file, evaluated as literals (``dict(...)`` allowed)."""
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            return {kw.arg: value(kw.value) for kw in node.keywords}
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Name):
            return names.get(node.id, node.id)
        return ast.literal_eval(node)

    names: dict[str, Any] = {}
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            names[stmt.targets[0].id] = value(stmt.value)
    return names


def spec_from_mmaction2(cfg: dict[str, Any]) -> ArchSpec:
    """The ArchSpec an mmaction2 X3D config builds (γw converted back to WIDTH_FACTOR)."""
    try:
        backbone, head = cfg["model"]["backbone"], cfg["model"]["cls_head"]
        if backbone.get("type") != "X3D":
            raise SpecError(f"model.backbone.type is {backbone.get('type')!r}, not X3D")
        sample = next(s for s in cfg["train_pipeline"] if s["type"] == "SampleFrames")
        crop = next(s for s in cfg["train_pipeline"] if s["type"] == "RandomCrop")["size"]
        return ArchSpec(frames=int(sample["clip_len"]), stride=int(sample["frame_interval"]), crop=int(crop),
                        width=2 * float(backbone.get("gamma_w", 1.0)), bottleneck=float(backbone.get("gamma_b", 2.25)),
                        depth=float(backbone.get("gamma_d", 2.2)), num_classes=int(head["num_classes"]))
    except (KeyError, TypeError, StopIteration) as exc:
        raise SpecError(f"not an mmaction2 X3D config: missing {exc or 'a pipeline step'}") from None


__all__ = ["pytorchvideo_kwargs", "pytorchvideo_export", "spec_from_pytorchvideo", "mmaction2_config",
           "read_mmaction2_config", "spec_from_mmaction2"]
