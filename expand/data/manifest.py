"""Dataset manifests as users have them: SlowFast CSV (``path label``) or a folder per class."""

from __future__ import annotations

import os
from dataclasses import dataclass

from expand.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Item:
    path: str
    label: int


def read_csv_manifest(
    path: str, separator: str = " ", path_prefix: str = "", num_classes: int | None = None
) -> list[Item]:
    """SlowFast's ``path label`` lines; paths may contain the separator (split from the right)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: manifest not found")
    base = os.path.dirname(os.path.abspath(path))
    items = []
    try:
        # utf-8-sig: a manifest saved by Excel or a Windows editor starts with a byte-order mark,
        # which str.strip() keeps, so its first video would be reported missing
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the manifest as UTF-8") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a manifest file") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        sep = None if separator == " " else separator
        parts = line.rsplit(sep, 1) if sep else line.rstrip().rsplit(None, 1)
        if len(parts) != 2 or not parts[0].strip():
            from expand.data.kinetics import looks_like_annotations

            if lineno == 1 and looks_like_annotations(path):
                raise DataError(f"{path}: a Kinetics annotation file, not a 'path label' manifest: read it "
                                "with data.format: kinetics in an experiment")
            raise DataError(f"{path}:{lineno}: expected 'path{separator}label', got {line!r}")
        video, label_text = parts[0].strip(), parts[1].strip()
        try:
            label = int(label_text)
        except ValueError:
            raise DataError(f"{path}:{lineno}: label {label_text!r} is not an integer") from None
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise DataError(f"{path}:{lineno}: label {label} is outside [0, {num_classes})")
        full = os.path.join(path_prefix, video) if path_prefix else video
        if not os.path.isabs(full):
            full = os.path.join(base, full)
        items.append(Item(os.path.normpath(full), label))
    if not items:
        raise DataError(f"{path}: manifest has no entries")
    return items


def read_folder_dataset(root: str, classes: list[str] | None = None) -> tuple[list[Item], list[str]]:
    """A folder per class; class names sorted give the ids. Returns (items, class names).

    Hidden folders and files (a leading dot) are left out, as ``ls`` leaves them out.

    ``classes`` fixes the ids (the training split's classes) so that a
    validation folder with a class missing cannot shift the ids of the others.
    """
    if not os.path.isdir(root):
        raise DataError(f"{root}: dataset folder not found")
    # hidden folders are not classes: Jupyter's .ipynb_checkpoints, a frame cache, a .git
    found = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not found:
        raise DataError(f"{root}: no class folders")
    if classes is None:
        classes = found
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise DataError(f"{root}: class folder(s) {', '.join(unknown[:5])} not in the training split")
    items = []
    for name in found:
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            if f.lower().endswith(VIDEO_EXTENSIONS) and not f.startswith("."):  # macOS's ._name.mp4 too
                items.append(Item(os.path.join(folder, f), classes.index(name)))
    if not items:
        raise DataError(f"{root}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    return items, classes


def class_names(data) -> list[str] | None:
    """The class names of a folder or Kinetics dataset, in id order (from the training split);
    None for CSV manifests, whose labels are already ids."""
    if data.format == "folder":
        return read_folder_dataset(os.path.join(data.root, data.train))[1]
    if data.format == "kinetics":
        from expand.data.kinetics import annotation_classes

        return annotation_classes(os.path.join(data.root, data.train))
    return None


def write_label_map(data, run_dir: str) -> str | None:
    """RUN_DIR/label_map.json ({"class name": id}) for a folder or Kinetics dataset; None for CSV manifests."""
    names = class_names(data)
    if names is None:
        return None
    import json

    from expand.fileio import atomic_write

    path = os.path.join(run_dir, "label_map.json")
    atomic_write(path, json.dumps({name: i for i, name in enumerate(names)}, indent=1))
    return path


def stratified_subset(items: list[Item], limit: int | None, seed: int = 0) -> list[Item]:
    """``limit`` items with every class in proportion, chosen by ``seed``; manifest order is kept.

    Why: a Kinetics CSV written by walking class folders is sorted by class, so
    its first 60 k lines cover about a quarter of the 400 classes while the
    validation split keeps all of them. Each class gets floor(limit x share);
    the remaining places go to the classes with the largest remainders (ties
    by label), and within a class a seeded shuffle picks the videos.
    """
    if not limit or limit >= len(items):
        return list(items)
    import random

    by_label: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        by_label.setdefault(item.label, []).append(i)
    total = len(items)
    exact = {label: limit * len(idx) / total for label, idx in by_label.items()}
    quota = {label: int(q) for label, q in exact.items()}
    spare = limit - sum(quota.values())
    for label in sorted(exact, key=lambda lb: (-(exact[lb] - quota[lb]), lb))[:spare]:
        quota[label] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for label in sorted(by_label):
        idx = list(by_label[label])
        rng.shuffle(idx)
        chosen += idx[:quota[label]]
    return [items[i] for i in sorted(chosen)]


def class_counts(items: list[Item]) -> dict[int, int]:
    """Videos per class id."""
    counts: dict[int, int] = {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
    return dict(sorted(counts.items()))


def carve_minival(data, train: list[Item]) -> tuple[list[Item], list[Item]]:
    """(training items, minival items) of the training manifest's ``train`` items.

    The minival is a seeded, class-stratified ``data.minival`` videos of it
    (empty when off), and the training items never include them; then
    ``max_train_videos`` takes its stratified subset of the rest.
    """
    held = stratified_subset(train, data.minival, data.subset_seed + 1) if data.minival else []
    if held:
        if len(held) >= len(train):
            raise DataError(f"data.minival: {data.minival} would leave no training video ({len(train)} in all)")
        kept = set(held)
        train = [i for i in train if i not in kept]
    return stratified_subset(train, data.max_train_videos, data.subset_seed), held


def split_items(data, split: str) -> list[Item]:
    """What a trial uses of ``split``: 'train', 'val', or 'minival' (carved from the training split)."""
    if split == "val":
        return stratified_subset(load_split(data, "val"), data.max_val_videos, data.subset_seed)
    train, held = carve_minival(data, load_split(data, "train"))
    if split == "minival":
        if not held:
            raise DataError("data.minival is not set: there is no minival split")
        return held
    return train


def _class_count(where: str, found: str, source: str, n: int, data) -> str:
    """Why a named-class dataset and ``num_classes`` disagree. More outputs than classes was
    accepted: a recipe's 101 kept for a 10-class folder trained 91 logits no video has (and the
    head's size, its FLOPs and chance level were not the dataset's)."""
    return (f"{where}: {found} but num_classes is {data.num_classes}: the class ids come from {source}, "
            f"so set data.num_classes: {n} (--set data.num_classes={n})")


def load_split(data, split: str) -> list[Item]:
    """Items of ``split`` ('train' or 'val') of an experiment's DataConfig."""
    where = os.path.join(data.root, getattr(data, split))
    if data.format == "folder":
        classes = None if split == "train" else class_names(data)
        items, classes = read_folder_dataset(where, classes)
        if len(classes) != data.num_classes:
            raise DataError(_class_count(where, f"{len(classes)} class folders", "the folders", len(classes), data))
        return items
    if data.format == "kinetics":
        from expand.data.kinetics import read_kinetics_split

        classes = None if split == "train" else class_names(data)
        videos = os.path.join(data.root, getattr(data, f"{split}_videos"))
        items, classes = read_kinetics_split(where, videos, classes)
        if len(classes) != data.num_classes:
            raise DataError(_class_count(where, f"{len(classes)} labels", "the label names", len(classes), data))
        return items
    return read_csv_manifest(where, data.separator, data.path_prefix, data.num_classes)
