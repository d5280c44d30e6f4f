"""What the trade-off table says about its steps, beyond the numbers: close calls, steps
that chose without some candidates, and steps where no expansion paid off.

Each note reads the rows ``expand.results.step_rows`` builds (fractions, one per
candidate), so the table, ``show --format json`` and any caller share the text.
"""

from __future__ import annotations

import math
from typing import Any

from expand.tables import num


def confidence_note(rows: list[dict[str, Any]], unsure: list[int], level: float) -> str:
    """The table's line on ``conf %``, and what to do about the close calls it marks.

    Raising ``search.confirm.max_extra_trials`` is the advice only where a step
    was not confirmed; a step whose contenders were trained again with more
    seeds and still fell short spent the budget it had, so saying "turn
    confirmation on" there sent users to a setting they already had.
    """
    text = ("conf %: the chance that the selection rule would pick this candidate again on other "
            "validation videos and seeds (paired bootstrap + seed noise; a step's add up to 100).")
    if not unsure:
        return text
    confirmed = {r["step"] for r in rows if r.get("seeds", 1) > 1}
    spent = [s for s in unsure if s in confirmed]
    plain = [s for s in unsure if s not in confirmed]
    text += f" *? marks steps below the {level:.0%} confidence level ({', '.join(map(str, unsure))}): close calls;"
    if plain:
        text += (f" search.confirm.max_extra_trials above 0 trains step(s) {', '.join(map(str, plain))}'s"
                 " contenders again with new seeds" + (";" if spent else "."))
    if spent:
        text += (f" step(s) {', '.join(map(str, spent))} trained theirs again (the seeds column) and spent"
                 " search.confirm.max_extra_trials short of the level: a larger budget, or longer trials"
                 " (x3d-expand calibrate says how long ranks), narrows them.")
    return text


def uncertain_steps(rows: list[dict[str, Any]], level: float) -> list[int]:
    """Steps whose chosen candidate's confidence is under ``level`` (unknown confidences are not marked)."""
    return [r["step"] for r in rows if r["chosen"] and r["step"] > 0 and num(r.get("confidence")) < level]


UNTRAINED = ("failed", "oom", "timeout", "diverged")  # a candidate the step could not compare


def partial_decisions(rows: list[dict[str, Any]]) -> list[str]:
    """One note per decided step that chose without some of its candidates, and for a step that
    trained none of them (the search stopped there: the table said only "failed", the reasons
    were in the CSV).

    A candidate that failed, ran out of memory or time, or diverged is not
    compared: the step picked among the others, and had it trained, the path
    might differ. The table shows each such row; this says what it means.
    """
    notes = []
    for step in sorted({r["step"] for r in rows if r["step"]}):
        cands = [r for r in rows if r["step"] == step and r["status"] != "duplicate"]
        lost = [r for r in cands if r["status"] in UNTRAINED]
        why = "; ".join(f"{r['axis']} {r['status']}" + (f" ({r['reason'][:80]})" if r.get("reason") else "")
                        for r in lost)
        if lost and any(r["chosen"] for r in cands):
            notes.append(f"note: step {step} chose among {len(cands) - len(lost)} of its {len(cands)} candidates, "
                         f"without {why}")
        elif lost and all(r["status"] in (*UNTRAINED, "skipped") for r in cands):
            sets = " ".join(f"--set retries.{k}=N" for k in sorted({r["status"] for r in lost}))
            notes.append(f"note: step {step} trained none of its {len(cands)} candidates, so the search stopped "
                         f"there: {why}. Once the cause is fixed, `x3d-expand resume RUN {sets}` (N above the "
                         "attempts they had) trains them again; finished trials are kept")
    return notes


def regressed_steps(rows: list[dict[str, Any]]) -> list[str]:
    """One note per decided step whose every trained candidate scored below its parent.

    The rules pick a candidate anyway (the paper's path always grows), so the
    table's gain column is the only sign, and a step that lost accuracy reads
    like any other. In the paper each step gains; a step where all six
    expansions lose usually means the trials are too short for the larger
    models to pay off, or the gaps are seed noise, which ``calibrate`` tells apart.
    """
    notes = []
    for step in sorted({r["step"] for r in rows if r["step"]}):
        ok = [r for r in rows if r["step"] == step and r["status"] == "ok" and not math.isnan(num(r.get("gain")))]
        if not ok or not any(r["chosen"] for r in rows if r["step"] == step) or any(r["gain"] >= 0 for r in ok):
            continue
        best = max(ok, key=lambda r: r["gain"])
        trained = "every candidate" if len(ok) == len([r for r in rows if r["step"] == step
                                                         and r["status"] != "duplicate"]) else "every trained candidate"
        se = num(best.get("top1_se"))
        noise = f"; its top-1's standard error {100 * se:.1f} pts" if not math.isnan(se) and se > 0 else ""
        notes.append(f"note: step {step}: {trained} scored below its parent (the best, {best['axis']}, "
                     f"{100 * best['gain']:+.1f} pts{noise}): no expansion paid off within a trial. If steps keep "
                     "doing this, the trials may be too short for larger models; `x3d-expand calibrate` says "
                     "whether the schedule ranks candidates")
    return notes


def step_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Every note on the table's steps, in the order ``show`` prints them."""
    return partial_decisions(rows) + regressed_steps(rows)
