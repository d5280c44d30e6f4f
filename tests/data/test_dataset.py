import pickle

import torch

from expand.config import DataConfig
from expand.data import dataset as dataset_module
from expand.data.cache import FrameCache
from expand.data.dataset import ClipDataset
from expand.data.manifest import Item


def _dataset(tmp_path, make_video, n_videos):
    items = [Item(make_video(f"v{i}.mp4", n=12 + i), i % 2) for i in range(n_videos)]
    cache = FrameCache(str(tmp_path / "cache"), 30.0, 64)
    cache.build([i.path for i in items])
    data = DataConfig(root=str(tmp_path), num_classes=2, hflip=False, jitter=[1.0, 1.0])
    return ClipDataset(items, cache, data, 4, 2, 32, "val")


def test_open_entries_are_bounded_and_give_the_clips_of_a_fresh_open(tmp_path, make_video, monkeypatch):
    monkeypatch.setattr(dataset_module, "OPEN_ENTRIES", 2)
    ds = _dataset(tmp_path, make_video, 5)
    first = [ds[i][0] for i in range(5)]
    assert len(ds._open) == 2 and list(ds._open) == [ds.items[3].path, ds.items[4].path]
    again = [ds[i][0] for i in (4, 0, 3)]  # a hit, a miss (evicted), a hit
    assert all(torch.equal(a, first[i]) for a, i in zip(again, (4, 0, 3)))
    assert list(ds._open) == [ds.items[4].path, ds.items[0].path, ds.items[3].path][-2:]


def test_a_pickled_dataset_carries_no_mapped_frames(tmp_path, make_video):
    ds = _dataset(tmp_path, make_video, 3)
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert len(ds._open) == 1 and len(copy._open) == 0
    assert torch.equal(copy[0][0], ds[0][0])
