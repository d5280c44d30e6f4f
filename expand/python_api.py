"""What ``import expand`` gives a notebook or a training script: the CLI's commands as functions.

The CLI is a thin layer over the same calls (``expand.api``): a search run
from Python writes the same run folder, validates the same way (a bad
experiment raises :class:`expand.errors.ConfigError` before anything is
written) and can be resumed from either side.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from expand.errors import InputError

if TYPE_CHECKING:
    from expand.comparison import Comparison
    from expand.models.x3d import X3D
    from expand.presets import Preset
    from expand.run_view import Run
    from expand.spec import ArchSpec


def _check_paths(call: str, address: Any = None, **paths: Any) -> None:
    """A wrong type (``out=123``) is an InputError naming the argument, as a bad value is, not a
    TypeError from deep inside; ``pathlib.Path`` is as good as a string."""
    for name, value in paths.items():
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise InputError(f"{call}: {name} must be a path (str or pathlib.Path), got {type(value).__name__}")
    if address is not None and not isinstance(address, str):
        raise InputError(f"{call}: address must be a str (host:port or 'auto'), got {type(address).__name__}")


def search(experiment: str, out: Optional[str] = None, address: Optional[str] = None, quiet: bool = False,
           settings: Optional[Mapping[str, Any]] = None, **overrides: Any) -> "Run":
    """Run the expansion search of ``experiment`` (a file, or a shipped experiment's name).

    ``overrides`` are the ``search`` section's keys (``max_steps=2``,
    ``targets=[0.5]``, ``runner="serial"``, ``seed=1``), as the CLI's flags; ``settings``
    any key by its dotted name (``{"schedule.epochs": 2, "data.root": "/data/k400"}``), as ``--set``.
    """
    from expand import api

    _check_paths("search", address, experiment=experiment, out=out)
    run, _ = api.start_search(experiment, out=out, address=address, quiet=quiet, settings=settings, **overrides)
    return _finished(run, quiet)


def check_search(experiment: str, out: Optional[str] = None, address: Optional[str] = None,
                 settings: Optional[Mapping[str, Any]] = None, **overrides: Any) -> list[str]:
    """``search --check``: every check :func:`search` makes before it writes, and its plan as lines
    (data per trial, steps and trials, where they run); nothing is written, nothing trains."""
    from expand import api

    return _plan("check_search", api.check_search, experiment, (), out, address, settings=settings, **overrides)


def _plan(name: str, check: Any, experiment: str, args: tuple, out: Optional[str], address: Optional[str],
          **kwargs: Any) -> list[str]:
    """A ``--check`` from Python: the checks ``check`` makes, its plan, and where the trials would run."""
    from expand.preflight import where_trials_run

    _check_paths(name, address, experiment=experiment, out=out)
    exp, plan = check(os.fspath(experiment), *args, out=None if out is None else os.fspath(out), address=address,
                      **kwargs)
    return [*plan, where_trials_run(exp, address)]


def resume(path: str, force: bool = False, runner: Optional[str] = None, address: Optional[str] = None,
           quiet: bool = False, max_steps: Optional[int] = None, targets: Optional[Sequence[float]] = None,
           settings: Optional[Mapping[str, Any]] = None) -> "Run":
    """Continue a run (finished trials of the same model are never retrained); ``max_steps`` or
    ``targets`` grow a search further, a finished one too; ``settings`` change keys from here on
    (``{"retries.failed": 3}``; one that trials' fingerprints read needs ``force=True``)."""
    from expand import api

    _check_paths("resume", address, path=path)
    run, _ = api.resume(path, force=force, runner=runner, address=address, quiet=quiet, max_steps=max_steps,
                        targets=targets, settings=settings)
    return _finished(run, quiet)


def baseline(experiment: str, method: str, trials: int, max_gflops: Optional[float] = None,
             out: Optional[str] = None, address: Optional[str] = None, quiet: bool = False,
             settings: Optional[Mapping[str, Any]] = None, **overrides: Any) -> "Run":
    """A baseline search (``expand.baselines.METHODS``: random, tpe, compound, or one you registered);
    ``settings`` and ``overrides`` as for :func:`search`."""
    from expand import api

    _check_paths("baseline", address, experiment=experiment, out=out)
    run, _ = api.start_baseline(experiment, method, trials, max_gflops, out=out, address=address, quiet=quiet,
                                settings=settings, **overrides)
    return _finished(run, quiet)


def check_baseline(experiment: str, method: str, trials: int, max_gflops: Optional[float] = None,
                   out: Optional[str] = None, address: Optional[str] = None,
                   settings: Optional[Mapping[str, Any]] = None, **overrides: Any) -> list[str]:
    """``baseline --check``: :func:`check_search`'s checks, the baseline's own arguments, its plan."""
    from expand import api

    return _plan("check_baseline", api.check_baseline, experiment, (method, trials, max_gflops), out, address,
                 settings=settings, **overrides)


def calibrate(experiment: str, schedules: Sequence[float] = (1.0, 2.0, 4.0), seeds: int = 1,
              min_tau: float = 0.8, out: Optional[str] = None, address: Optional[str] = None,
              quiet: bool = False, settings: Optional[Mapping[str, Any]] = None, **overrides: Any) -> "Run":
    """``calibrate``: the basis and step 1's candidates at each multiple of the schedule; the run's
    ``calibration`` says which schedule ranks like the longest (``Run.calibration``)."""
    from expand import api

    _check_paths("calibrate", address, experiment=experiment, out=out)
    run, _ = api.start_calibration(os.fspath(experiment), schedules, seeds, min_tau, out=out, address=address,
                                   quiet=quiet, settings=settings, **overrides)
    return _finished(run, quiet)


def check_calibration(experiment: str, schedules: Sequence[float] = (1.0, 2.0, 4.0), seeds: int = 1,
                      min_tau: float = 0.8, out: Optional[str] = None, address: Optional[str] = None,
                      settings: Optional[Mapping[str, Any]] = None, **overrides: Any) -> list[str]:
    """``calibrate --check``: every check :func:`calibrate` makes before it writes, and its plan."""
    from expand import api

    return _plan("check_calibration", api.check_calibration, experiment, (schedules, seeds, min_tau), out, address,
                 settings=settings, **overrides)


def compare(runs: Sequence[str], budgets: Optional[Sequence[float]] = None,
            plot: Optional[str] = None) -> "Comparison":
    """``compare``: each run's best top-1 at or under each budget (default: the first expansion's
    path steps), its cost, and notes on rows that did not train alike. ``.table`` is a DataFrame;
    ``plot`` (a .png path) also writes the figure, as ``compare --plot``."""
    from expand.comparison import check_plot_path, compare_runs

    if plot is not None:
        _check_paths("compare", plot=plot)
        check_plot_path(os.fspath(plot))
    if isinstance(runs, (str, os.PathLike)):
        raise InputError("compare: runs must be a list of run folders (a single path was given)")
    _check_paths("compare", **{f"runs[{i}]": r for i, r in enumerate(runs)})
    comparison = compare_runs([os.fspath(r) for r in runs], budgets)
    if plot is not None:
        comparison.plot(os.fspath(plot))
    return comparison


def _finished(run: Any, quiet: bool) -> "Run":
    """The run's tables and plots written, as the CLI does when a command ends; the folder as a Run."""
    from expand import api
    from expand.run_view import Run

    api.finish(run, quiet)
    return Run(run.path)


def presets() -> dict[str, "Preset"]:
    """X2D (the basis) and X3D-XS/S/M/L/XL: name -> Preset (spec, test crop, source)."""
    from expand.presets import presets as table

    return table()


def build_x3d(spec: Union["ArchSpec", str, Mapping[str, Any]], num_classes: Optional[int] = None,
              dropout: float = 0.5) -> "X3D":
    """A fresh X3D network: ``spec`` is an ArchSpec, a preset name (``"X3D-M"``, ``"m"``) or factors."""
    from expand.models.x3d import build_x3d as build
    from expand.presets import get_preset
    from expand.spec import ArchSpec

    if isinstance(spec, str):
        spec = get_preset(spec).spec
    elif isinstance(spec, Mapping):
        spec = ArchSpec.from_dict(spec)
    elif not isinstance(spec, ArchSpec):
        raise InputError(f"build_x3d: expected an ArchSpec, a preset name or a mapping, got {type(spec).__name__}")
    return build(spec, num_classes=num_classes, dropout=dropout)


__all__ = ["search", "check_search", "resume", "baseline", "check_baseline", "calibrate", "check_calibration",
           "compare", "presets", "build_x3d"]
