"""Trained weights of a trial: one small file per kept trial, written atomically, loaded safely.

Where: ``RUN/trials/<trial_id>/model.pt``, holding the spec, the dropout and
the state dict (no optimizer: a search's models are read back to evaluate,
fine-tune or export, never to continue the short schedule). Which trials keep
theirs is ``trial.checkpoint``: ``path`` (default) the models on the chosen
path and trained contractions, ``all`` every trial, ``none`` none. A trial
cannot know whether it will be chosen, so under ``path`` every trial writes
its file and the search deletes the losers' once a step is decided.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Iterable

from expand.fileio import atomic_write

if TYPE_CHECKING:
    import torch

    from expand.spec import ArchSpec

WEIGHTS_FILE = "model.pt"


def weights_file(run_path: str, trial_id: str) -> str:
    return os.path.join(run_path, "trials", trial_id, WEIGHTS_FILE)


def save_weights(path: str, spec: "ArchSpec", model: "torch.nn.Module", dropout: float) -> None:
    """The model's state dict beside its spec, replaced in one rename (a reader never sees half)."""
    state = getattr(model, "_orig_mod", model).state_dict()  # a compiled model saves its original
    atomic_write(path, saved_bytes({"spec": spec.to_dict(), "dropout": float(dropout),
                                    "state_dict": {k: v.detach().cpu() for k, v in state.items()}}))


def saved_bytes(obj: Any) -> bytes:
    """``torch.save`` into memory, for ``atomic_write`` to put on disk.

    Given the file itself, torch's zip writer turns a full disk into a RuntimeError
    ("unexpected pos ...") that names no errno, so a search recorded the trial ``failed``;
    written from memory, the disk's OSError (ENOSPC, with the file's name) comes through.
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_weights(path: str, device: str = "cpu") -> "torch.nn.Module":
    """A trained model back, in eval mode.

    ``weights_only=True``: the file holds tensors and plain data only, so
    loading one from a shared results folder cannot run code.
    """
    import torch

    from expand.models.x3d import build_x3d
    from expand.spec import ArchSpec

    blob = torch.load(path, map_location=device, weights_only=True)
    spec = ArchSpec.from_dict(blob["spec"])
    model = build_x3d(spec, num_classes=spec.num_classes, dropout=blob.get("dropout", 0.0))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def kept(run_path: str) -> list[str]:
    """Trial ids whose weights are in the run folder."""
    root = os.path.join(run_path, "trials")
    if not os.path.isdir(root):
        return []
    return sorted(t for t in os.listdir(root) if os.path.isfile(os.path.join(root, t, WEIGHTS_FILE)))


def prune(run_path: str, keep: Iterable[str]) -> list[str]:
    """Delete the weights of every trial not in ``keep`` (and its folder, if then empty); returns those deleted.

    Called once a step is decided (so every trial so far is either on the
    path or lost); a contraction's trained model is always kept.
    """
    keep = set(keep)
    gone = []
    for trial_id in kept(run_path):
        if trial_id in keep or trial_id.startswith("contract-"):
            continue
        path = weights_file(run_path, trial_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            gone.append(trial_id)
        with contextlib.suppress(OSError):  # the trial's folder, when the weights were all it held
            os.rmdir(os.path.dirname(path))
    return gone


def apply_policy(run_path: str, policy: Any, keep: Iterable[str]) -> list[str]:
    """Prune to ``keep`` under the ``path`` policy; ``all`` and ``none`` need nothing here."""
    return prune(run_path, keep) if policy == "path" else []


__all__ = ["WEIGHTS_FILE", "weights_file", "save_weights", "load_weights", "kept", "prune",
           "apply_policy"]
