"""``data synth``, ``data check`` and ``data cache``."""

from __future__ import annotations

import argparse
import dataclasses
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


# a Kinetics download misses ~5-10 % of its 300 k clips (deleted from YouTube): a line each buried the summary
SHOWN_SKIPS = 20


def check_cmd(args: argparse.Namespace) -> int:
    from expand.console import CountProgress
    from expand.data.checks import check_all, check_splits, save_record
    from expand.data.manifest import Item, class_counts

    from expand.config.settings import settings_from

    splits = check_splits(args.target, args.num_classes, settings_from(args.settings))
    unique = list(dict.fromkeys(i.path for s in splits for i in s.items))  # val and test may share videos
    progress = CountProgress(len(unique), "checking videos", enabled=not args.json)
    results = check_all(splits[0].root, unique, workers=args.workers or max(1, os.cpu_count() or 1),
                        on_done=progress)
    by_root: dict[str, dict[str, dict]] = {}  # train/val/test of one folder share its record: write it once
    for s in splits:
        by_root.setdefault(s.root, {}).update({i.path: results[i.path] for i in s.items})
    recorded = sorted(p for p in (save_record(root, found) for root, found in by_root.items()) if p)
    report, bad = {}, {}
    for s in splits:
        files = [{"path": i.path, "label": i.label, **results[i.path]} for i in s.items]
        ok = [f for f in files if f["ok"]]
        per_class = class_counts([Item(f["path"], f["label"]) for f in ok])
        reasons: dict[str, int] = {}
        for f in files:
            if not f["ok"]:
                key = f["reason"].split(":")[0]
                reasons[key] = reasons.get(key, 0) + 1
                bad[f["path"]] = f["reason"]
        report[s.name] = {"videos": len(files), "readable": len(ok), "skipped": len(files) - len(ok),
                          "reasons": reasons, "classes": len(per_class),
                          "videos_per_class_min": min(per_class.values(), default=0),
                          "videos_per_class_max": max(per_class.values(), default=0), "files": files}
    readable = sum(r["readable"] for r in report.values())
    if args.json:
        print(json_line({"target": args.target, "splits": report, "recorded": recorded}))
    else:
        for name, r in report.items():
            print(f"{name}: {r['readable']} readable, {r['skipped']} skipped; {r['classes']} classes, "
                  f"{r['videos_per_class_min']}-{r['videos_per_class_max']} readable videos per class")
        for path, reason in list(bad.items())[:SHOWN_SKIPS]:
            print(f"  skip {path}: {reason}")
        cut = {path: res["cut_off"] for path, res in results.items() if res.get("cut_off")}
        if cut:
            print(f"  {len(cut)} video(s) cut off (an interrupted download?): trials read them as far as "
                  "they decode; e.g.")
            for path, what in list(cut.items())[:SHOWN_SKIPS // 4]:
                print(f"    {path}: {what}")
        if len(bad) > SHOWN_SKIPS:
            totals: dict[str, int] = {}
            for reason in bad.values():
                totals[reason.split(":")[0]] = totals.get(reason.split(":")[0], 0) + 1
            why = ", ".join(f"{k} {n}" for k, n in totals.items())
            print(f"  ... and {len(bad) - SHOWN_SKIPS} more skipped ({len(bad)} in all: {why}; --json lists every file)")
        print(f"recorded in {', '.join(recorded)}" if recorded else "not recorded (the dataset folder is not writable)")
    if readable == 0:
        raise DataError(f"{args.target}: no readable video")
    return 0


def cache_cmd(args: argparse.Namespace) -> int:
    from expand.config.settings import settings_from
    from expand.data.cache import estimate, room_error
    from expand.data.dataset import open_cache, prepare_split
    from expand.data.manifest import split_items
    from expand.preflight import configured

    exp = configured(args.experiment, {}, settings_from(args.settings))
    if not exp.data.root:
        raise DataError(f"{args.experiment}: data.root is not set: the experiment reads no videos")
    if exp.data.cache == "off":
        raise DataError(f"{args.experiment}: data.cache is off: nothing to build")
    if args.address:
        return _cache_on_cluster(args, exp)
    workers = args.workers or max(1, os.cpu_count() or 1)
    cache = open_cache(exp.data, exp.search_space)
    assert cache is not None
    splits = ("train", "val", "minival") if exp.data.minival else ("train", "val")
    paths = [i.path for split in splits for i in split_items(exp.data, split)]
    plan = estimate(cache, paths, workers)
    if not args.json:
        print(f"cache {cache.directory} ({cache.format}, short side {cache.short_side}): {plan.describe(workers)}",
              flush=True)
    full = room_error(cache.directory, plan.bytes, plan.free_bytes, plan.sampled)
    if full:
        raise DataError(full)
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


def _cache_on_cluster(args: argparse.Namespace, exp) -> int:
    """``data cache --address``: each node of a Ray cluster builds its own cache (expand/search/node_cache.py)."""
    import ray

    from expand.search import node_cache, nodes

    nodes.check_address(args.address)
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        job = node_cache.CacheJob.of(exp)
        if job is None:
            raise DataError(f"{args.experiment}: no data.root: nothing to build")
        line = nodes.summary(nodes.require_nodes(nodes.Requirements.of(exp)))  # exit 2: a node without the data
        if not args.json and line:
            print(line, flush=True)
        say = (lambda text: None) if args.json else (lambda text: print(text, flush=True))
        reports = node_cache.build_on_nodes(job, workers=args.workers, say=say,
                                            progress=not args.json)
    finally:
        ray.shutdown()
    if args.json:
        print(json_line({"nodes": [dataclasses.asdict(r) for r in reports]}))
    else:
        print(node_cache.summary(reports))
    return 0
