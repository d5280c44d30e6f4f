"""Kinetics as it is downloaded: the official annotation CSVs and a folder of videos per split.

Kinetics-400/600/700 come with ``label,youtube_id,time_start,time_end,split``
annotations and videos named ``<youtube_id>_<start:06d>_<end:06d>.mp4``, either
flat in a split folder (the CVDF archives) or in a folder per class (most
downloaders). Why read them directly: SlowFast and mmaction2 both make users
write ``path label`` manifests first, and a script that does it silently drops
the ~5-10 % of clips YouTube has since deleted. Here a clip whose file is
missing keeps its expected path, so ``data check`` and ``search`` list it as
missing like any other unreadable video.

Class ids are the training annotations' label names, sorted (the order of
SlowFast's and mmaction2's Kinetics label maps).
"""

from __future__ import annotations

import csv
import os

from expand.data.manifest import VIDEO_EXTENSIONS, Item
from expand.errors import DataError

COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def clip_name(youtube_id: str, time_start: float, time_end: float) -> str:
    """The file stem every Kinetics downloader writes: ``<youtube_id>_<start:06d>_<end:06d>``."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}"


def looks_like_annotations(path: str) -> bool:
    """Whether ``path`` starts with a Kinetics annotation header (so a manifest reader can say so)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return False
    return set(COLUMNS) <= {h.strip() for h in header}


def read_annotations(path: str) -> list[tuple[str, str, str]]:
    """(clip stem, youtube id, label name) of every row of an annotation CSV."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: not a Kinetics annotation file: the header lacks {', '.join(missing)} "
                        f"(expected {','.join(COLUMNS)},split)")
    col = {c: header.index(c) for c in COLUMNS}
    clips = []
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DataError(f"{path}:{lineno}: {len(row)} columns, the header has {len(header)}")
        label, youtube_id = row[col["label"]].strip(), row[col["youtube_id"]].strip()
        if not label or not youtube_id:
            raise DataError(f"{path}:{lineno}: empty label or youtube_id")
        try:
            start, end = float(row[col["time_start"]]), float(row[col["time_end"]])
        except ValueError:
            raise DataError(f"{path}:{lineno}: time_start/time_end must be numbers, got "
                            f"{row[col['time_start']]!r}, {row[col['time_end']]!r}") from None
        clips.append((clip_name(youtube_id, start, end), youtube_id, label))
    if not clips:
        raise DataError(f"{path}: annotation file has no clips")
    return clips


def annotation_classes(path: str) -> list[str]:
    """The label names of an annotation file, sorted: the class ids of a split read with it as training."""
    return sorted({label for _, _, label in read_annotations(path)})


def index_videos(folder: str) -> dict[str, str]:
    """{file stem: path} of the videos in ``folder`` and its class folders (one level down).

    One listing of each folder, not a stat per clip: Kinetics-400's training
    split is 240 k clips, and on a network file system a stat each took minutes.
    """
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: video folder not found")
    found: dict[str, str] = {}

    def add(entry: os.DirEntry) -> None:
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in VIDEO_EXTENSIONS:
            found.setdefault(stem, entry.path)

    with os.scandir(folder) as entries:
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):  # hidden: a frame cache, macOS's ._name.mp4
                continue
            if entry.is_dir():
                subfolders.append(entry.path)
            elif entry.is_file():
                add(entry)
    for sub in sorted(subfolders):
        with os.scandir(sub) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_file():
                    add(entry)
    return found


def read_kinetics_split(annotations: str, videos: str,
                        classes: list[str] | None = None) -> tuple[list[Item], list[str]]:
    """(items, class names) of one split; ``classes`` (the training split's) fixes the ids.

    A clip is found by its full stem, or by its YouTube id alone (some
    downloaders name files so); one not found keeps ``<videos>/<stem>.mp4``.
    """
    clips = read_annotations(annotations)
    if classes is None:
        classes = sorted({label for _, _, label in clips})
    ids = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for _, _, label in clips if label not in ids})
    if unknown:
        raise DataError(f"{annotations}: label(s) {', '.join(map(repr, unknown[:5]))} not in the training "
                        "annotations")
    files = index_videos(videos)
    items = [Item(os.path.normpath(files.get(stem) or files.get(yid) or os.path.join(videos, stem + ".mp4")),
                  ids[label]) for stem, yid, label in clips]
    return items, classes
