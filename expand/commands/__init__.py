"""Subcommand handlers: ``args -> exit code``. Imported lazily so ``--help`` stays fast."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def _lazy(module: str, name: str) -> Callable[[Any], int]:
    def handler(args: Any) -> int:
        return getattr(importlib.import_module(f"expand.commands.{module}"), name)(args)

    return handler


HANDLERS: dict[str, Callable[[Any], int]] = {
    "presets": _lazy("model", "presets_cmd"),
    "flops": _lazy("model", "flops_cmd"),
    "train": _lazy("model", "train_cmd"),
    "data_synth": _lazy("data", "synth_cmd"),
    "data_check": _lazy("data", "check_cmd"),
    "data_cache": _lazy("data", "cache_cmd"),
    "search": _lazy("search", "search_cmd"),
    "resume": _lazy("search", "resume_cmd"),
    "stop": _lazy("search", "stop_cmd"),
    "contract": _lazy("search", "contract_cmd"),
    "calibrate": _lazy("search", "calibrate_cmd"),
    "show": _lazy("results", "show_cmd"),
    "plot": _lazy("results", "plot_cmd"),
    "export": _lazy("results", "export_cmd"),
    "baseline": _lazy("baseline", "baseline_cmd"),
    "compare": _lazy("baseline", "compare_cmd"),
}
