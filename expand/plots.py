"""Matplotlib figures of a run: the expansion picture and the per-step gains."""

from __future__ import annotations

import math
import os
from typing import Any, Optional


def axis_color(axis: str) -> str:
    """The axis's colour from the axis table (the basis black; anything else grey)."""
    from expand.search.axes import AXES

    return "black" if axis == "basis" else AXES.get(axis).color if axis in AXES else "tab:gray"


# Sized for one column of a two-column paper (3.5 in) at 7 pt, so the figure is readable as printed;
# written as PNG (300 dpi) for screens and as PDF (vector) for LaTeX.
COLUMN_WIDTH_IN = 3.5
FONT_PT = 7
PNG_DPI = 300
MUTED = "#b8b8b8"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT_PT, "axes.titlesize": FONT_PT + 1, "legend.fontsize": FONT_PT - 1,
                         "xtick.labelsize": FONT_PT - 1, "ytick.labelsize": FONT_PT - 1, "pdf.fonttype": 42})
    return plt


def paper_axis_name(axis: str) -> str:
    """The paper's name of an axis (X-Fast, X-Temporal, ...), for labels; 'basis' for the basis."""
    from expand.search.axes import AXES

    return "basis" if axis == "basis" else AXES.get(axis).paper_name if axis in AXES else axis


def plot_run(run_dir: str, rows: list[dict[str, Any]]) -> list[str]:
    """The expansion as in the paper's Fig. 2, and each axis's gain per GFLOP per step; PNG and PDF each."""
    from expand.run import RunDir

    plt = _pyplot()
    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    ok = [r for r in rows if r["status"] in ("ok", "duplicate") and not math.isnan(r["top1"])]
    if not ok:
        return []  # no trained trial yet (or the basis failed): nothing to draw on log axes
    state = RunDir(run_dir).read_state()
    kind = state.get("kind", "expansion")
    if kind != "expansion":
        return _plot_baseline(plt, ok, kind, out_dir)
    written = _plot_expansion(plt, ok, _contractions(run_dir, state), os.path.join(out_dir, "expansion.png"))
    steps = sorted({r["step"] for r in ok if r["step"] > 0})
    if steps:
        written += _plot_gains(plt, ok, steps, os.path.join(out_dir, "gains.png"))
    return written


