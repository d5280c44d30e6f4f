"""The ``x3d-expand`` command: parses, validates, prints, and nothing else.

Exit codes (DESIGN.md): 0 success, 2 bad input (one line on stderr naming what
and where), 1 anything else. Each subcommand lives in ``expand.commands`` and
returns an exit code; this module only builds the parser and maps errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn, Sequence

from expand.errors import InputError

PROG = "x3d-expand"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _add_factor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("factors (all six, instead of --preset)")
    g.add_argument("--frames", type=int, help="γt: frames per clip")
    g.add_argument("--stride", type=int, help="γτ: temporal stride at 30 fps (SAMPLING_RATE)")
    g.add_argument("--crop", type=int, help="train crop in pixels (the paper's γs = crop / 112)")
    g.add_argument("--width", type=float, help="SlowFast's WIDTH_FACTOR (the paper's γw = WIDTH_FACTOR / 2)")
    g.add_argument("--bottleneck", type=float, help="γb: bottleneck factor")
    g.add_argument("--depth", type=float, help="γd: depth factor")


def build_parser() -> argparse.ArgumentParser:
    # the choices come from the registries, so a registered runner or baseline method is usable here
    from expand.baselines import METHODS
    from expand.search.runners import RUNNERS

    parser = _Parser(prog=PROG, description="The X3D stepwise expansion search.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("presets", help="list X3D-XS/S/M/L/XL and the X2D basis").add_argument(
        "--json", action="store_true"
    )

    p = sub.add_parser("flops", help="GFLOPs and params of one model, per stage")
    p.add_argument("--preset", help="X2D, X3D-XS, X3D-S, X3D-M, X3D-L or X3D-XL")
    _add_factor_args(p)
    p.add_argument("--classes", type=_positive_int, default=400, help="classes (default 400)")
    p.add_argument("--json", action="store_true")

    data = sub.add_parser("data", help="datasets: synth, check, cache")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    p = dsub.add_parser("synth", help="write the synthetic motion dataset")
    p.add_argument("out_dir")
    p.add_argument("--classes", type=_positive_int, default=8)
    p.add_argument("--videos-per-class", type=_positive_int, default=40)
    p.add_argument("--val-per-class", type=_positive_int, default=25)
    p.add_argument("--frames", type=_positive_int, default=48)
    p.add_argument("--size", type=_positive_int, default=128)
    p.add_argument("--fps", type=_positive_float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1,
                   help="encoding processes (the files do not depend on it)")
    p.add_argument("--json", action="store_true")
    p = dsub.add_parser("check", help="which videos are readable, which are skipped and why")
    p.add_argument("manifest_or_dir")
    p.add_argument("--json", action="store_true")
    p.add_argument("--num-classes", type=_positive_int, default=None)
    p = dsub.add_parser("cache", help="decode an experiment's videos once into the frame cache")
    p.add_argument("experiment")
    p.add_argument("--workers", type=_positive_int, default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("train", help="train one trial by hand")
    p.add_argument("experiment")
    p.add_argument("--preset")
    _add_factor_args(p)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="folder for the trial's files")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("search", help="run forward expansion (and contraction to targets)")
    p.add_argument("experiment")
    p.add_argument("--out", default=None, help="run folder (default results/<name>-<time>)")
    p.add_argument("--runner", choices=RUNNERS.names(), default=None)
    p.add_argument("--address", default=None, help="join a Ray cluster: auto or ray://host:port")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="override search.max_steps")
    p.add_argument("--targets", type=_positive_float, nargs="*", default=None, metavar="GFLOPS",
                   help="override search.targets (each must be reachable in max_steps); none: contract nothing")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")

    p = sub.add_parser("resume", help="continue an interrupted search")
    p.add_argument("run_dir")
    p.add_argument("--force", action="store_true", help="resume although the experiment changed")
    p.add_argument("--runner", choices=RUNNERS.names(), default=None)
    p.add_argument("--address", default=None)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("calibrate", help="is the trial schedule long enough to rank? (step 1 at 1x/2x/4x)",
                       description="Train the first step's candidates and the basis at several multiples of the "
                                   "experiment's schedule; report Kendall tau against the longest, the seed-to-seed "
                                   "std and the rule's pick per schedule, and recommend the shortest that ranks "
                                   "like the longest.")
    p.add_argument("experiment")
    p.add_argument("--schedules", type=_positive_float, nargs="+", default=[1.0, 2.0, 4.0], metavar="X",
                   help="schedule multipliers (default 1 2 4)")
    p.add_argument("--seeds", type=_positive_int, default=1, help="seeds per model and schedule (2+: seed std)")
    p.add_argument("--min-tau", type=float, default=0.8, help="tau a schedule needs to be recommended")
    p.add_argument("--out", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--runner", choices=RUNNERS.names(), default=None)
    p.add_argument("--address", default=None)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("contract", help="contract the path to FLOP budgets")
    p.add_argument("run_dir")
    p.add_argument("--target-gflops", type=_positive_float, nargs="+", required=True)
    p.add_argument("--train", action="store_true", help="train the contracted models")
    p.add_argument("--runner", choices=RUNNERS.names(), default=None)
    p.add_argument("--address", default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", help="the per-step trade-off table of a run")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["table", "csv", "markdown", "json"], default="table")

    p = sub.add_parser("plot", help="write accuracy-vs-GFLOPs plots of a run")
    p.add_argument("run_dir")

    p = sub.add_parser("baseline", help="Optuna random/TPE or compound scaling at a trial budget")
    p.add_argument("experiment")
    p.add_argument("--method", choices=METHODS.names(), required=True)
    p.add_argument("--trials", type=_positive_int, required=True, help="trained trials to spend")
    p.add_argument("--max-gflops", type=_positive_float, default=None, help="FLOP cap (default: the experiment's)")
    p.add_argument("--out", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--runner", choices=RUNNERS.names(), default=None)
    p.add_argument("--address", default=None)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("compare", help="best accuracy under FLOP budgets across runs")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--budgets", type=_positive_float, nargs="+", default=None,
                   help="GFLOPs (default: the GFLOPs of the first expansion run's path steps)")
    p.add_argument("--format", choices=["table", "csv", "markdown", "json"], default="table")
    p.add_argument("--plot", default=None, help="PNG path (default: compare.png beside the first run)")

    p = sub.add_parser("export", help="write a path step or a budget as a SlowFast X3D config")
    p.add_argument("run_dir")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--step", type=int, help="a step of the expansion path")
    which.add_argument("--target-gflops", type=_positive_float, help="the path contracted to this budget")
    p.add_argument("--format", choices=["slowfast"], default="slowfast")
    p.add_argument("--json", action="store_true")

    return parser


class Terminated(BaseException):
    """SIGTERM as an exception, so the run's lock, Ray's processes and open files are closed in order."""


def _stop_on_sigterm() -> object:
    """Install the handler; returns the previous one (main() puts it back: tests call main in-process)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0) as return codes
        return int(exc.code or 0)
    from expand import commands

    previous = _stop_on_sigterm()
    handler = commands.HANDLERS[
        f"data_{args.data_command}" if args.command == "data" else args.command
    ]
    try:
        return int(handler(args) or 0)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{PROG}: terminated (SIGTERM); finished trials are kept, 'resume' continues", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("X3D_EXPAND_DEBUG"):
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
