"""Rendering rows of dicts as terminal, markdown, CSV or JSON text, in one set of units.

Units (DESIGN.md, issue 19): what a person reads shows top-1 in percent, gains
in points and gain per GFLOP in points per GFLOP; what a program reads (JSON,
CSV, DataFrames) keeps fractions and says so in the key: ``top1_frac`` 0.376
is 37.6 %. :func:`machine_keys` is the one place those keys are renamed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any, Sequence

from tabulate import tabulate


def _cell(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    if value is None:
        return ""
    return value


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str = "table",
    headers: Sequence[str] | None = None,
    digits: int = 3,
    column_digits: dict[str, int] | None = None,
) -> str:
    """Rows as ``table`` (plain terminal), ``markdown``, ``latex`` (booktabs, special characters
    escaped), ``csv`` or ``json`` (a list).

    ``digits`` after the point in a float cell, or ``column_digits[column]``: a GFLOPs
    column needs four where seconds or clips/s would show noise. CSV and JSON keep every digit.
    """
    headers = list(headers or columns)
    if fmt == "json":
        return json_line(clean_nans([{c: r.get(c) for c in columns} for r in rows]))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([machine_key(c) for c in columns])
        for r in rows:
            writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
        return buf.getvalue()
    places = [(column_digits or {}).get(c, digits) for c in columns]
    body = [[_cell(r.get(c), d) for c, d in zip(columns, places)] for r in rows]
    style = {"markdown": "pipe", "latex": "latex_booktabs"}.get(fmt, "simple")  # pipe: GitHub reads its alignment
    align = ["right" if _numeric([row[i] for row in body]) else "left" for i in range(len(columns))]
    return tabulate(body, headers=headers, tablefmt=style, disable_numparse=True, colalign=align)


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")


def _numeric(cells: Sequence[Any]) -> bool:
    """A column of numbers (blanks allowed) is right-aligned, so digits line up as in a paper's table."""
    filled = [str(c) for c in cells if c != "" and c is not None and not isinstance(c, bool)]
    return bool(filled) and len(filled) == len([c for c in cells if c != "" and c is not None]) and \
        all(_NUMBER.fullmatch(c) for c in filled)


def latex_commented(text: str) -> str:
    """A report for a paper's source: its LaTeX tables as they are, every other line a ``%`` comment,
    so the whole output pastes into a .tex file and the notes stay beside their table."""
    out, in_table = [], False
    for line in text.split("\n"):
        if line.startswith("\\begin{tabular}"):
            in_table = True
        out.append(line if in_table or not line else f"% {line}")
        if line.startswith("\\end{tabular}"):
            in_table = False
    return "\n".join(out)


FRACTION_KEYS = ("top1", "top5", "gain", "confidence", "val_top1", "val_top5", "top1_se", "parent_top1",
                 "chance", "one_frame_ceiling", "flop_error", "confidence_level", "top1_std", "mean_top1", "seed_std")
_RENAMED = {**{k: f"{k}_frac" for k in FRACTION_KEYS}, "gain_per_gflop": "gain_frac_per_gflop"}
_UNRENAMED = {v: k for k, v in _RENAMED.items()}


def machine_key(key: str) -> str:
    """The name a fraction-valued field has in JSON, CSV and DataFrames (``top1`` -> ``top1_frac``)."""
    return _RENAMED.get(key, key)


def human_key(key: str) -> str:
    """The inverse of :func:`machine_key` (reading a CSV back into the names the code uses)."""
    return _UNRENAMED.get(key, key)


def machine_keys(obj: Any) -> Any:
    """``obj`` with every fraction-valued key renamed, recursively (see the module doc)."""
    if isinstance(obj, dict):
        return {machine_key(k) if isinstance(k, str) else k: machine_keys(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [machine_keys(v) for v in obj]
    return obj


def json_line(obj: Any) -> str:
    """One JSON object on one line (the CLI's --json contract), fractions named as such."""
    return json.dumps(machine_keys(obj), default=_json_default, allow_nan=False)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def num(x: Any) -> float:
    """A stored number as a float, None (not measured, not yet known) as NaN: the reading side's unknown."""
    return math.nan if x is None else float(x)


def clean_nans(obj: Any) -> Any:
    """NaN/inf floats -> None, so JSON stays valid."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: clean_nans(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nans(v) for v in obj]
    return obj
