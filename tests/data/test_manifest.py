"""Seeded, class-stratified subsets of a manifest (issue 15)."""

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
