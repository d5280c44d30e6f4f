"""The synthetic motion dataset: real H.264 files whose classes need time and resolution.

A camera pans horizontally over a scene: a dense smoothed-noise texture with
a few soft colour blobs and one 24 px patterned square, wrapping around at the
frame edge. The class is (direction, speed, pattern): pan left/right x slow
(2 px/frame at 30 fps) / fast (4 px/frame) x fine vertical stripes / fine
checkerboard (4 px period, both 50% fill). So:

* no single frame tells direction or speed - the texture is random and the
  pan wraps around - and both patterns have the same mean, so a one-frame
  network can at best tell the pattern: 2 of 8 classes, 25% top-1 (chance is
  12.5%);
* two frames at a suitable stride show direction and speed at every pixel of
  the texture: the temporal axes pay;
* the patterns differ only in 2 px detail, which a small crop blurs away: the
  spatial axis pays too;
* random colours, texture, blobs and per-frame noise keep it from being trivial.

Horizontal flips must stay off for this dataset: a flip changes the label.
The design went through two failed versions, kept in the README: a small
object moving over a flat background left the temporal models near chance,
because too few pixels carry the motion for a short schedule to learn it.
"""

from __future__ import annotations

from typing import Iterator

import json
import os
import re
from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("right", "left")
SPEEDS = {"slow": 2.0, "fast": 4.0}
PATTERNS = ("stripes", "checker")
OBJECT = 24
MIN_SIZE = 32  # room for the 24 px square to sit anywhere
MAX_SIZE = 1024  # the largest crop an X3D spec takes (expand.spec.CEILINGS)
MAX_CLIP_BYTES = 2 * 2**30  # a video is rendered whole in memory: frames x size^2 x 3 bytes
DATASET_VERSION = 5  # bump when the rendering changes: an old dataset is rewritten
PERIOD = 4
CLUTTER_BLOBS = 3
NOISE_STD = 6.0
TEXTURE_STD = 40.0


@dataclass(frozen=True)
class SynthConfig:
    out_dir: str
    classes: int = 8
    videos_per_class: int = 40
    val_per_class: int = 25
    frames: int = 48
    size: int = 128
    fps: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        from expand.errors import InputError

        if self.size < MIN_SIZE or self.size % 2:
            raise InputError(f"--size: must be an even number >= {MIN_SIZE} (the moving square is "
                             f"{OBJECT} px and 4:2:0 video needs even sizes), got {self.size}")
        if self.size > MAX_SIZE:
            raise InputError(f"--size: at most {MAX_SIZE} (the largest crop an X3D model takes), got {self.size}")
        if self.frames < 2:
            raise InputError(f"--frames: motion needs at least 2 frames, got {self.frames}")
        if self.frames * self.size ** 2 * 3 > MAX_CLIP_BYTES:
            raise InputError(f"--frames {self.frames} at --size {self.size}: each video is rendered in memory "
                             f"({self.frames * self.size ** 2 * 3 / 2**30:.1f} GiB, over "
                             f"{MAX_CLIP_BYTES / 2**30:.0f} GiB); use fewer frames or a smaller size")
        if not 1 <= self.fps <= 240 or self.fps != self.fps:
            raise InputError(f"--fps: must be in [1, 240], got {self.fps}")
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise InputError(f"{self.out_dir}: exists and is not a folder")


def class_names(n: int) -> list[str]:
    names = [f"{d}_{s}_{p}" for p in PATTERNS for s in SPEEDS for d in DIRECTIONS]
    if not 1 <= n <= len(names):
        from expand.errors import InputError

        raise InputError(f"--classes: must be between 1 and {len(names)}, got {n}")
    return names[:n]


