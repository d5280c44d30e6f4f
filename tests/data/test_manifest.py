"""Seeded, class-stratified subsets of a manifest (issue 15)."""

import dataclasses

import pytest

from expand.data.manifest import Item, class_counts, stratified_subset


def _class_sorted(classes=10, per_class=100):
    return [Item(f"c{c:02d}/v{i:03d}.mp4", c) for c in range(classes) for i in range(per_class)]


def test_a_subset_of_a_class_sorted_manifest_covers_every_class_in_proportion():
    items = _class_sorted()
    first = items[:250]  # what max_train_videos used to keep: 3 of 10 classes
    assert len(class_counts(first)) == 3
    subset = stratified_subset(items, 250, seed=0)
    assert len(subset) == 250 and class_counts(subset) == {c: 25 for c in range(10)}
    assert subset == [i for i in items if i in set(subset)]  # manifest order kept


def test_uneven_classes_get_their_share_and_the_seed_decides_which_videos():
    items = [Item(f"a{i}", 0) for i in range(70)] + [Item(f"b{i}", 1) for i in range(20)] + \
        [Item(f"c{i}", 2) for i in range(10)]
    subset = stratified_subset(items, 10, seed=3)
    assert class_counts(subset) == {0: 7, 1: 2, 2: 1}
    assert stratified_subset(items, 10, seed=3) == subset
    assert stratified_subset(items, 10, seed=4) != subset


def test_no_limit_or_a_large_one_keeps_everything():
    items = _class_sorted(3, 5)
    assert stratified_subset(items, None) == items and stratified_subset(items, 100) == items


def _csv_data(tmp_path, classes=4, per_class=20, val_per_class=5, **kw):
    from expand.config import DataConfig

    (tmp_path / "train.csv").write_text("".join(f"c{c}/t{i}.mp4 {c}\n" for c in range(classes)
                                                for i in range(per_class)))
    (tmp_path / "val.csv").write_text("".join(f"c{c}/v{i}.mp4 {c}\n" for c in range(classes)
                                              for i in range(val_per_class)))
    return DataConfig(root=str(tmp_path), num_classes=classes, **kw)


def test_the_minival_is_carved_from_training_and_never_trained_on(tmp_path):
    from expand.data.manifest import split_items

    data = _csv_data(tmp_path, minival=8, max_train_videos=40)
    minival, train, val = (split_items(data, s) for s in ("minival", "train", "val"))
    assert class_counts(minival) == {0: 2, 1: 2, 2: 2, 3: 2}  # stratified
    assert not set(minival) & set(train)  # disjoint from what trains
    assert all("/t" in i.path for i in minival)  # from the training manifest
    assert len(train) == 40 and class_counts(train) == {c: 10 for c in range(4)}
    assert len(val) == 20 and all("/v" in i.path for i in val)  # validation untouched
    assert split_items(data, "minival") == minival  # seeded: the same every trial


def test_a_minival_as_large_as_the_training_split_is_refused(tmp_path):
    import pytest

    from expand.data.manifest import split_items
    from expand.errors import DataError

    data = _csv_data(tmp_path, classes=2, per_class=3, minival=6)
    with pytest.raises(DataError, match="no training video"):
        split_items(data, "train")


def test_a_manifest_saved_with_a_byte_order_mark_keeps_its_first_video(tmp_path):
    from expand.data.manifest import read_csv_manifest

    (tmp_path / "a.mp4").write_bytes(b"")
    path = tmp_path / "train.csv"
    path.write_bytes("a.mp4 0\r\nb.mp4 1\r\n".encode("utf-8-sig"))  # as Excel or Notepad save it
    items = read_csv_manifest(str(path))
    assert items[0] == Item(str(tmp_path / "a.mp4"), 0) and items[1].label == 1


def test_hidden_folders_and_files_are_not_classes_or_videos(tmp_path):
    # Jupyter leaves .ipynb_checkpoints in every folder it opens; macOS copies leave ._name.mp4
    from expand.data.manifest import read_folder_dataset

    for cls in ("run", "walk", ".ipynb_checkpoints", ".x3d-frame-cache"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "a.mp4").write_bytes(b"")
    (tmp_path / "run" / "._a.mp4").write_bytes(b"")
    items, classes = read_folder_dataset(str(tmp_path))
    assert classes == ["run", "walk"]
    assert items == [Item(str(tmp_path / "run" / "a.mp4"), 0), Item(str(tmp_path / "walk" / "a.mp4"), 1)]


@pytest.mark.parametrize("num_classes", [1, 101])
def test_a_folder_count_other_than_num_classes_is_refused(tmp_path, num_classes):
    # 101 (the folder recipe's) for a 2-class folder trained 99 logits no video has
    from expand.config import DataConfig
    from expand.data.manifest import load_split
    from expand.errors import DataError

    for cls in ("run", "walk"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        (tmp_path / "train" / cls / "a.mp4").write_bytes(b"")
    data = DataConfig(format="folder", root=str(tmp_path), train="train", val="val", num_classes=num_classes)
    with pytest.raises(DataError, match=f"2 class folders but num_classes is {num_classes}: the class ids come "
                                        r"from the folders, so set data.num_classes: 2 \(--set data.num_classes=2\)"):
        load_split(data, "train")
    assert len(load_split(dataclasses.replace(data, num_classes=2), "train")) == 2
