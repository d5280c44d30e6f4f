"""Matplotlib figures of a run: the expansion picture and the per-step gains."""

from __future__ import annotations

import math
import os
from typing import Any

def axis_color(axis: str) -> str:
    """The axis's colour from the axis table (the basis black; anything else grey)."""
    from expand.search.axes import AXES

    return "black" if axis == "basis" else AXES.get(axis).color if axis in AXES else "tab:gray"


def plot_run(run_dir: str, rows: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from expand.search.coordinator import load_contractions
    from expand.run import RunDir

    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    ok = [r for r in rows if r["status"] in ("ok", "duplicate") and not math.isnan(r["top1"])]
    written = []

    kind = RunDir(run_dir).read_state().get("kind", "expansion")
    if kind != "expansion":
        return [_plot_baseline(plt, ok, kind, out_dir)]

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for axis in dict.fromkeys(["basis", *(r["axis"] for r in ok)]):
        pts = [r for r in ok if r["axis"] == axis and not r["chosen"]]
        color = axis_color(axis)
        if pts:
            ax.errorbar([r["gflops"] for r in pts], [100 * r["top1"] for r in pts], yerr=_error_bars(pts),
                        fmt="o", color=color, alpha=0.55, ms=5, capsize=2, label=axis)
    path = [r for r in ok if r["chosen"]]
    ax.errorbar([r["gflops"] for r in path], [100 * r["top1"] for r in path], yerr=_error_bars(path),
                fmt="-o", color="black", lw=2, ms=7, capsize=3, label="expansion path (bars: ±1 std)",
                zorder=3)
    for r in path:
        ax.annotate(f"{r['step']}:{r['axis']}", (r["gflops"], 100 * r["top1"]),
                    textcoords="offset points", xytext=(5, -12), fontsize=8)
    contracted = [c for c in load_contractions(RunDir(run_dir)) if c.get("spec")]
    for c in contracted:
        y = c.get("top1")
        ax.axvline(c["target_gflops"], color="gray", ls=":", lw=1)
        if y is not None:
            ax.scatter([c["gflops"]], [100 * y], marker="*", s=160, color="gold", edgecolor="black",
                       zorder=4, label=f"contracted @ {c['target_gflops']:g}")
    path_png = _save_gflops_figure(plt, fig, ax, "top-1 accuracy (%)",
                                   "Expansion: every candidate, the chosen path, contracted budgets",
                                   os.path.join(out_dir, "expansion.png"), legend_loc="best")
    written.append(path_png)

    steps = sorted({r["step"] for r in ok if r["step"] > 0})
    if steps:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        axes = [a for a in dict.fromkeys(r["axis"] for r in ok) if a != "basis"]
        width = 0.8 / len(axes)
        for i, axis in enumerate(axes):
            xs, ys = [], []
            for s in steps:
                r = next((r for r in ok if r["step"] == s and r["axis"] == axis), None)
                if r is not None and not math.isnan(r["gain_per_gflop"]):
                    xs.append(s + (i - len(axes) / 2) * width)
                    ys.append(100 * r["gain_per_gflop"])
            ax.bar(xs, ys, width=width, color=axis_color(axis), label=axis)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(steps)
        ax.set_xlabel("step")
        ax.set_ylabel("top-1 gain per added GFLOP (points/GFLOP)")
        ax.set_title("Gain per added GFLOP of each axis, per step")
        ax.legend(fontsize=8, ncol=3)
        fig.tight_layout()
        gains_png = os.path.join(out_dir, "gains.png")
        fig.savefig(gains_png, dpi=110)
        plt.close(fig)
        written.append(gains_png)
    return written


def _error_bars(rows: list[dict[str, Any]]) -> list[float]:
    """One std of each top-1 (in points) as the step's confidence estimated it; 0 where unknown."""
    return [100 * r["top1_se"] if isinstance(r.get("top1_se"), float) and math.isfinite(r["top1_se"]) else 0.0
            for r in rows]


def _plot_baseline(plt: Any, ok: list[dict[str, Any]], kind: str, out_dir: str) -> str:
    """A baseline run: every trained model, and the best top-1 reached at or under each GFLOPs."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter([r["gflops"] for r in ok], [100 * r["top1"] for r in ok], color="tab:purple", alpha=0.6,
               s=30, label=f"{kind} trials")
    frontier = _frontier([(r["gflops"], r["top1"]) for r in ok])
    if frontier:
        ax.step([g for g, _ in frontier], [a for _, a in frontier], where="post", color="black",
                label="best at or under GFLOPs")
    return _save_gflops_figure(plt, fig, ax, "top-1 accuracy (%)", f"{kind} baseline: every trained model",
                               os.path.join(out_dir, f"{kind}.png"))


def plot_compare(curves: dict[str, list[tuple[float, float]]], budgets: list[float], out_path: str) -> str:
    """Best top-1 at or under each GFLOPs, one line per run, budgets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, points in curves.items():
        frontier = _frontier(points)
        if frontier:
            ax.step([g for g, _ in frontier], [a for _, a in frontier], where="post", marker="o", ms=4,
                    label=label)
    for b in budgets:
        ax.axvline(b, color="gray", ls=":", lw=1)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    return _save_gflops_figure(plt, fig, ax, "best top-1 at or under the GFLOPs (%)",
                               "Best accuracy under a FLOP budget, per run (dotted: the compared budgets)",
                               out_path)


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(GFLOPs, best top-1 in % of any point at or under them), in GFLOPs order."""
    out, best = [], -1.0
    for g, a in sorted(points):
        best = max(best, a)
        out.append((g, 100 * best))
    return out


def _save_gflops_figure(plt: Any, fig: Any, ax: Any, ylabel: str, title: str, path: str,
                        legend_loc: str = "lower right") -> str:
    """The shared look of every accuracy-vs-GFLOPs figure: log x labelled with the counter."""
    from expand.complexity import COUNTER_SHORT

    ax.set_xscale("log")
    ax.set_xlabel(f"GFLOPs ({COUNTER_SHORT}, log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc=legend_loc)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_calibration(rows: list[dict[str, Any]], summary: dict[str, Any], out_path: str) -> str:
    """Each candidate's top-1 against the schedule's length (one line per axis), tau in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for axis in dict.fromkeys(r["axis"] for r in rows):
        pts = sorted((r for r in rows if r["axis"] == axis and not math.isnan(r["top1"])),
                     key=lambda r: r["multiplier"])
        if pts:
            std = [100 * r["top1_std"] if not math.isnan(r["top1_std"]) else 0.0 for r in pts]
            ax.errorbar([r["multiplier"] for r in pts], [100 * r["top1"] for r in pts], yerr=std, fmt="-o",
                        capsize=2, color=axis_color(axis), label=axis)
    taus = ", ".join(f"{p['multiplier']:g}x: {p['kendall_tau']:.2f}" for p in summary["per_schedule"]
                     if not math.isnan(p["kendall_tau"]))
    ax.set_xscale("log", base=2)
    ax.set_xticks([p["multiplier"] for p in summary["per_schedule"]])
    ax.set_xticklabels([f"{p['multiplier']:g}x" for p in summary["per_schedule"]])
    ax.set_xlabel("schedule length (x the experiment's)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Calibration: step-1 candidates by schedule (Kendall tau vs longest: {taus})", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