def _pattern(kind: str, colour: np.ndarray, other: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:OBJECT, 0:OBJECT]
    if kind == "stripes":
        on = (xx // (PERIOD // 2)) % 2 == 0
    else:
        on = ((xx // (PERIOD // 2)) + (yy // (PERIOD // 2))) % 2 == 0
    return np.where(on[..., None], colour, other).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, blur: int = 3) -> np.ndarray:
    """Unit-std noise blurred by a periodic box filter (wraps, like the motion)."""
    noise = rng.normal(0, 1, (size, size, 3)).astype(np.float32)
    for axis in (0, 1):
        noise = sum(np.roll(noise, k, axis=axis) for k in range(-blur, blur + 1)) / (2 * blur + 1)
    return noise / max(float(noise.std()), 1e-6)


def render_video(name: str, rng: np.random.Generator, frames: int, size: int, fps: float) -> np.ndarray:
    """uint8 (T, size, size, 3) frames of one video of class ``name``."""
    direction, speed_name, pattern = name.split("_")
    speed = SPEEDS[speed_name] * 30.0 / fps  # pixels per frame at this frame rate
    yy, xx = np.mgrid[0:size, 0:size]
    background = np.full((size, size, 3), rng.uniform(60, 140, 3), dtype=np.float32)
    background += TEXTURE_STD * _smooth_noise(rng, size)  # motion shows at every pixel
    for _ in range(CLUTTER_BLOBS):  # clutter: soft blobs of random colour
        cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(6, 18)]
        mask = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        background += mask * (rng.uniform(0, 255, 3) - background) * 0.6
    colour, other = rng.uniform(150, 255, 3), rng.uniform(0, 90, 3)
    patch = _pattern(pattern, colour, other)
    x0 = rng.uniform(0, size)
    y = int(rng.integers(0, size - OBJECT))
    sign = 1.0 if direction == "right" else -1.0
    scene = background.copy()
    scene[y:y + OBJECT, (int(x0) + np.arange(OBJECT)) % size] = patch
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        img = np.roll(scene, int(round(x0 + sign * speed * t)), axis=1)  # the pan wraps around
        img += rng.normal(0, NOISE_STD, img.shape)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 of an RGB image, in integer arithmetic.

    Why not let FFmpeg convert: swscale picks SIMD paths by CPU and they are not
    bit-exact with each other, so the same frames encoded on two machines could
    differ. This is the conversion swscale's C path does, in numpy: every
    machine computes the same bytes. Returns PyAV's yuv420p layout, (H*3/2, W).
    """
    h, w = img.shape[:2]
    rgb = img.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # chroma of each 2x2 block from its mean colour (rounded), as 4:2:0 samples it
    q = (rgb.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3)) + 2) >> 2
    r2, g2, b2 = q[..., 0], q[..., 1], q[..., 2]
    u = ((-38 * r2 - 74 * g2 + 112 * b2 + 128) >> 8) + 128
    v = ((112 * r2 - 94 * g2 - 18 * b2 + 128) >> 8) + 128
    # PyAV reads the three planes back to back from the flat buffer: the chroma planes are
    # (H/2)*(W/2) values each, which fill whole rows of W only when H is a multiple of 4
    planes = [y.astype(np.uint8).ravel(), u.astype(np.uint8).ravel(), v.astype(np.uint8).ravel()]
    return np.concatenate(planes).reshape(h * 3 // 2, w)


def write_video(path: str, frames: np.ndarray, fps: float, codec: str = "libx264", gop: int | None = None,
                crf: int = 16) -> None:
    """Encode uint8 (T, H, W, 3) frames; the same frames give the same bytes on every machine.

    Three things made the bytes vary before (issue 14): no timestamps on the
    frames (x264's rate control then saw no frame durations), x264's thread
    count left on auto (frame threading changes the output with the number of
    cores), and FFmpeg's CPU-dependent colour conversion. Frames now carry
    pts 0, 1, 2, ... in a 1/fps time base, the encoder runs one thread, and
    the conversion is :func:`rgb_to_yuv420p`. H and W must be even (4:2:0).

    A fourth (2026-12-05): x264's hand-written assembly is picked per CPU; its
    AVX-512 routines gave different bytes from one call to the next in one
    process (their output depended on what memory held before: uninitialised
    reads), and its SIMD cost estimates are not bit-exact with its C code, so
    two CPUs could encode differently.
    x264 runs its C code (``asm=0``): the same bytes on every x86-64 machine
    with the same PyAV wheel, at about twice the encoding time (0.11 s for a
    48-frame 128 px clip).
    """
    write_video_stream(path, iter(frames), fps, codec=codec, gop=gop, crf=crf)


def write_video_stream(path: str, frames: Iterator[np.ndarray], fps: float, codec: str = "libx264",
                       gop: int | None = None, crf: int = 16, exact: bool = True) -> int:
    """:func:`write_video` from an iterator: one frame in memory at a time. Returns the frames written.

    An odd width or height is cropped by one pixel (4:2:0 needs even sizes).
    ``exact=False`` lets x264 use its assembly: twice as fast, but the bytes
    may differ between CPUs and, on AVX-512, between two writes (the h264
    frame store takes that; the synthetic dataset does not).
    """
    import av
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1000)
    n = 0
    with av.open(path, "w") as container:
        stream = None
        for img in frames:
            if stream is None:
                h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
                if h == 0 or w == 0:
                    raise ValueError(f"frame size {img.shape[1]}x{img.shape[0]} is too small to encode")
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height = w, h
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = 1 / rate  # frames count in 1/fps; the muxer keeps its own
                stream.codec_context.thread_count = 1
                stream.codec_context.thread_type = "NONE"
                if gop is not None:  # keyframe every ``gop`` frames (x264's default: 250)
                    stream.codec_context.gop_size = gop
                if codec == "libx264":
                    params = ["asm=0"] if exact else []
                    if gop:
                        params.append(f"keyint={gop}:min-keyint={gop}:scenecut=0")
                    stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1",
                                      **({"x264-params": ":".join(params)} if params else {})}
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(np.ascontiguousarray(img[:h, :w])), format="yuv420p")
            frame.pts = n
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
            n += 1
        if stream is None:
            raise ValueError("no frames to encode")
        for packet in stream.encode():
            container.mux(packet)
    return n


def _write_one(job: tuple) -> None:
    path, name, label, index, cfg = job
    video_rng = np.random.default_rng([cfg.seed, label, index])
    write_video(path, render_video(name, video_rng, cfg.frames, cfg.size, cfg.fps), cfg.fps)


def write_dataset(cfg: SynthConfig, workers: int = 1) -> dict:
    """Videos under OUT/videos/<class>/ and SlowFast manifests OUT/{train,val,test}.csv.

    ``test.csv`` lists the validation videos again: SlowFast's ``TEST`` phase
    reads it after training, and the synthetic set has no third split.

    Each video is seeded by (seed, class, index), so the files are the same
    whatever the number of worker processes; an existing dataset written with
    the same settings is left as it is.
    """
    names = class_names(cfg.classes)
    rng = np.random.default_rng(cfg.seed)
    rows: dict[str, list[str]] = {"train": [], "val": []}
    jobs = []
    for label, name in enumerate(names):
        for i in range(cfg.videos_per_class + cfg.val_per_class):
            split = "train" if i < cfg.videos_per_class else "val"
            rel = os.path.join("videos", name, f"{split}_{i:04d}.mp4")
            jobs.append((os.path.join(cfg.out_dir, rel), name, label, i, cfg))
            rows[split].append(f"{rel} {label}")
    rng.shuffle(rows["train"])
    meta = {"classes": names, "chance": 1 / len(names), "one_frame_ceiling": min(1.0, 2 / len(names)),
            "train": len(rows["train"]), "val": len(rows["val"]), "frames": cfg.frames,
            "size": cfg.size, "fps": cfg.fps, "seed": cfg.seed, "version": DATASET_VERSION}
    meta_path = os.path.join(cfg.out_dir, "dataset.json")
    rows["test"] = rows["val"]
    if _up_to_date(meta_path, meta, [j[0] for j in jobs]):
        _write_manifests(cfg.out_dir, rows)  # a dataset written before test.csv existed gains it
        return dict(meta, up_to_date=True)
    _refuse_foreign_manifests(cfg.out_dir)
    try:
        for name in names:
            os.makedirs(os.path.join(cfg.out_dir, "videos", name), exist_ok=True)
    except OSError as exc:  # a parent that is a file, no permission, a read-only mount
        from expand.errors import InputError

        raise InputError(f"{cfg.out_dir}: cannot create the dataset folder: {exc.strerror}") from None
    if os.path.exists(meta_path):
        os.remove(meta_path)  # a half-rewritten dataset must not look up to date
    if workers > 1:
        from expand.pools import process_pool

        with process_pool(workers) as pool:
            list(pool.map(_write_one, jobs))  # chunksize 1: see expand.pools
    else:
        for job in jobs:
            _write_one(job)
    _write_manifests(cfg.out_dir, rows)
    with open(meta_path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
    return meta


_OURS = re.compile(r"videos/[a-z_]+/(train|val)_\d{4}\.mp4 \d+")


def _refuse_foreign_manifests(out_dir: str) -> None:
    """A train/val/test.csv this command did not write is a real dataset's: ``data synth data/k400``
    by mistake overwrote its manifests. Ours are known by their lines (a dataset.json may be gone:
    a rewrite removes it first)."""
    for split in ("train", "val", "test"):
        path = os.path.join(out_dir, f"{split}.csv")
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                foreign = next((line.rstrip("\n") for line in fh if line.strip() and not _OURS.fullmatch(line.strip())),
                               None)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        if foreign is not None:
            from expand.errors import InputError

            raise InputError(f"{path}: a manifest data synth did not write ({foreign[:60]!r}); give a new folder "
                             "for the synthetic dataset (nothing was written)")


def _write_manifests(out_dir: str, rows: dict[str, list[str]]) -> None:
    for split, lines in rows.items():
        path, text = os.path.join(out_dir, f"{split}.csv"), "\n".join(lines) + "\n"
        try:
            with open(path, encoding="utf-8") as fh:
                if fh.read() == text:
                    continue
        except OSError:
            pass
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def _up_to_date(meta_path: str, meta: dict, paths: list[str]) -> bool:
    try:
        with open(meta_path, encoding="utf-8") as fh:
            if json.load(fh) != meta:
                return False
    except (OSError, ValueError):
        return False
    return all(os.path.isfile(p) and os.path.getsize(p) > 0 for p in paths)
