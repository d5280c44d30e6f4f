"""Torch Dataset/DataLoader over cached frames, and split preparation with skip lists."""

from __future__ import annotations

import csv
import math
import os
import random
from collections import OrderedDict
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from expand.config import DataConfig, SearchSpace
from expand.data.cache import FrameCache, default_cache_dir
from expand.data.clips import sample_clips
from expand.data.manifest import Item, split_items
from expand.errors import DataError

OPEN_ENTRIES = 512
# A forked DataLoader worker's copies of the entries its parent had open. Used, they hung the
# worker: an open video's decoder and scaler thread pools are the parent's threads, which a
# forked child does not have (FFmpeg waited on them in swscale). Freed, closing them would wait
# on the same threads. So a worker sets them aside, unused and never freed (it exits with
# os._exit), and opens its own. A parent that reads its dataset before the loader forks
# (a clip checked by hand, a precise-BN pass) is then safe.
_INHERITED: list = []


def cache_short_side(data: DataConfig, space: SearchSpace) -> int:
    """Short side the cache keeps: the largest crop the search can reach, with jitter."""
    max_crop = space.bounds.of("crop")[1]
    return int(math.ceil(max_crop * max(data.jitter[1], data.test_crop_ratio)))


def open_cache(data: DataConfig, space: SearchSpace) -> FrameCache | None:
    if data.cache == "off":
        return None
    directory = default_cache_dir(data.root) if data.cache == "auto" else data.cache
    return FrameCache(directory, data.fps, cache_short_side(data, space), data.cache_format, data.cache_quality)


