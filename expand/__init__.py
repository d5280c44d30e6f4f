"""x3d-expand: the stepwise network expansion search of X3D (Feichtenhofer, CVPR 2020).

From Python::

    import expand
    run = expand.search("synthetic_tiny", max_steps=1)   # the CLI's `search`; returns a Run
    run.steps                                           # every candidate, a DataFrame
    model = run.model()                                 # the last path model, trained weights
    expand.load_run("results/demo").contract(0.003)     # the path contracted to a budget

The registries say what a search is made of, one table each: ``AXES`` (the
paper's six axes), ``FACTORS`` (the six factors), ``RULES`` (selection rules),
``RUNNERS`` and ``BASELINES``. Names are imported lazily so that
``import expand`` (and the CLI's start) does not load torch or Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "search": ("expand", "search"),  # the subpackage, callable: see expand/search/__init__.py
    "check_search": ("expand.python_api", "check_search"),
    "resume": ("expand.python_api", "resume"),
    "baseline": ("expand.python_api", "baseline"),
    "check_baseline": ("expand.python_api", "check_baseline"),
    "calibrate": ("expand.python_api", "calibrate"),
    "check_calibration": ("expand.python_api", "check_calibration"),
    "compare": ("expand.python_api", "compare"),
    "Comparison": ("expand.comparison", "Comparison"),
    "presets": ("expand.python_api", "presets"),
    "build_x3d": ("expand.python_api", "build_x3d"),
    "load_run": ("expand.run_view", "load_run"),
    "Run": ("expand.run_view", "Run"),
    "Contraction": ("expand.run_view", "Contraction"),
    "ArchSpec": ("expand.spec", "ArchSpec"),
    "load_experiment": ("expand.config", "load_experiment"),
    "AXES": ("expand.search.axes", "AXES"),
    "Axis": ("expand.search.axes", "Axis"),
    "FACTORS": ("expand.spec", "FACTOR_TABLE"),
    "RULES": ("expand.search.select", "RULES"),
    "SelectionRule": ("expand.search.select", "SelectionRule"),
    "RUNNERS": ("expand.search.runners", "RUNNERS"),
    "BASELINES": ("expand.baselines", "METHODS"),
    "BaselineMethod": ("expand.baselines", "BaselineMethod"),
    "ConfigError": ("expand.errors", "ConfigError"),
    "InputError": ("expand.errors", "InputError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "search":
        return importlib.import_module("expand.search")  # binds expand.search to the callable package
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'expand' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
