"""Data at Kinetics scale: clips/s per core and bytes per video of every way to get a clip, cold and warm.

Generates Kinetics-shaped videos with PyAV (10 s; 340x256 and 640x360; 25 and
30 fps; H.264 at CRF 23 with x264's default GOP of 250, as the usual
Kinetics download scripts write them; textured, panning content with moving
objects and sensor noise, so they compress like footage rather than like flat
colour), then measures side by side, in one run, one process:

  naive      decode the whole source video, then sample the clip (a loader without a cache)
  stream     seek to the keyframe before the clip in the source, decode to its end (cache off)
  jpeg/h264/npy  the frame cache's stores (expand/data/store.py)

for X3D-XS (4 x 12 @ 160) and X3D-M (16 x 5 @ 224) training clips. Each store
is built at the short side that sampling needs (crop x 1.43, the largest
train jitter; never upscaled). "cold": before every clip the files it reads
are dropped from the page cache (fsync, then posix_fadvise DONTNEED), as for a
dataset bigger than RAM; "warm": read again from memory. clips/s per core is
clips per CPU-second of this process (decoder threads included).

Then the peak RSS of building the cache for a long 1080p video (in a child
process), and the projected size and build time of a Kinetics-400 train cache
(234,619 ten-second videos).

    python benchmarks/data_scale.py                      # 8 videos, 10-minute 1080p RSS check
    python benchmarks/data_scale.py --videos 4 --long-seconds 60
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

KINETICS_TRAIN_VIDEOS = 234_619
SAMPLINGS = {"X3D-XS 4x12@160": (4, 12, 160), "X3D-M 16x5@224": (16, 5, 224)}
JITTER_MAX = 1.43  # SlowFast X3D train jitter: short side up to crop x 1.43 (224 -> 320)
SHAPES = [(340, 256, 30.0), (340, 256, 25.0), (640, 360, 30.0), (640, 360, 25.0)]


def footage(width: int, height: int, n: int, fps: float, seed: int):
    """Frames that compress like real video: a panned textured scene, moving objects, sensor noise."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    big_h, big_w = height + 64, width + 64
    coarse = torch.from_numpy(rng.random((1, 3, big_h // 16, big_w // 16), dtype=np.float32))
    scene = F.interpolate(coarse, size=(big_h, big_w), mode="bicubic", align_corners=False)[0]
    fine = torch.from_numpy(rng.random((3, big_h // 2, big_w // 2), dtype=np.float32))[None]
    scene = 0.75 * scene + 0.25 * F.interpolate(fine, size=(big_h, big_w), mode="bilinear", align_corners=False)[0]
    scene = (scene.clamp(0, 1) * 255).permute(1, 2, 0).numpy().astype(np.uint8)
    objects = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-3, 3), rng.uniform(-2, 2),
                int(rng.integers(20, 60)), rng.integers(0, 256, 3)) for _ in range(3)]
    # sensor noise (std 2 levels), from a few precomputed fields: a 1080p frame of fresh
    # Gaussian noise costs more than encoding it
    noise = [np.clip(rng.normal(0, 2.0, (height, width, 3)), -8, 8).astype(np.int16) for _ in range(7)]
    for k in range(n):
        t = k * 30.0 / fps
        dx, dy = int(32 + 30 * np.sin(t / 90)), int(32 + 20 * np.cos(t / 70))
        frame = scene[dy:dy + height, dx:dx + width].copy()
        for x0, y0, vx, vy, r, color in objects:
            x, y = int(x0 + vx * t) % width, int(y0 + vy * t) % height
            frame[max(0, y - r):y + r, max(0, x - r):x + r] = color
        yield np.clip(frame.astype(np.int16) + noise[k % len(noise)], 0, 255).astype(np.uint8)


def write_kinetics_like(path: str, width: int, height: int, fps: float, seconds: float, seed: int,
                        fast: bool = False) -> None:
    """``fast``: x264 ultrafast, and the footage's first 10 s looped (for the long RSS video)."""
    import itertools

    import av
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    n = int(round(seconds * fps))
    frames = footage(width, height, n, fps, seed)
    if fast:
        loop = list(footage(width, height, min(n, int(10 * fps)), fps, seed))
        frames = itertools.islice(itertools.cycle(loop), n)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast" if fast else "medium"}
        for k, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = None
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def drop_from_page_cache(paths) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def clip_positions(n_frames: int, frames: int, stride: int, rng: random.Random) -> np.ndarray:
    span = (frames - 1) * stride + 1
    start = rng.randint(0, max(0, n_frames - span))
    return np.clip(start + np.arange(frames) * stride, 0, n_frames - 1)


def measure(read_clip, jobs, files_of, cold: bool) -> tuple[float, float]:
    """(clips/s wall, clips/s per CPU-second) over ``jobs``; ``read_clip(job)`` returns the frames."""
    wall = cpu = 0.0
    for job in jobs:
        if cold:
            drop_from_page_cache(files_of(job))
        t, c = time.perf_counter(), time.process_time()
        read_clip(job)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
    return len(jobs) / wall, len(jobs) / max(cpu, 1e-9)


def rss_child(video: str, cache_dir: str, short_side: int, fmt: str) -> tuple[float, float]:
    """Peak RSS (MB) and seconds of building one cache entry in a fresh process."""
    # VmHWM, not ru_maxrss: the latter survives exec, so a child forked from a big parent reports its size
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from expand.data.cache import FrameCache\n"
            "t = time.perf_counter()\n"
            "e = FrameCache(%r, 30.0, %d, %r).build_one(%r)\n"
            "assert not e.error, e.error\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(int(hwm) / 1024, time.perf_counter() - t)"
            % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), cache_dir, short_side, fmt, video))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8, help="Kinetics-shaped videos (cycling the 4 shapes)")
    ap.add_argument("--clips", type=int, default=24, help="clips per method, sampling and temperature")
    ap.add_argument("--naive-clips", type=int, default=8)
    ap.add_argument("--long-seconds", type=float, default=600.0, help="the 1080p video of the RSS check")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--part", choices=["all", "throughput", "rss"], default="all",
                    help="throughput (the table, on an idle machine) and/or rss (the long video; timing-insensitive)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = args.workdir or tempfile.mkdtemp(prefix="x3d-data-scale-")
    os.makedirs(work, exist_ok=True)
    if args.part in ("all", "throughput"):
        throughput(args, work)
    if args.part in ("all", "rss"):
        long_video_rss(args, work)