def prepare_split(
    data: DataConfig, space: SearchSpace, split: str, workers: int = 1, progress: bool = False,
    skipped_csv: str | None = None,
) -> tuple[list[Item], list[tuple[str, str]], FrameCache | None]:
    """Readable items of a split (train, val, minival), the skipped ones with reasons, and their cache."""
    items = split_items(data, split)
    cache = open_cache(data, space)
    if cache is not None:
        errors = cache.build([i.path for i in items], workers=workers, progress=progress)
    else:  # readability as `data check` recorded it; files it has not seen are probed (no full decode)
        from expand.data.checks import readable

        errors = readable(data.root, [i.path for i in items])
    skipped = [(i.path, errors[i.path]) for i in items if i.path in errors]
    good = [i for i in items if i.path not in errors]
    if skipped_csv:
        os.makedirs(os.path.dirname(skipped_csv) or ".", exist_ok=True)
        with open(skipped_csv, "a", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            for path, reason in skipped:
                w.writerow([split, path, reason])
    if not good:
        raise DataError(f"{split} split of {data.root}: no readable video ({len(skipped)} skipped)")
    return good, skipped, cache


class ClipDataset(Dataset):
    """(clips, label) pairs: clips is C x T x H x W (train) or V x C x T x H x W (val views)."""

    def __init__(self, items: list[Item], cache: FrameCache | None, data: DataConfig,
                 frames: int, stride: int, crop: int, mode: str, seed: int = 0) -> None:
        self.items, self.cache, self.data = items, cache, data
        self.frames, self.stride, self.crop, self.mode = frames, stride, crop, mode
        self.seed = seed
        self.epoch = 0
        self._open: OrderedDict[str, Any] = OrderedDict()  # path -> memory-mapped frames, most recent last
        self._pid = os.getpid()  # the process whose entries _open holds

    def set_epoch(self, epoch: int) -> None:
        """The epoch of a plain integer index; a loader's :class:`EpochSampler` sends its own."""
        self.epoch = epoch

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()  # a worker process maps its own entries, never copies them
        return state

    def __len__(self) -> int:
        repeats = self.data.train_clips_per_video if self.mode == "train" else 1
        return len(self.items) * repeats

    def _frames(self, item: Item) -> Any:
        if self._pid != os.getpid():  # a forked loader worker: see _INHERITED
            _INHERITED.append(self._open)
            self._open, self._pid = OrderedDict(), os.getpid()
        # Opening an entry or a video (stat, hash, index or container parse) costs more than
        # reading a small clip; the last OPEN_ENTRIES stay open. Bounded: each holds a descriptor.
        frames = self._open.pop(item.path, None)
        if frames is None:
            frames = self._open_frames(item.path)
            if len(self._open) >= OPEN_ENTRIES:
                self._open.popitem(last=False)
        self._open[item.path] = frames
        return frames

    def _open_frames(self, path: str) -> Any:
        """The cache entry, or with the cache off the video itself (probed once, read by seeking)."""
        if self.cache is not None:
            entry = self.cache.get(path) or self.cache.build_one(path)
            if entry.frames is None:  # checked before the trial: the video went missing or bad since
                raise DataError(f"{path}: {entry.error}")
            return entry.frames
        from expand.data.store import StreamFrames

        return StreamFrames(path, self.data.fps)

    def __getitem__(self, index: "int | tuple[int, int]") -> tuple[torch.Tensor, int]:
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        item = self.items[index % len(self.items)]
        views = self.data.val_clips if self.mode != "train" else 1
        crops = self.data.val_crops if self.mode != "train" else 1

        def clips_of(frames: Any) -> list[torch.Tensor]:
            return sample_clips(
                frames, self.frames, self.stride, self.crop, self.mode, random.Random(hash((self.seed, epoch, index))),
                jitter=self.data.jitter, test_crop_ratio=self.data.test_crop_ratio,
                hflip=self.data.hflip, mean=self.data.mean, std=self.data.std, views=views, n_crops=crops,
            )

        def clip_of_item() -> list[torch.Tensor]:
            frames = self._frames(item)
            listed = len(frames)
            clips = clips_of(frames)
            # a video read with the cache off that turned out shorter than its container lists (a
            # cut-off download) is clamped past its end: the clip is drawn again from what is there
            return clips if len(frames) == listed else clips_of(frames)

        try:
            clips = clip_of_item()
        except Exception as exc:  # noqa: BLE001 - an entry that opened but reads back wrong
            if self.cache is None or isinstance(exc, DataError):
                raise
            self._open.pop(item.path, None)
            self.cache.discard(item.path, exc)
            clips = clip_of_item()  # decoded again (the same clip); a second failure is raised
        x = clips[0] if self.mode == "train" else torch.stack(clips)
        return x, item.label


class EpochSampler(Sampler):
    """A training epoch's order: a permutation drawn from (seed, epoch) alone, as ``(epoch, index)``.

    Why not ``shuffle=True``: its order comes from a generator that every
    epoch (and every new loader iterator) advances, so epoch 5 of a trial
    resumed from a snapshot would see other clips than epoch 5 of the trial
    that ran through. And why the epoch travels with each index: a loader's
    persistent worker processes hold their own copy of the dataset, which a
    ``dataset.set_epoch`` in the training process never reaches, so every
    epoch used to get epoch 0's crops and flips. ``start`` skips the first
    indices of the epoch, where a resumed trial left off mid-epoch.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(hash((self.seed, epoch)) & 0x7FFFFFFFFFFFFFFF)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self):
        return ((self.epoch, i) for i in self.order(self.epoch)[self.start:])

    def __len__(self) -> int:
        return max(0, self.size - self.start)


def make_loader(dataset: ClipDataset, batch_size: int, shuffle: bool, workers: int,
                device: torch.device, seed: int = 0, drop_last: bool = False) -> DataLoader:
    """Worker processes that persist across epochs; pinned memory on CUDA.

    ``shuffle``: the loader's ``sampler`` is an :class:`EpochSampler`; call its
    ``set_epoch`` before each epoch (the dataset's own ``set_epoch`` does not
    reach worker processes).
    """
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=workers,
        sampler=EpochSampler(len(dataset), seed) if shuffle else None,
        persistent_workers=workers > 0, pin_memory=device.type == "cuda",
        drop_last=drop_last and len(dataset) > batch_size,
        # its own generator: each new iterator draws its workers' base seed from it, and from the
        # global RNG without one, which would shift dropout's draws in a trial resumed mid-epoch
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if workers > 0 else None,
    )
