"""A trial's mid-training snapshot, which a stopped attempt at the same trial resumes from.

Why: on GPUs a trial of the paper's schedule runs for hours, and a week-long
search gets interrupted (Ctrl-C, a preempted or rebooted machine, a worker
Ray restarts, a hung loader stopped at ``trial.time_limit_s``). Without a
snapshot its next attempt starts at step 0. With one it carries on from the
last snapshot and trains *the same model*: the optimizer's momentum, the
grad scaler, the RNG states and the position in the epoch's data order
(:class:`expand.data.dataset.EpochSampler`) are saved with the weights, so
an interrupted trial ends where the uninterrupted one would have.

A snapshot is keyed by what it trained (the trial's fingerprint, the batch,
the schedule's length, AMP): an attempt with a halved batch after an OOM, or
a trial whose schedule changed, starts over instead of loading it. The file
is ``<trial folder>/snapshot.pt``, written atomically; it is removed once the
trial's result is final (ok or diverged).

A trial on another Ray node writes into that node's scratch folder, which a
killed worker or a lost node takes with it; the worker there passes each
written or removed snapshot to a *keeper* (:func:`kept_by`) that mirrors it
into the run folder on the head, where the retry, on any node, finds it
(``expand/search/pool.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from expand.fileio import atomic_write
from expand.weights import saved_bytes

if TYPE_CHECKING:
    import torch

SNAPSHOT_FILE = "snapshot.pt"

# Told the path of each snapshot this thread writes or removes (it reads the file, or its absence).
Keeper = Callable[[str], None]
_local = threading.local()


@contextlib.contextmanager
def kept_by(keeper: Optional[Keeper]) -> Iterator[None]:
    """Pass each snapshot this thread saves or removes to ``keeper`` while the block runs."""
    previous = getattr(_local, "keeper", None)
    _local.keeper = keeper
    try:
        yield
    finally:
        _local.keeper = previous


def _keep(path: str) -> None:
    keeper: Optional[Keeper] = getattr(_local, "keeper", None)
    if keeper is None:
        return
    try:
        keeper(path)
    except Exception as exc:  # noqa: BLE001 - a keeper that fails costs the mirror, never the trial
        print(f"x3d-expand: the snapshot {path} was not mirrored to the head: {exc}", file=sys.stderr)


@dataclass
class TrainState:
    """Where the training loop is: the counters it carries from step to step."""

    step: int = 0
    epoch: int = 0
    epoch_batches: int = 0  # batches of ``epoch`` already trained
    epoch_loss: float = 0.0  # the summed (per clip) loss of those batches
    epoch_clips: int = 0
    epoch_wait: float = 0.0  # seconds of ``epoch`` spent waiting for data
    epoch_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # the mean loss of each finished epoch
    clips: int = 0
    data_wait: float = 0.0
    compute: float = 0.0


def snapshot_key(fingerprint: str, batch: int, total_steps: int, steps_per_epoch: int,
                 amp: Optional[torch.dtype]) -> dict[str, Any]:
    """What a snapshot must match to be resumed: the same training, step for step."""
    return {"fingerprint": fingerprint, "batch": batch, "total_steps": total_steps,
            "steps_per_epoch": steps_per_epoch, "amp": str(amp)}


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "_orig_mod", model)  # torch.compile's wrapper prefixes every key


def save_snapshot(path: str, key: dict[str, Any], state: TrainState, model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, device: torch.device) -> None:
    """Write the snapshot in one rename: a process killed while writing leaves the previous one."""
    import torch  # here, not at the top: a Ray worker imports this module for kept_by alone

    payload = {
        "key": key, "state": dataclasses.asdict(state), "model": _unwrapped(model).state_dict(),
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    atomic_write(path, saved_bytes(payload))  # a full disk is an OSError naming the file (see saved_bytes)
    _keep(path)


def load_snapshot(path: str, key: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, device: torch.device) -> tuple[Optional[TrainState], str]:
    """Restore a matching snapshot into the model, optimizer, scaler and RNGs.

    Returns the loop's state, or None and why not ('' when there is no file):
    a snapshot of other training, or one that does not load, is passed over
    (and replaced by this attempt's first snapshot), never an error that
    would cost the trial.
    """
    if not os.path.exists(path):
        return None, ""
    import torch

    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a bad snapshot costs the progress, not the trial
        return None, f"unreadable ({type(exc).__name__})"
    if payload.get("key") != key:
        return None, "of other training (schedule, batch or AMP changed)"
    saved, current = payload.get("model") or {}, _unwrapped(model).state_dict()
    # checked before anything is loaded: a half-loaded model would not be a fresh start either
    if saved.keys() != current.keys() or any(saved[k].shape != current[k].shape for k in saved):
        return None, "does not fit the model"
    _unwrapped(model).load_state_dict(saved)
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["rng_cpu"].cpu())
    if device.type == "cuda" and payload.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(payload["rng_cuda"].cpu(), device)
    return TrainState(**payload["state"]), ""


def remove_snapshot(path: str) -> None:
    if not path:
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    _keep(path)


__all__ = ["SNAPSHOT_FILE", "Keeper", "kept_by", "TrainState", "snapshot_key", "save_snapshot", "load_snapshot", "remove_snapshot"]
