"""Checks of an experiment's fields and paths: each field check returns the problem ('' or None
when fine) for :func:`expand.schema.check_field`; the path and name checks raise a ConfigError
naming the key. Kept apart from the dataclasses they guard, which read as the schema."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from expand.errors import ConfigError
from expand.schema import MAX_PROCESSES, at_most, key_path
from expand.search.runners import RUNNERS

if TYPE_CHECKING:
    from expand.config import DataConfig


def runner_check(value: str) -> str | None:
    return None if value in RUNNERS else RUNNERS.unknown(value)


def per_channel(value: list[float]) -> str | None:
    return None if len(value) == 3 else f"must be 3 values (R, G, B), got {len(value)}"


def device_name(value: str) -> str | None:
    """Names torch.device takes for training; anything else failed every trial (``tpu``) instead
    of the search's start."""
    return None if re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", value) else (
        f"must be auto, cpu, cuda, cuda:N, mps or xpu, got {value!r}")


LOADER_PROCESSES = at_most(MAX_PROCESSES, "loader processes")
RETRIES = at_most(100, "retries of one trial")


def probability(value: float) -> str | None:
    return None if 0 < value < 1 else f"must be between 0 and 1 (exclusive), got {value}"


def below_one(value: float) -> str | None:
    """A fraction in [0, 1): momentum, warm-up, dropout, label smoothing (1 or more diverges or
    leaves nothing to train)."""
    return None if 0 <= value < 1 else f"must be in [0, 1), got {value}"


def check_data_paths(data: DataConfig, where: str) -> None:
    """The dataset root and its train/val manifests (or folders) must exist."""
    if not data.root:
        raise ConfigError(f"{key_path(where, 'data.root')}: required (the dataset folder)")
    if not os.path.isdir(data.root):
        raise ConfigError(f"{key_path(where, 'data.root')}: {data.root} does not exist")
    for split in ("train", "val"):
        path = os.path.join(data.root, getattr(data, split))
        if data.format == "csv" and not os.path.isfile(path):
            raise ConfigError(f"{key_path(where, f'data.{split}')}: manifest {path} does not exist")
        if data.format == "kinetics" and not os.path.isfile(path):
            raise ConfigError(f"{key_path(where, f'data.{split}')}: annotation file {path} does not exist")
        videos = os.path.join(data.root, getattr(data, f"{split}_videos"))
        if data.format == "kinetics" and not os.path.isdir(videos):
            raise ConfigError(f"{key_path(where, f'data.{split}_videos')}: video folder {videos} does not exist")
        if data.format == "folder" and not os.path.isdir(path):
            raise ConfigError(f"{key_path(where, f'data.{split}')}: folder {path} does not exist")
    if data.cache not in ("auto", "off"):
        blocker = not_a_folder_above(data.cache)
        if blocker:
            raise ConfigError(f"{key_path(where, 'data.cache')}: cannot create {data.cache}: "
                              f"{blocker} is a file, not a folder")


def not_a_folder_above(path: str) -> str:
    """The nearest existing path at or above ``path`` when it is not a folder ('' when it is one).

    Only this is checked before a run: whether a folder can be created on a cluster's nodes is
    for each node to say (its cache build reports it), and the head may lack their local disks.
    """
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return ""
        path = parent
    return "" if os.path.isdir(path) else path


def check_run_name(name: str, where: str) -> None:
    """The name is the default run folder's (results/<name>-<time>): "../../x" wrote outside results,
    "" a folder named "-<time>", "a/b" a nested one. Checked for experiment files only: a run
    folder's config.yaml from before keeps working for resume."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise ConfigError(f"{key_path(where, 'name')}: must be 1-100 letters, digits, '.', '_' or '-' "
                          f"(it names the run folder results/<name>-<time>), got {name!r}")
