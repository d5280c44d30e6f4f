"""A trial's TensorBoard log: per-epoch curves and an hparams summary, in the trial's own folder.

The files go to ``RUN/trials/<id>/tb/``, so ``tensorboard --logdir RUN``
shows a whole search (one run per trial) and the hparams tab compares trials
by their six factors. The folder is the trial's, so a trial on another Ray
node ships its event files back with its weights (pool.py). Fractions are
logged as fractions, as everywhere a program reads (``top1_frac``).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from expand.search.trial import TrialSpec

BOARD_DIR = "tb"
# a trial's reported values and the TensorBoard tags they are logged under (fractions as *_frac)
TAGS = {"loss": "train/loss", "lr": "train/lr", "clips_per_s": "train/clips_per_s",
        "data_wait_frac": "train/data_wait_frac", "top1": "val/top1_frac", "top5": "val/top5_frac",
        "val_loss": "val/loss", "val_top1": "val/reported_top1_frac", "infer_clips_per_s": "infer/clips_per_s"}


def _writer(log_dir: str, purge_step: Optional[int] = None) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=log_dir, flush_secs=30, purge_step=purge_step)


class TrialBoard:
    """Wraps ``torch.utils.tensorboard.SummaryWriter``; a closed no-op when the trial has no folder."""

    def __init__(self, writer: Any, trial: Optional[TrialSpec]) -> None:
        self.writer, self.trial = writer, trial

    @classmethod
    def open(cls, out_dir: str, trial: TrialSpec) -> "TrialBoard":
        if not out_dir:
            return cls(None, None)
        return cls(_writer(os.path.join(out_dir, BOARD_DIR)), trial)

    def restart_at(self, step: int) -> None:
        """Continue the curves of a trial resumed at ``step`` from a snapshot.

        A stopped attempt may have logged points at or past ``step`` (the end
        of the epoch it was in) that the resumed attempt logs again; a purge
        marker at ``step`` makes TensorBoard drop those, so each step has one point.
        """
        if self.writer is None:
            return
        log_dir = self.writer.log_dir
        self.writer.close()
        self.writer = _writer(log_dir, purge_step=step)

    def flush(self) -> None:
        """On disk now, with the snapshot it goes with (the writer flushes every 30 s otherwise)."""
        if self.writer is not None:
            self.writer.flush()

    def epoch(self, step: int, update: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, tag in TAGS.items():
            if key in update:
                self.writer.add_scalar(tag, float(update[key]), step)

    def finish(self, step: int, metrics: dict[str, float]) -> None:
        """The final evaluation as the last point of the curves, and the trial's hparams row."""
        if self.writer is None or self.trial is None:
            return
        from torch.utils.tensorboard.summary import hparams

        t = self.trial
        self.epoch(step, metrics)
        params = {**t.spec.factors(), "gflops": float(t.gflops), "params": int(t.params), "step": t.step,
                  "axis": t.axis, "seed": t.seed, "trial_id": t.trial_id}
        final = {f"hparams/{k}_frac" if k in ("top1", "top5") else f"hparams/{k}": float(metrics[k])
                 for k in ("top1", "top5", "val_loss") if k in metrics}
        exp, ssi, sei = hparams(params, final)
        # SummaryWriter.add_hparams would open a new timestamped subfolder: the hparams row belongs
        # in the trial's own event file, beside its curves, so write the three summaries there
        file_writer = self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            file_writer.add_summary(summary)
        for k, v in final.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TrialBoard", "BOARD_DIR"]
