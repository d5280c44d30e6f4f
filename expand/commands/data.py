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

    target = args.manifest_or_dir
    if os.path.isdir(target):
        items, _ = read_folder_dataset(target)
    elif os.path.isfile(target):
        items = read_csv_manifest(target, num_classes=args.num_classes)
    else:
        raise DataError(f"{target}: no such manifest or folder")
    from expand.data.checks import check_all, save_record

    root = target if os.path.isdir(target) else os.path.dirname(os.path.abspath(target))
    results = check_all(root, [i.path for i in items], workers=max(1, os.cpu_count() or 1),
                        on_done=None if args.json else _check_progress)
    files = [{"path": i.path, "label": i.label, **results[i.path]} for i in items]
    recorded = save_record(root, results)  # trials with the cache off read this instead of decoding
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
              f"{classes['videos_per_class_min']}-{classes['videos_per_class_max']} readable videos per class"
              + (f"; recorded in {recorded}" if recorded else "; not recorded (the folder is not writable)"))
        for f in files:
            if not f["ok"]:
                print(f"  skip {f['path']}: {f['reason']}")
    if readable == 0:
        raise DataError(f"{target}: no readable video")
    return 0


CACHE_HEADROOM = 1.1  # the estimate is refused unless this much of it fits (it is a sample's estimate)


def _check_progress(done: int, total: int) -> None:
    import sys

    if done == total or done % max(1, total // 20) == 0:
        print(f"\r  checking {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def cache_cmd(args: argparse.Namespace) -> int:
    from expand.config import load_experiment
    from expand.data.cache import estimate
    from expand.data.dataset import open_cache, prepare_split
    from expand.data.manifest import split_items

    exp = load_experiment(args.experiment)
    workers = args.workers or max(1, os.cpu_count() or 1)
    cache = open_cache(exp.data, exp.search_space)
    if cache is None:
        raise DataError(f"{args.experiment}: data.cache is off: nothing to build")
    splits = ("train", "val", "minival") if exp.data.minival else ("train", "val")
    paths = [i.path for split in splits for i in split_items(exp.data, split)]
    plan = estimate(cache, paths, workers)
    if not args.json:
        print(f"cache {cache.directory} ({cache.format}, short side {cache.short_side}): {plan.describe(workers)}",
              flush=True)
    if plan.bytes * CACHE_HEADROOM > plan.free_bytes:
        raise DataError(f"{cache.directory}: the cache needs ~{plan.bytes / 1e9:.2f} GB more "
                        f"(estimated from {plan.sampled} videos) but only {plan.free_bytes / 1e9:.2f} GB are free; "
                        "free space, set data.cache to a bigger disk, or lower data.cache_quality")
    summary = {"estimate": {"videos": plan.videos, "bytes": plan.bytes, "seconds": plan.seconds,
                            "free_bytes": plan.free_bytes}}
    for split in splits:
        good, skipped, cache = prepare_split(exp.data, exp.search_space, split, workers=workers,
                                             progress=not args.json)
        summary[split] = {"readable": len(good), "skipped": len(skipped),
                          "cache": cache.directory if cache else None}
    if args.json:
        print(json_line(summary))
    else:
        for split in splits:
            s = summary[split]
            print(f"{split}: {s['readable']} cached, {s['skipped']} skipped -> {s['cache']}")
    return 0
