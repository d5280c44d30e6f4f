"""Every attempt of every trial, in the order they finished: ``show --trials`` and ``Run.attempts``.

Why beside the step table: the step table shows each candidate's last attempt, which is what the
search decided on. Debugging a week-long cluster search asks other questions — which attempts
failed, how often, with which error, on which machine and device, and how long each took — and
trials.jsonl holds the answers one JSON line each, which nobody should have to read by hand.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from expand.run import RunDir

COLUMNS = ["finished", "trial_id", "attempt", "step", "axis", "gflops", "status", "top1", "seconds", "device",
           "host", "error"]
HEADERS = ["finished", "trial", "attempt", "step", "axis", "GFLOPs", "status", "top1 %", "seconds", "device",
           "host", "error"]


def attempt_rows(run_dir: str) -> list[dict[str, Any]]:
    """One row per line of trials.jsonl (fractions, full error text)."""
    from expand.errors import InputError

    run = RunDir(run_dir)
    if not run.exists():
        raise InputError(f"{run.path}: not a run folder (no state.json)")
    rows = []
    for rec in run.read_trials().records:
        t, r = rec.trial, rec.result
        rows.append({
            "finished": datetime.datetime.fromtimestamp(rec.finished_at).isoformat(" ", "seconds")
            if rec.finished_at else "",
            "trial_id": t.trial_id, "attempt": r.attempt or t.attempt, "step": t.step, "axis": t.axis,
            "gflops": t.gflops, "status": r.status, "top1": r.top1, "seconds": r.seconds, "device": r.device,
            "host": str(r.extra.get("host") or ""), "error": r.error or "",
        })
    return rows


def render_attempts(run_dir: str, fmt: str = "table") -> str:
    """The attempts as a table people read (top-1 in %, the error's first line) or as data (csv, json:
    fractions in *_frac keys, the whole error)."""
    from expand.tables import render

    rows = attempt_rows(run_dir)
    if fmt == "json":  # the CLI's one object; fractions named so, NaN as null
        import os

        from expand.tables import clean_nans, json_line

        return json_line(clean_nans({"run": os.path.abspath(run_dir), "attempts": rows}))
    if fmt == "csv":
        return render(rows, COLUMNS, fmt)
    shown = [dict(r, top1="" if math.isnan(r["top1"]) else f"{100 * r['top1']:.1f}",
                  error=_first_line(r["error"], 100 if fmt == "table" else 1000)) for r in rows]
    text = render(shown, COLUMNS, fmt, headers=HEADERS, digits=4, column_digits={"seconds": 1})
    if fmt == "table":
        failed = sum(r["status"] != "ok" for r in rows)
        text += (f"\n\n{len(rows)} attempt(s) of {len({r['trial_id'] for r in rows})} trial(s), {failed} not ok; "
                 "the step table shows each trial's last attempt. Whole errors: --format json or trials.jsonl.")
    return text


def _first_line(text: str, limit: int) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[:limit - 1] + "…"


__all__ = ["COLUMNS", "attempt_rows", "render_attempts"]
