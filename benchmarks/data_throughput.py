"""Is data ever what a trial waits on? Clips/s of the three ways to get a clip, in one run.

1. naive: decode the whole video with PyAV for every clip, then sample the clip;
2. cache: the same clips from the frame cache (the experiment's data.cache_format);
3. the DataLoader the trainer uses (cache, workers) against the training step
   of a model, so the ratio says whether the step waits on data.

2 and 3 are measured cold (the cache's files dropped from the page cache first:
fsync + posix_fadvise DONTNEED, as for a dataset bigger than RAM) and warm. The
same videos and clip positions are used for 1 and 2. Goals: cache >= 5x naive,
loader / step >= 2 with cold files.

    python benchmarks/data_throughput.py                          # experiments/synthetic_tiny.yaml
    python benchmarks/data_throughput.py --experiment my.yaml --clips 64 --workers 2
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # expand, and benchmarks.*

import torch  # noqa: E402

from expand.config import load_experiment  # noqa: E402
from expand.data.clips import sample_clips  # noqa: E402
from expand.data.dataset import ClipDataset, make_loader, prepare_split  # noqa: E402
from expand.data.video import decode_video  # noqa: E402
from expand.models.x3d import build_x3d  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _clip(frames, spec, data, seed):
    return sample_clips(frames, spec.frames, spec.stride, spec.crop, "train", random.Random(seed),
                        jitter=data.jitter, hflip=data.hflip, mean=data.mean, std=data.std)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=os.path.join(ROOT, "experiments", "synthetic_tiny.yaml"))
    ap.add_argument("--clips", type=int, default=48, help="clips for the naive/cache comparison")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the experiment's)")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    exp = load_experiment(args.experiment, check_paths=False)
    data, spec = exp.data, exp.search_space.basis
    if not os.path.isfile(os.path.join(data.root, data.train)):
        from expand.data.synth import SynthConfig, write_dataset

        tmp = tempfile.mkdtemp(prefix="x3d-data-bench-")
        write_dataset(SynthConfig(tmp, videos_per_class=6, val_per_class=1), workers=2)
        data = replace(data, root=tmp, cache=os.path.join(tmp, "cache"))
        print(f"(no dataset at {exp.data.root}: wrote a small synthetic one to {tmp})")
    items, _, cache = prepare_split(data, exp.search_space, "train", workers=2)
    assert cache is not None, "the benchmark needs the frame cache on (data.cache)"
    picks = [items[i % len(items)] for i in range(args.clips)]

    t0 = time.perf_counter()
    for i, item in enumerate(picks):
        _clip(decode_video(item.path, data.fps, cache.short_side), spec, data, i)
    naive = args.clips / (time.perf_counter() - t0)

    from benchmarks.data_scale import drop_from_page_cache
    from expand.config import loader_workers

    entries = [cache.entry_path(i.path) for i in items]
    cached = {}
    for temp in ("cold", "warm"):
        if temp == "cold":
            drop_from_page_cache(entries)
        t0 = time.perf_counter()
        for i, item in enumerate(picks):
            _clip(cache.get(item.path).frames, spec, data, i)
        cached[temp] = args.clips / (time.perf_counter() - t0)

    workers = loader_workers(exp.trial.workers, exp.resources.cpus_per_trial) if args.workers is None \
        else args.workers
    bs = exp.schedule.batch_size
    loader_rate = {}
    for temp in ("cold", "warm"):
        if temp == "cold":
            drop_from_page_cache(entries)
        ds = ClipDataset(items, cache, data, spec.frames, spec.stride, spec.crop, "train", 0)
        loader = make_loader(ds, bs, True, workers, torch.device("cpu"), 0, drop_last=True)
        n, t0 = 0, None
        while n < args.batches:
            for x, _ in loader:
                if t0 is None:  # the first batch includes worker start-up
                    t0 = time.perf_counter()
                    continue
                n += 1
                if n >= args.batches:
                    break
        loader_rate[temp] = n * bs / (time.perf_counter() - t0)

    model = build_x3d(spec, num_classes=data.num_classes).to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(bs, 3, spec.frames, spec.crop, spec.crop).contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, data.num_classes, (bs,))
    for i in range(args.batches + 2):
        if i == 2:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_rate = args.batches * bs / (time.perf_counter() - t0)

    print(f"data throughput: {spec.name}, {len(items)} train videos, {args.clips} clips, "
          f"{args.threads} torch threads, loader workers {workers}, batch {bs}")
    print(f"  naive PyAV decode per clip : {naive:9.1f} clips/s")
    for temp in ("cold", "warm"):
        print(f"  frame cache ({cache.format}, {temp}) : {cached[temp]:9.1f} clips/s   "
              f"cache / naive = {cached[temp] / naive:.1f}x")
    print(f"  training step of the model : {step_rate:9.1f} clips/s")
    for temp in ("cold", "warm"):
        print(f"  DataLoader ({temp}, as in trials): {loader_rate[temp]:9.1f} clips/s   "
              f"loader / step = {loader_rate[temp] / step_rate:.2f}")


if __name__ == "__main__":
    main()
