"""``data synth``, ``data check`` and ``data cache``."""

from __future__ import annotations

import argparse
import os

from expand.errors import DataError
from expand.tables import json_line


def synth_cmd(args: argparse.Namespace) -> int:
    from expand.data.synth import SynthConfig, write_dataset

    meta = write_dataset(SynthConfig(args.out_dir, args.classes, args.videos_per_class,
                                     args.val_per_class, args.frames, args.size, args.fps, args.seed),
                         workers=args.workers)
    if args.json:
        print(json_line(meta))
    else:
        verb = "up to date:" if meta.get("up_to_date") else "wrote"
        print(f"{verb} {meta['train']} train + {meta['val']} val videos to {args.out_dir} "
              f"({len(meta['classes'])} classes, chance {100 * meta['chance']:.1f}%, one-frame "
              f"ceiling {100 * meta['one_frame_ceiling']:.1f}%)")
    return 0


def check_cmd(args: argparse.Namespace) -> int:
    from expand.data.manifest import Item, class_counts, read_csv_manifest, read_folder_dataset
    from expand.data.video import VideoError, probe_video

    target = args.manifest_or_dir
    if os.path.isdir(target):
        items, _ = read_folder_dataset(target)
    elif os.path.isfile(target):
        items = read_csv_manifest(target, num_classes=args.num_classes)
    else:
        raise DataError(f"{target}: no such manifest or folder")
    files = []
    for item in items:
        try:
            info = probe_video(item.path)
            files.append({"path": item.path, "label": item.label, "ok": True, **info})
        except VideoError as exc:
            files.append({"path": item.path, "label": item.label, "ok": False, "reason": str(exc)})
    readable = sum(f["ok"] for f in files)
    per_class = class_counts([Item(f["path"], f["label"]) for f in files if f["ok"]])
    classes = {"classes": len(per_class), "videos_per_class_min": min(per_class.values(), default=0),
               "videos_per_class_max": max(per_class.values(), default=0)}
    reasons: dict[str, int] = {}
    for f in files:
        if not f["ok"]:
            reasons[f["reason"].split(":")[0]] = reasons.get(f["reason"].split(":")[0], 0) + 1
    if args.json:
        print(json_line({"readable": readable, "skipped": len(files) - readable, "reasons": reasons,
                         **classes, "files": files}))
    else:
        print(f"{readable} readable, {len(files) - readable} skipped; {classes['classes']} classes, "
              f"{classes['videos_per_class_min']}-{classes['videos_per_class_max']} readable videos per class")
        for f in files:
            if not f["ok"]:
                print(f"  skip {f['path']}: {f['reason']}")
    if readable == 0:
        raise DataError(f"{target}: no readable video")
    return 0


def cache_cmd(args: argparse.Namespace) -> int:
    from expand.config import load_experiment
    from expand.data.dataset import prepare_split

    exp = load_experiment(args.experiment)
    workers = args.workers or max(1, os.cpu_count() or 1)
    summary = {}
    for split in ("train", "val"):
        good, skipped, cache = prepare_split(exp.data, exp.search_space, split, workers=workers,
                                             progress=not args.json)
        summary[split] = {"readable": len(good), "skipped": len(skipped),
                          "cache": cache.directory if cache else None}
    if args.json:
        print(json_line(summary))
    else:
        for split, s in summary.items():
            print(f"{split}: {s['readable']} cached, {s['skipped']} skipped -> {s['cache']}")
    return 0