def _contractions(run_dir: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    from expand.search.coordinator import saved_contractions
    from expand.run import RunDir

    return [c for c in saved_contractions(RunDir(run_dir), state.get("path", [])) if c.get("spec")]


def _plot_expansion(plt: Any, ok: list[dict[str, Any]], contracted: list[dict[str, Any]], path_png: str) -> list[str]:
    """Fig. 2: every candidate muted, the path in black labelled with each step's axis, budgets as lines."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.8))
    others = [r for r in ok if not r["chosen"]]
    # hollow markers: candidates with equal GFLOPs and top-1 stay visible on top of each other
    ax.errorbar(_dodged(others), [100 * r["top1"] for r in others], yerr=_error_bars(others),
                fmt="o", mfc="none", mec=MUTED, ecolor=MUTED, ms=3.5, mew=0.8, capsize=1.5, lw=0.8,
                label="candidates", zorder=2)
    path = sorted((r for r in ok if r["chosen"]), key=lambda r: r["step"])
    ax.errorbar([r["gflops"] for r in path], [100 * r["top1"] for r in path], yerr=_error_bars(path),
                fmt="-o", color="black", lw=1.2, ms=3.5, capsize=2, label="expansion path", zorder=3)
    for i, r in enumerate(path):
        label = "basis" if r["step"] == 0 else f"{r['step']}: {paper_axis_name(r['axis'])}"
        # A path mostly rises: below-right of a point lies under the segment leaving it, above-left
        # over the segment arriving. Alternate the two so neighbours' labels do not collide; the
        # last (rightmost) always goes above-left, inside the frame.
        left = i % 2 == 1 or (i == len(path) - 1 and i > 0)
        ax.annotate(label, (r["gflops"], 100 * r["top1"]), textcoords="offset points",
                    xytext=(-4, 4) if left else (4, -9), ha="right" if left else "left",
                    fontsize=FONT_PT - 1, zorder=5)
    ax.margins(x=0.08, y=0.12)  # room for the labels of the first and last path models
    bottom = ax.get_ylim()[0]
    for c in contracted:
        ax.axvline(c["target_gflops"], color="tab:blue", ls=":", lw=0.9, zorder=1)
        # at the foot of the line: the path rises to the right, so the top of a budget's line is where
        # the last path model's label sits (they overlapped)
        ax.annotate(f"{c['target_gflops']:g} GF", (c["target_gflops"], bottom), textcoords="offset points",
                    xytext=(-2, 4), fontsize=FONT_PT - 2, color="tab:blue", rotation=90, va="bottom", ha="right")
        if c.get("top1") is not None:
            ax.plot([c["gflops"]], [100 * c["top1"]], marker="*", ms=7, color="gold", mec="black", mew=0.5,
                    ls="none", zorder=4, label="contracted to a budget" if c is contracted[0] else None)
    if any(r.get("seeds", 1) > 1 for r in ok):
        ax.plot([], [], " ", label="bars: ±1 std over seeds")
    return _save_gflops_figure(plt, fig, ax, "top-1 accuracy (%)", "Expansion path", path_png, legend_loc="best")


def _dodged(rows: list[dict[str, Any]]) -> list[float]:
    """GFLOPs, with candidates that sit on the same point nudged apart (1.2 % each) so none hides another."""
    seen: dict[tuple[float, float], int] = {}
    xs = []
    for r in rows:
        key = (round(r["gflops"], 9), round(r["top1"], 4))
        k = seen[key] = seen.get(key, -1) + 1
        xs.append(r["gflops"] * (1 + 0.012 * k))
    return xs


def _plot_gains(plt: Any, ok: list[dict[str, Any]], steps: list[int], gains_png: str) -> list[str]:
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.4))
    axes = [a for a in dict.fromkeys(r["axis"] for r in ok) if a != "basis"]
    width = 0.8 / max(len(axes), 1)

    def bar_x(r: dict[str, Any]) -> float:  # the axes of a step side by side around its tick
        return r["step"] + (axes.index(r["axis"]) - (len(axes) - 1) / 2) * width

    bars = [r for r in ok if r["axis"] in axes and r["step"] in steps and not math.isnan(r["gain_per_gflop"])]
    for axis in axes:
        mine = [r for r in bars if r["axis"] == axis]
        ax.bar([bar_x(r) for r in mine], [100 * r["gain_per_gflop"] for r in mine], width=width,
               color=axis_color(axis), label=paper_axis_name(axis))
    for r in bars:  # the chosen axis of each step, marked above its bar
        if r["chosen"]:
            ax.annotate("▼", (bar_x(r), 100 * r["gain_per_gflop"]), ha="center", va="bottom", fontsize=FONT_PT - 1)
    ax.axhline(0, color="black", lw=0.6)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.45 * (high - low))  # room for the legend above the bars
    ax.set_xticks(steps)
    ax.set_xlabel("step (▼: the chosen axis)")
    ax.set_ylabel("top-1 gain per added GFLOP\n(points / GFLOP)")
    ax.set_title("Gain per added GFLOP, per axis and step")
    ax.legend(ncol=3, frameon=False)
    fig.tight_layout()
    return _save(plt, fig, gains_png)


def _save(plt: Any, fig: Any, png: str) -> list[str]:
    """Write ``png`` and a PDF beside it; returns both paths."""
    pdf = os.path.splitext(png)[0] + ".pdf"
    fig.savefig(png, dpi=PNG_DPI)
    fig.savefig(pdf)
    plt.close(fig)
    return [png, pdf]


def _error_bars(rows: list[dict[str, Any]]) -> Optional[list[float]]:
    """±1 std of top-1 (points) for models averaged over several seeds; None when no model was (no bars).

    A one-seed model's uncertainty is in the table's confidence column, not drawn.
    """
    bars = [100 * r["top1_se"] if r.get("seeds", 1) > 1 and isinstance(r.get("top1_se"), float)
            and math.isfinite(r["top1_se"]) else 0.0 for r in rows]
    return bars if any(bars) else None


def _plot_baseline(plt: Any, ok: list[dict[str, Any]], kind: str, out_dir: str) -> list[str]:
    """A baseline run: every trained model, and the best top-1 reached at or under each GFLOPs."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.8))
    ax.scatter([r["gflops"] for r in ok], [100 * r["top1"] for r in ok], facecolors="none",
               edgecolors="tab:purple", s=12, lw=0.8, label=f"{kind} trials")
    frontier = _frontier([(r["gflops"], r["top1"]) for r in ok])
    if frontier:
        ax.step([g for g, _ in frontier], [a for _, a in frontier], where="post", color="black", lw=1,
                label="best at or under GFLOPs")
    return _save_gflops_figure(plt, fig, ax, "top-1 accuracy (%)", f"{kind} baseline: every trained model",
                               os.path.join(out_dir, f"{kind}.png"))


def plot_compare(curves: dict[str, list[tuple[float, float]]], budgets: list[float], out_path: str) -> list[str]:
    """Best top-1 at or under each GFLOPs, one line per run, budgets as labelled lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.8))
    for label, points in curves.items():
        frontier = _frontier(points)
        if frontier:
            ax.step([g for g, _ in frontier], [a for _, a in frontier], where="post", marker="o", ms=2.5, lw=1,
                    label=label)
    top = ax.get_ylim()[1]
    for b in budgets:
        ax.axvline(b, color="gray", ls=":", lw=0.8)
        ax.annotate(f"{b:.3g} GF", (b, top), textcoords="offset points", xytext=(2, -8),
                    fontsize=FONT_PT - 2, color="gray", rotation=90, va="top")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    return _save_gflops_figure(plt, fig, ax, "best top-1 at or under (%)", "Best accuracy under a FLOP budget",
                               out_path)


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(GFLOPs, best top-1 in % of any point at or under them), in GFLOPs order."""
    out, best = [], -1.0
    for g, a in sorted(points):
        best = max(best, a)
        out.append((g, 100 * best))
    return out


def _plain_log_formatter() -> Any:
    """matplotlib's choice of which log ticks to label, written 0.003 rather than 3×10⁻³.

    Within a decade matplotlib labels the 2, 3, 4 ... ticks; in scientific
    notation neighbours ran into each other at a column's width.
    """
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLogFormatter(LogFormatterSciNotation):
        def __call__(self, x: float, pos: Any = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    return PlainLogFormatter


def _save_gflops_figure(plt: Any, fig: Any, ax: Any, ylabel: str, title: str, path: str,
                        legend_loc: str = "lower right") -> list[str]:
    """The shared look of every accuracy-vs-GFLOPs figure: log x labelled with the counter."""
    from expand.complexity import COUNTER_SHORT

    ax.set_xscale("log")
    plain = _plain_log_formatter()
    ax.xaxis.set_major_formatter(plain())
    ax.xaxis.set_minor_formatter(plain(labelOnlyBase=False))
    ax.tick_params(axis="x", which="both", length=3)  # labelled minor ticks in line with the major ones
    ax.set_xlabel(f"GFLOPs ({COUNTER_SHORT}, log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25, lw=0.5)
    ax.legend(loc=legend_loc, frameon=False)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_calibration(rows: list[dict[str, Any]], summary: dict[str, Any], out_path: str) -> list[str]:
    """Each candidate's top-1 against the schedule's length (one line per axis), tau in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.8))
    for axis in dict.fromkeys(r["axis"] for r in rows):
        pts = sorted((r for r in rows if r["axis"] == axis and not math.isnan(r["top1"])),
                     key=lambda r: r["multiplier"])
        if pts:
            std = [100 * r["top1_std"] if not math.isnan(r["top1_std"]) else 0.0 for r in pts]
            ax.errorbar([r["multiplier"] for r in pts], [100 * r["top1"] for r in pts], yerr=std, fmt="-o",
                        capsize=2, ms=3, lw=1, color=axis_color(axis), label=paper_axis_name(axis))
    taus = ", ".join(f"{p['multiplier']:g}x: {p['kendall_tau']:.2f}" for p in summary["per_schedule"]
                     if not math.isnan(p["kendall_tau"]))
    ax.set_xscale("log", base=2)
    ax.set_xticks([p["multiplier"] for p in summary["per_schedule"]])
    ax.set_xticklabels([f"{p['multiplier']:g}x" for p in summary["per_schedule"]])
    ax.set_xlabel("schedule length (x the experiment's)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Step-1 candidates by schedule\n(Kendall tau vs longest: {taus})")
    ax.grid(True, alpha=0.25, lw=0.5)
    ax.legend(frameon=False, ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    return _save(plt, fig, out_path)
