import os
import pickle

import pytest
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


def _train_dataset(tmp_path, make_video, n_videos):
    items = [Item(make_video(f"t{i}.mp4", n=24), i % 2) for i in range(n_videos)]
    cache = FrameCache(str(tmp_path / "cache"), 30.0, 64)
    cache.build([i.path for i in items])
    data = DataConfig(root=str(tmp_path), num_classes=2, hflip=True, jitter=[1.0, 1.5])
    return ClipDataset(items, cache, data, 4, 2, 32, "train", seed=7)


def test_every_epoch_gets_its_own_crops_in_worker_processes_too(tmp_path, make_video):
    """A persistent worker's copy of the dataset never saw dataset.set_epoch: every epoch got
    epoch 0's crops and flips. The sampler now sends the epoch with each index."""
    import torch

    from expand.data.dataset import make_loader

    ds = _train_dataset(tmp_path, make_video, 4)
    for workers in (0, 1):
        loader = make_loader(ds, 4, True, workers, torch.device("cpu"), seed=7)
        clips = {}
        for epoch in (0, 1, 2):
            loader.sampler.set_epoch(epoch)
            (x, _), = list(loader)
            order = loader.sampler.order(epoch)
            clips[epoch] = x
            expected = torch.stack([ds[(epoch, i)][0] for i in order])
            assert torch.equal(x, expected), (workers, epoch)
        assert not torch.equal(clips[0], clips[1]) and not torch.equal(clips[1], clips[2])
        del loader


def test_an_epochs_order_depends_on_the_seed_and_epoch_alone_and_can_start_part_way():
    from expand.data.dataset import EpochSampler

    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    list(a), list(a)  # drawing epochs does not advance anything
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b) and sorted(i for _, i in a) == list(range(10))
    assert all(e == 4 for e, _ in a)
    a.set_epoch(5)
    assert [i for _, i in a] != [i for _, i in b]  # another epoch, another order
    b.set_epoch(5, start=6)
    assert list(b) == list(a)[6:] and len(b) == 4
    assert [i for _, i in EpochSampler(10, seed=4)] != [i for _, i in EpochSampler(10, seed=3)]


def _cut(path, keep=2 / 3):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])



@pytest.mark.parametrize("fmt", ["h264", "jpeg", "npy"])
def test_a_damaged_cache_entry_is_decoded_again_and_gives_the_same_clip(tmp_path, make_video, capsys, fmt):
    # One entry cut short (a crash, a full disk, a partial copy) used to fail every trial of the
    # search on the same video. It is removed and decoded again from the video, once.
    items = [Item(make_video(f"v{i}.mp4", n=24), i % 2) for i in range(3)]
    cache = FrameCache(str(tmp_path / "cache"), 30.0, 64, fmt)
    cache.build([i.path for i in items])
    data = DataConfig(root=str(tmp_path), num_classes=2, hflip=True, jitter=[1.0, 1.5])
    clean = [ClipDataset(items, cache, data, 4, 2, 32, "train", seed=3)[(0, i)][0] for i in range(3)]
    sizes = [os.path.getsize(cache.entry_path(i.path)) for i in items]
    for item in items:
        _cut(cache.entry_path(item.path))
    ds = ClipDataset(items, cache, data, 4, 2, 32, "train", seed=3)
    again = [ds[(0, i)][0] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(again, clean))
    assert [os.path.getsize(cache.entry_path(i.path)) for i in items] == sizes  # rebuilt whole
    err = capsys.readouterr().err
    assert err.count("damaged frame-cache entry for ") == 3 and "decoding the video again" in err


def test_a_video_gone_since_the_trial_began_is_named_not_decoded_again(tmp_path, make_video):
    from expand.errors import DataError

    ds = _dataset(tmp_path, make_video, 2)
    os.remove(ds.items[1].path)
    with pytest.raises(DataError, match=r"v1.mp4: missing file"):
        ds[1]
