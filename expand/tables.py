"""Rendering rows of dicts as terminal, markdown, CSV or JSON text."""

from __future__ import annotations

import csv
import io
import json
import math
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
) -> str:
    """Rows as ``table`` (plain terminal), ``markdown``, ``csv`` or ``json`` (a list)."""
    headers = list(headers or columns)
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], default=str)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
        return buf.getvalue()
    body = [[_cell(r.get(c), digits) for c in columns] for r in rows]
    style = "github" if fmt == "markdown" else "simple"
    return tabulate(body, headers=headers, tablefmt=style, disable_numparse=True)


def json_line(obj: Any) -> str:
    """One JSON object on one line (the CLI's --json contract)."""
    return json.dumps(obj, default=_json_default, allow_nan=False)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def clean_nans(obj: Any) -> Any:
    """NaN/inf floats -> None, so JSON stays valid."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: clean_nans(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nans(v) for v in obj]
    return obj
