"""The reading side of a run: per-step trade-off table, path, contractions, cost, plots.

Everything here reads only the run folder (state.json, trials.jsonl,
contractions.json), so it works on a run in progress, on a finished one and on
a copied results folder, and never changes the search.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from expand.complexity import COUNTER
from expand.rounding import format_factor
from expand.run import RunDir, environment, latest_by_trial
from expand.run.status import live_status, running_trials
from expand.spec import FACTORS, MULTIPLIERS
from expand.step_notes import confidence_note, step_notes, uncertain_steps
from expand.tables import clean_nans, json_line, latex_commented, machine_key, num, render

ROW_COLUMNS = [
    "step", "axis", *FACTORS,
    "gflops", "params", "ratio", "top1", "top5", "gain", "added_gflops", "gain_per_gflop",
    "status", "seconds", "infer_clips_s", "chosen", "trial_id", "reason", "val_top1",
    "confidence", "seeds", "top1_se",
]
# steps.csv, show --format csv/json and Run.steps: the same columns, fractions named *_frac
STEP_COLUMNS = [machine_key(c) for c in ROW_COLUMNS]
TABLE_COLUMNS = [
    "step", "axis", *FACTORS, "gflops",
    "params_m", "top1", "gain", "gain_per_gflop", "confidence", "status", "seconds", "infer_clips_s", "chosen",
]
TABLE_HEADERS = {"gflops": "GFLOPs", "params_m": "params (M)", "top1": "top1 %", "gain": "gain (pts)",
                 "gain_per_gflop": "gain/GFLOP (pts)", "val_top1": "val top1 % (reports)", "confidence": "conf %",
                 "infer_clips_s": "infer clips/s"}
# places in the table: measured times and rates show noise past these; GFLOPs and params are counts
MEASURED_DIGITS = {"seconds": 1, "infer_clips_s": 0}
DEFAULT_CONFIDENCE_LEVEL = 0.9
FLOPS_NOTE = f"GFLOPs: {COUNTER}."


def _read(run_dir: str) -> tuple[dict[str, Any], dict[str, list], int]:
    run = RunDir(run_dir)
    if not os.path.isfile(run.state_path):
        from expand.errors import InputError

        raise InputError(f"{run.path}: not a run folder (no state.json)")
    log = run.read_trials()
    return run.read_state(), latest_by_trial(log.records), log.partial_lines


def baseline_rows(state: dict[str, Any], attempts: dict[str, list]) -> list[dict[str, Any]]:
    """A baseline run: one row per trained trial in order; the best one is 'chosen'."""
    best = (state.get("best") or {}).get("trial_id")
    rows = []
    for i, recs in enumerate(attempts.values()):
        t, r = recs[-1].trial, recs[-1].result
        rows.append({
            "step": i + 1, "axis": t.axis, **_factors(t.spec.to_dict()), "gflops": t.gflops,
            "params": t.params, "ratio": math.nan, "top1": num(r.top1), "top5": num(r.top5),
            "gain": math.nan, "added_gflops": math.nan, "gain_per_gflop": math.nan, "status": r.status,
            "chosen": t.trial_id == best, "trial_id": t.trial_id, "reason": r.error_line,
            "seconds": sum(x.result.seconds for x in recs), "infer_clips_s": r.infer_clips_per_s,
            "attempts": len(recs), "params_m": t.params / 1e6 if t.params else math.nan,
        })
    return rows


def step_rows(run_dir: str) -> list[dict[str, Any]]:
    """Every candidate of every step (step 0 = the basis), one dict each."""
    state, attempts, _ = _read(run_dir)
    if state.get("kind", "expansion") != "expansion":
        return baseline_rows(state, attempts)
    rows: list[dict[str, Any]] = []
    path = state.get("path", [])

    def trial_info(trial_id: str | None) -> dict[str, Any]:
        recs = attempts.get(trial_id or "", [])
        if not recs:
            return {"seconds": math.nan, "infer_clips_s": math.nan, "attempts": 0, "val_top1": math.nan}
        return {
            "seconds": sum(r.result.seconds for r in recs),
            "infer_clips_s": recs[-1].result.infer_clips_per_s,
            "attempts": len(recs),
            # with a minival, top1 is the minival's (it selects) and this the validation split's
            "val_top1": num(recs[-1].result.extra.get("val_top1")),
        }

    if path:
        b = path[0]
        rows.append({"step": 0, "axis": "basis", **_factors(b["spec"]), "gflops": b["gflops"],
                     "params": b["params"], "ratio": math.nan, "top1": b["top1"], "top5": b["top5"],
                     "gain": math.nan, "added_gflops": math.nan, "gain_per_gflop": math.nan,
                     "status": "ok", "chosen": True, "trial_id": b["trial_id"], "reason": "",
                     "confidence": math.nan, "seeds": 1, "top1_se": math.nan, **trial_info(b["trial_id"])})
    for step in state.get("steps", []):
        p_top1, p_gf = step.get("parent_top1"), step.get("parent_gflops")
        for c in step["candidates"]:
            c = _with_trained_result(c, attempts)
            top1 = num(c.get("top1"))
            gf = num(c.get("gflops"))
            gain = top1 - num(p_top1)
            added = gf - num(p_gf)
            info = trial_info(c.get("trial_id")) if c["status"] != "duplicate" else {
                **trial_info(c.get("trial_id")), "seconds": 0.0}
            if c["status"] != "duplicate":  # confirmation trials (more seeds) are part of its cost
                info["seconds"] += sum(trial_info(t)["seconds"] for t in c.get("seed_trials") or [])
            rows.append({
                "step": step["step"], "axis": c["axis"], **_factors(c.get("spec")),
                "gflops": gf, "params": c.get("params") or math.nan, "ratio": num(c.get("ratio")),
                "top1": top1, "top5": num(c.get("top5")), "gain": gain, "added_gflops": added,
                "gain_per_gflop": gain / added if added > 0 else math.nan,
                "status": c["status"], "chosen": bool(c.get("chosen")), "trial_id": c.get("trial_id"),
                "reason": c.get("reason") or "", "confidence": num(c.get("confidence")),
                "seeds": int(c.get("seeds") or 1) if c["status"] in ("ok", "duplicate") else 0,
                "top1_se": num(c.get("top1_se")), **info,
            })
    for r in rows:
        r["params_m"] = r["params"] / 1e6 if r.get("params") else math.nan
    return rows


def _with_trained_result(candidate: dict[str, Any], attempts: dict[str, list]) -> dict[str, Any]:
    """A candidate of the step in progress, with its trial's result once trials.jsonl has one.

    state.json records a step's results when the step is decided; on GPUs a step
    takes hours, and ``show`` during it should say which candidates have trained
    and how they did (status ``ok`` or the attempt's failure; nothing is chosen yet).
    """
    recs = attempts.get(candidate.get("trial_id") or "", [])
    if candidate.get("status") != "pending" or not recs:
        return candidate
    last = recs[-1]
    if _factors(last.trial.spec.to_dict()) != _factors(candidate.get("spec")):  # a record from before resume --force
        return candidate
    r = last.result
    return {**candidate, "status": r.status, "top1": num(r.top1) if r.ok else None,
            "top5": num(r.top5) if r.ok else None, "reason": r.error_line}


def _factors(spec: dict[str, Any] | None) -> dict[str, Any]:
    return {k: (spec or {}).get(k) for k in FACTORS}


def step_frame(run_dir: str) -> pd.DataFrame:
    return pd.DataFrame(step_rows(run_dir), columns=ROW_COLUMNS).rename(columns=machine_key)


def write_steps_csv(run_dir: str) -> str:
    from expand.fileio import atomic_write

    run = RunDir(run_dir)
    if run.read_state().get("kind") == "calibration":  # its table is calibration.csv
        return os.path.join(run_dir, "calibration.csv")
    atomic_write(run.steps_path, step_frame(run_dir).to_csv(index=False))
    return run.steps_path


def cost(run_dir: str) -> dict[str, Any]:
    """Trials run, trial-seconds and device-hours, per step and in total (every attempt counts)."""
    _, attempts, _ = _read(run_dir)
    per_step: dict[int, dict[str, float]] = {}
    gpu = False
    for recs in attempts.values():
        for r in recs:
            s = per_step.setdefault(r.trial.step, {"trials": 0, "trial_seconds": 0.0, "device_hours": 0.0})
            s["trials"] += 1
            s["trial_seconds"] += r.result.seconds
            units = r.result.gpus if r.result.gpus else 1.0
            gpu = gpu or bool(r.result.gpus)
            s["device_hours"] += r.result.seconds * units / 3600
    total = {"trials": sum(s["trials"] for s in per_step.values()),
             **{k: sum((s[k] for s in per_step.values()), 0.0) for k in ("trial_seconds", "device_hours")}}
    return {"per_step": {str(k): v for k, v in sorted(per_step.items())}, "total": total,
            "unit": "GPU-hours" if gpu else "trial-hours (one worker each)"}


def videos_seen(attempts: dict[str, list]) -> dict[str, list[int]]:
    """The videos the trained trials saw, per split: ``[fewest, most]`` over trials (equal, unless
    the dataset changed during the run), and how many listed videos were unreadable and skipped."""
    seen = [recs[-1].result.extra.get("videos") for recs in attempts.values() if recs[-1].result.status == "ok"]
    seen = [v for v in seen if isinstance(v, dict)]
    keys = [k for k in ("train", "val", "minival", "unreadable") if any(k in v for v in seen)]
    return {k: [min(v.get(k, 0) for v in seen), max(v.get(k, 0) for v in seen)] for k in keys}


def hosts(attempts: dict[str, list]) -> dict[str, dict[str, Any]]:
    """Per machine that ran trials (each trial's last attempt): trials, how many not ok, torch versions."""
    out: dict[str, dict[str, Any]] = {}
    for recs in attempts.values():
        r = recs[-1].result if recs else None
        if r is None or not r.extra.get("host"):
            continue  # a trial from before hosts were recorded, or one whose worker died
        h = out.setdefault(str(r.extra["host"]), {"trials": 0, "not_ok": 0, "torch": []})
        h["trials"] += 1
        h["not_ok"] += not r.ok
        if r.extra.get("torch") and str(r.extra["torch"]) not in h["torch"]:
            h["torch"].append(str(r.extra["torch"]))
    return dict(sorted(out.items()))


def hosts_line(per_host: dict[str, dict[str, Any]]) -> str:
    """'hosts: 2 ran trials: gpu-a 12 (2 not ok), gpu-b 10; torch differs: 2.5.1 on gpu-a, 2.4.1 on gpu-b'
    when trials ran on more than one machine ('' on one): a problem that follows a node shows here."""
    if len(per_host) < 2:
        return ""
    line = "hosts: {} ran trials: {}".format(len(per_host), ", ".join(
        f"{h} {v['trials']}" + (f" ({v['not_ok']} not ok)" if v["not_ok"] else "") for h, v in per_host.items()))
    if len({t for v in per_host.values() for t in v["torch"]}) > 1:  # two torch builds: not quite one experiment
        line += "; torch differs: " + ", ".join(f"{'/'.join(v['torch'])} on {h}" for h, v in per_host.items()
                                                if v["torch"])
    return line


def videos_line(seen: dict[str, list[int]], check: str = "") -> str:
    """'data: 317 train, 200 val videos per trial; 4 listed videos unreadable, skipped ...' ('' if unknown)."""
    if not seen:
        return ""

    def count(k: str) -> str:
        low, high = seen[k]
        return f"{low}" if low == high else f"{low}-{high}"

    splits = ", ".join(f"{count(k)} {k}" for k in ("train", "val", "minival") if k in seen)
    line = f"data: {splits} videos per trial"
    if seen.get("unreadable", [0, 0])[1]:
        from expand.data.checks import unreadable_note

        line += f"; {unreadable_note(count('unreadable'), check)}"
    return line


def contraction_source(c: dict[str, Any]) -> str:
    """Where a contracted model's accuracy comes from: a reused path model, its own trial, or nowhere yet."""
    if c.get("reused_step") is not None:
        return f"= step {c['reused_step']} ({c.get('reused_axis')}), trained"
    if c.get("top1") is not None:
        return f"trained ({c.get('trial_id')})"
    return "not trained (contract --train)" if c.get("spec") else ""


def render_contractions(items: list[dict[str, Any]], fmt: str) -> str:
    rows = [{
        "target": c["target_gflops"], "step": c.get("step"), "axis": c.get("axis"),
        "model": c.get("name") or "-", "gflops": c.get("gflops"),
        "flop_error": f"{100 * c['flop_error']:+.1f}%" if c.get("flop_error") is not None else "",
        "top1": _pct(c.get("top1")), "source": contraction_source(c), "note": c.get("note") or "",
    } for c in items]
    return render(rows, ["target", "step", "axis", "model", "gflops", "flop_error", "top1", "source", "note"], fmt,
                  headers=["target GFLOPs", "step", "axis", "model", "GFLOPs", "FLOP error", "top1 %", "source",
                           "note"],
                  digits=4)


def render_run(run_dir: str, fmt: str = "table") -> str:
    from expand.search.coordinator import saved_contractions

    state, attempts, partial = _read(run_dir)
    if state.get("kind") == "calibration":
        from expand.search.calibrate import render_calibration

        if fmt == "json":
            return json_line(clean_nans({"run": os.path.abspath(run_dir), **state, "cost": cost(run_dir)}))
        text, settings = render_calibration(state, fmt), _settings_lines(state)
        if fmt != "csv" and settings:  # the schedule may be a --set one
            text = f"{'% ' if fmt == 'latex' else ''}{settings[0]}\n{text}"
        return text
    rows = step_rows(run_dir)
    contractions = saved_contractions(RunDir(run_dir), state.get("path", []))
    spend = cost(run_dir)
    status, why, writer = live_status(run_dir, state)
    if status == "running":  # of a batch's pending trials, which train now and which wait for a worker
        now = running_trials(run_dir)
        rows = [dict(r, status="running") if r.get("status") == "pending" and r.get("trial_id") in now else r
                for r in rows]
    if fmt == "json":
        return json_line(clean_nans({
            "run": os.path.abspath(run_dir), "status": status, "writer": writer,
            "stop_reason": why, "selection": state.get("selection_rule"), "settings": state.get("settings") or {},
            "counter": COUNTER, "candidates": [{c: r.get(c) for c in ROW_COLUMNS} for r in rows],
            "path": state.get("path", []), "contractions": contractions, "cost": spend,
            "videos": videos_seen(attempts), "incomplete_lines": partial,
            "environment": environment.sessions(run_dir),  # one record per session that trained
            "hosts": hosts(attempts),  # where the trials ran (their last attempts)
            # the table's notes on steps: chose without some candidates, trained none, or lost accuracy
            "notes": [n[len("note: "):] for n in step_notes(rows)],
        }))
    if fmt == "csv":
        return step_frame(run_dir).to_csv(index=False)
    level = float(state.get("confidence_level") or DEFAULT_CONFIDENCE_LEVEL)
    unsure = uncertain_steps(rows, level)
    shown = [dict(r, chosen=("*?" if r["step"] in unsure else "*") if r["chosen"] else "",
                  top1=_pct(r["top1"]), gain=_pct(r["gain"], True), gain_per_gflop=_pct(r["gain_per_gflop"]),
                  val_top1=_pct(r.get("val_top1", math.nan)), confidence=_pct(r.get("confidence", math.nan)),
                  **{k: format_factor(r[k]) for k in MULTIPLIERS if r.get(k)})
             for r in rows]
    minival = any(not math.isnan(num(r.get("val_top1"))) for r in rows)
    columns = TABLE_COLUMNS[:TABLE_COLUMNS.index("top1") + 1] + ["val_top1"] + \
        TABLE_COLUMNS[TABLE_COLUMNS.index("top1") + 1:] if minival else list(TABLE_COLUMNS)
    if any(r.get("seeds", 1) > 1 for r in rows):
        columns.insert(columns.index("top1") + 1, "seeds")
    if state.get("kind", "expansion") != "expansion":
        columns.remove("confidence")
    headers = [TABLE_HEADERS.get(h, h) for h in columns]
    if minival:
        headers[columns.index("top1")] = "top1 % (minival, selects)"
    parts = [f"run: {os.path.abspath(run_dir)}  status: {status}  ({why})",
             *_settings_lines(state), f"selection: {state.get('selection_rule', '')}", "",
             render(shown, columns, fmt, headers=headers, digits=4, column_digits=MEASURED_DIGITS)]
    path = state.get("path", [])
    if state.get("kind", "expansion") != "expansion":
        best = state.get("best") or {}
        cap = state.get("max_gflops")
        capped = (f"{state.get('over_cap', 0)} samples over the cap {cap:g} GFLOPs (not trained)"
                  if cap is not None else "no GFLOP cap")
        parts += ["", f"{state['kind']} baseline: {state.get('trained', 0)} of {state.get('trial_budget')} "
                      f"trials trained, {capped}, {state.get('repeats', 0)} repeats"]
        if best:
            parts.append(f"best: {best['name']} ({best['gflops']:.4g} GF, top1 {_pct(best['top1'])}%)")
    if path:
        chain = " -> ".join(f"{p['axis']}({p['gflops']:.4g} GF, {_pct(p['top1'])}%)" for p in path)
        parts += ["", f"path: {chain}"]
    if contractions:
        parts += ["", "contracted models:", render_contractions(contractions, fmt)]
    t = spend["total"]
    data_line = videos_line(videos_seen(attempts), _check_target(run_dir))
    parts += ["", *([data_line] if data_line else []),
              f"cost: {int(t['trials'])} trials, {t['trial_seconds']:.0f} trial-seconds, "
              f"{t['device_hours']:.3f} {spend['unit']}",
              *([env_line] if (env_line := environment.summary(run_dir)) else []),
              *([machines] if (machines := hosts_line(hosts(attempts))) else []),
              f"{FLOPS_NOTE} top1 in %; gain: top-1 points over the step's parent; gain/GFLOP: top-1 "
              "points per added GFLOP. (csv/json: fractions, in *_frac columns.)"]
    if state.get("kind", "expansion") == "expansion" and len(rows) > 1:
        parts.append(confidence_note(rows, unsure, level))
    parts += step_notes(rows)
    if partial:
        parts.append(f"note: {partial} unreadable line(s) in trials.jsonl ignored (a write cut short, or a "
                     "damaged or edited file): their trials count as not run, and `resume` reruns them")
    return latex_commented("\n".join(parts)) if fmt == "latex" else "\n".join(parts)


def _settings_lines(state: dict[str, Any]) -> list[str]:
    """The ``--set`` a run started with: its table is not what the experiment file alone would give."""
    from expand.config.settings import shown_settings

    settings = state.get("settings")
    text = shown_settings(settings) if isinstance(settings, dict) else ""
    return [f"settings: {text} (changes to {state.get('experiment_source') or 'the experiment'}; "
            "config.yaml holds the result)"] if text else []


def _check_target(run_dir: str) -> str:
    """What ``data check`` should read for the run's skipped videos: its dataset folder, or its
    config.yaml when the folder alone reads differently ('' when it cannot say)."""
    from expand.config import DataConfig
    from expand.data.checks import check_target

    run = RunDir(run_dir)
    try:
        data = DataConfig(**(run.read_config().get("data") or {}))
    except Exception:  # noqa: BLE001 - only a hint in a line of `show`
        return ""
    return check_target(data, run.file("config.yaml"))


def _pct(x: Any, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def write_plots(run_dir: str) -> list[str]:
    from expand.plots import plot_calibration, plot_run

    state = RunDir(run_dir).read_state()
    if state.get("kind") == "calibration":
        import pandas as pd

        if not state.get("summary"):
            return []
        from expand.tables import human_key

        rows = pd.read_csv(os.path.join(run_dir, "calibration.csv")).rename(columns=human_key).to_dict("records")
        return plot_calibration(rows, state["summary"], os.path.join(run_dir, "plots", "calibration.png"))

    return plot_run(run_dir, step_rows(run_dir))