def throughput(args: argparse.Namespace, work: str) -> None:
    from expand.data.cache import FrameCache
    from expand.data.store import StreamFrames
    from expand.data.video import decode_video, probe

    videos = []
    t0 = time.perf_counter()
    for i in range(args.videos):
        w, h, fps = SHAPES[i % len(SHAPES)]
        path = os.path.join(work, f"k{i}_{w}x{h}_{fps:g}.mp4")
        if not os.path.exists(path):
            write_kinetics_like(path, w, h, fps, 10.0, seed=i)
        videos.append(path)
    src_bytes = {v: os.path.getsize(v) for v in videos}
    print(f"{len(videos)} Kinetics-shaped videos in {work} ({time.perf_counter() - t0:.0f} s to write), "
          f"{np.mean(list(src_bytes.values())) / 1e6:.2f} MB each on average")
    info = {v: probe(v) for v in videos}

    rows, sizes = [], {}
    for label, (frames, stride, crop) in SAMPLINGS.items():
        short = int(np.ceil(crop * JITTER_MAX))
        rng = random.Random(0)
        jobs = [(v, clip_positions(info[v].frames_at(30.0), frames, stride, rng))
                for v in (videos * args.clips)[:args.clips]]
        methods = {}
        methods["naive"] = (lambda job, s=short: decode_video(job[0], 30.0)[job[1]],
                            lambda job: [job[0]], jobs[:args.naive_clips])
        methods["stream"] = (lambda job, s=short: StreamFrames(job[0], 30.0, s).read(job[1]),
                             lambda job: [job[0]], jobs)
        for fmt in ("jpeg", "h264", "npy"):
            cache = FrameCache(os.path.join(work, f"cache-{fmt}-{short}"), 30.0, short, fmt)
            t = time.process_time()
            cache.build(videos)
            build_cpu = time.process_time() - t
            entries = {v: cache.entry_path(v) for v in videos}
            sizes[(label, fmt)] = (sum(os.path.getsize(e) for e in entries.values()) / sum(src_bytes.values()),
                                   np.mean([os.path.getsize(e) for e in entries.values()]), build_cpu / len(videos))
            opened = {v: cache.get(v).frames for v in videos}
            methods[fmt] = (lambda job, o=opened: o[job[0]].read(job[1]),
                            lambda job, e=entries: [e[job[0]]], jobs)
        for name, (read, files_of, js) in methods.items():
            cold = measure(read, js, files_of, cold=True)
            warm = measure(read, js, files_of, cold=False)
            rows.append((label, name, cold, warm))
    naive = {label: next(r[2][1] for r in rows if r[0] == label and r[1] == "naive") for label in SAMPLINGS}
    print("\nclips/s per core (wall clips/s in brackets), 1 process, torch 1 thread; x: per core vs naive, cold")
    print(f"{'sampling':18} {'method':7} {'cold':>18} {'warm':>18} {'cold x naive':>13}")
    for label, name, cold, warm in rows:
        print(f"{label:18} {name:7} {cold[1]:8.1f} ({cold[0]:7.1f}) {warm[1]:8.1f} ({warm[0]:7.1f}) "
              f"{cold[1] / naive[label]:12.1f}x")
    print(f"\ncache bytes (all {len(videos)} videos) / source bytes, mean entry size, build CPU-s per video")
    for (label, fmt), (ratio, mean, cpu) in sizes.items():
        print(f"{label:18} {fmt:5} {ratio:6.2f}x  {mean / 1e6:7.2f} MB  {cpu:6.2f} s")
    for label in SAMPLINGS:
        for fmt in ("jpeg", "h264"):
            ratio, mean, cpu = sizes[(label, fmt)]
            small = [v for v in videos if "340x256" in v]
            per_video = mean if not small else np.mean([os.path.getsize(
                FrameCache(os.path.join(work, f"cache-{fmt}-{int(np.ceil(SAMPLINGS[label][2] * JITTER_MAX))}"),
                           30.0, int(np.ceil(SAMPLINGS[label][2] * JITTER_MAX)), fmt).entry_path(v)) for v in small])
            print(f"projected Kinetics-400 train cache ({label}, {fmt}, 340x256 sources): "
                  f"{per_video * KINETICS_TRAIN_VIDEOS / 1e12:.2f} TB, "
                  f"{cpu * KINETICS_TRAIN_VIDEOS / 3600:.0f} CPU-hours to build")



def long_video_rss(args: argparse.Namespace, work: str) -> None:
    long_path = os.path.join(work, f"long_1080p_{args.long_seconds:g}s.mp4")
    if not os.path.exists(long_path):
        t = time.perf_counter()
        write_kinetics_like(long_path, 1920, 1080, 30.0, args.long_seconds, seed=99, fast=True)
        print(f"\nwrote a {args.long_seconds:g} s 1080p video ({os.path.getsize(long_path) / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t:.0f} s")
    for fmt in ("jpeg", "h264"):
        d = os.path.join(work, f"cache-long-{fmt}")
        shutil.rmtree(d, ignore_errors=True)
        rss, secs = rss_child(long_path, d, 320, fmt)
        print(f"peak RSS building the {fmt} cache entry of the {args.long_seconds:g} s 1080p video "
              f"(short side 320): {rss:.0f} MB ({secs:.0f} s)")
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
