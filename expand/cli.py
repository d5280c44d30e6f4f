"""The ``x3d-expand`` command: parses, validates, prints, and nothing else.

Exit codes (DESIGN.md): 0 success, 2 bad input (one line on stderr naming what
and where), 1 anything else. Each subcommand lives in ``expand.commands`` and
returns an exit code; this module only builds the parser and maps errors
(``cli_parsing`` holds the argparse it is built with).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from expand.cli_parsing import (Numbers, Parser, int_up_to, positional, positive_float, positive_int, processes, seed,
                                setting, steps)
from expand.errors import (DeviceBroken, DiskUnwritable, InputError, NodeLost, StopRequested, disk_error_in, disk_fix,
                           disk_problem)
from expand.schema import MAX_BASELINE_TRIALS, MAX_CALIBRATION_SEEDS

PROG = "x3d-expand"
RUN_DIR_HELP = "a run folder (the --out of search, baseline or calibrate)"
EXPERIMENT_HELP = "an experiment YAML file, or the name of a shipped one (e.g. synthetic_tiny)"
JSON_HELP = "print the result as one JSON object on stdout (fractions as *_frac keys; progress goes to stderr)"
FORMAT_HELP = ("table (default), csv, markdown, latex (booktabs; other lines as %% comments) or json; "
               "--json is the same as --format json")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def _add_check(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--check", action="store_true",
                   help=f"check everything the {what} would (experiment, manifests, budgets, cluster, --out), "
                        "print its plan and exit: nothing is written, no trial runs (videos are opened by "
                        "'data check')")


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="settings", action="append", type=setting, default=None, metavar="KEY=VALUE",
                   help="change any key of the experiment for this run, e.g. --set schedule.epochs=2 --set "
                        "data.root=/data/k400 (repeatable; YAML values; relative paths from here); "
                        "resume applies them again")


def _add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["table", "csv", "markdown", "latex", "json"], default="table", help=FORMAT_HELP)
    _add_json(p)


def _add_runner(p: argparse.ArgumentParser, runners: Sequence[str], quiet: bool = True) -> None:
    p.add_argument("--runner", choices=list(runners), default=None,
                   help="where trials run: serial (this process) or ray (parallel workers); "
                        "default: the experiment's runner")
    p.add_argument("--address", default=None,
                   help="join an existing Ray cluster: 'auto' or ray://HOST:PORT (default: a local cluster)")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress output, only the final table")


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
    from expand import __version__
    from expand.baselines import METHODS
    from expand.search.runners import RUNNERS

    runners = RUNNERS.names()
    parser = Parser(prog=PROG, description="The X3D stepwise expansion search (Feichtenhofer, CVPR 2020): "
                                            "grow a 2D basis into an efficient video network one axis at a time.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND",
                                help="one of the commands below; COMMAND --help explains its options")

    p = sub.add_parser("presets", help="list X3D-XS/S/M/L/XL and the X2D basis")
    _add_json(p)

    p = sub.add_parser("flops", help="GFLOPs and params of one model, per stage")
    p.add_argument("preset_name", nargs="?", metavar="PRESET", default=None,
                   help="a preset, as with --preset (x3d-expand flops X3D-M)")
    p.add_argument("--preset", help="X2D, X3D-XS, X3D-S, X3D-M, X3D-L or X3D-XL")
    p.add_argument("--slowfast-config", metavar="FILE", default=None,
                   help="read the model from a SlowFast X3D config (e.g. configs/Kinetics/X3D_M.yaml)")
    _add_factor_args(p)
    p.add_argument("--classes", type=positive_int, default=None,
                   help="classes of the final layer (default 400, or the config's MODEL.NUM_CLASSES)")
    _add_json(p)

    data = sub.add_parser("data", help="datasets: synth, check, cache")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser, metavar="DATA_COMMAND",
                               help="synth, check or cache")
    p = dsub.add_parser("synth", help="write the synthetic motion dataset (train/val/test manifests and videos)")
    p.add_argument("out_dir", help="folder to write (existing identical files are kept)")
    p.add_argument("--classes", type=positive_int, default=8, help="classes (default 8)")
    # at most 10000: 1000000000 (a typo) encoded for ever (the dataset is for trying the search out)
    p.add_argument("--videos-per-class", type=int_up_to(10000, "videos per class"), default=40,
                   help="training videos per class (default 40)")
    p.add_argument("--val-per-class", type=int_up_to(10000, "videos per class"), default=25,
                   help="validation videos per class (default 25); test.csv lists the same videos")
    p.add_argument("--frames", type=positive_int, default=48, help="frames per video (default 48)")
    p.add_argument("--size", type=positive_int, default=128, help="frame height and width in pixels (default 128)")
    p.add_argument("--fps", type=positive_float, default=30.0, help="frame rate written (default 30)")
    p.add_argument("--seed", type=seed, default=0, help="random seed of the videos (default 0)")
    p.add_argument("--workers", type=processes, default=os.cpu_count() or 1,
                   help="encoding processes (default: all cores; the files do not depend on it)")
    _add_json(p)
    p = dsub.add_parser("check", help="which videos are readable, which are skipped and why")
    p.add_argument("target", metavar="DATASET",
                   help="a dataset folder (its train/val/test manifests or class folders), a manifest, "
                        "or an experiment YAML (its splits, as trials read them)")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="labels must be below this (default: the experiment's, or unchecked)")
    p.add_argument("--workers", type=processes, default=None,
                   help="decoding processes (default: all cores)")
    _add_set(p)
    _add_json(p)
    p = dsub.add_parser("cache", help="decode an experiment's videos once into the frame cache")
    p.add_argument("experiment", help=EXPERIMENT_HELP)
    p.add_argument("--workers", type=processes, default=None,
                   help="decoding processes (default: all cores; with --address, per node: its CPUs in Ray)")
    p.add_argument("--address", default=None,
                   help="build the cache on every node of this Ray cluster ('auto' or ray://HOST:PORT), "
                        "nodes that share a cache folder splitting the videos")
    _add_set(p)
    _add_json(p)

    p = sub.add_parser("train", help="train one trial by hand")
    p.add_argument("experiment", help=EXPERIMENT_HELP)
    p.add_argument("--preset", help="a preset name (see 'presets'), instead of the six factors")
    _add_factor_args(p)
    p.add_argument("--seed", type=seed, default=None, help="trial seed (default: the experiment's search.seed)")
    p.add_argument("--out", default=None, help="folder for the trial's files (weights, TensorBoard)")
    _add_set(p)
    _add_json(p)

    p = sub.add_parser("search", help="run forward expansion (and contraction to targets)")
    positional(p, "experiment", EXPERIMENT_HELP)
    p.add_argument("--out", default=None, help="run folder (default results/<name>-<time>)")
    _add_runner(p, runners)
    p.add_argument("--max-steps", type=steps, default=None, help="override search.max_steps (1-100)")
    p.add_argument("--targets", action=Numbers, nargs="*", default=None, metavar="GFLOPS", spill_to="experiment",
                   help="override search.targets (each must be reachable in max_steps); "
                        "the flag alone: contract to no budget")
    p.add_argument("--seed", type=seed, default=None, help="override search.seed")
    _add_set(p)
    _add_check(p, "search")
    _add_json(p)

    p = sub.add_parser("resume", help="continue an interrupted search, baseline or calibration")
    positional(p, "run_dir", RUN_DIR_HELP)
    p.add_argument("--force", action="store_true", help="resume although the experiment file changed")
    _add_runner(p, runners)
    p.add_argument("--max-steps", type=steps, default=None,
                   help="grow a search further (a finished one too): a new search.max_steps, at least the steps "
                        "it decided; kept for later resumes")
    p.add_argument("--targets", action=Numbers, nargs="+", default=None, metavar="GFLOPS", spill_to="run_dir",
                   help="new search.targets: the search grows until the path passes the largest")
    p.add_argument("--set", dest="settings", action="append", type=setting, default=None, metavar="KEY=VALUE",
                   help="change a key from here on, e.g. --set retries.failed=3 (kept for later resumes); "
                        "one the trials' fingerprints read (schedule, data, ...) needs --force")
    _add_json(p)

    p = sub.add_parser("stop", help="stop a running search after the trials running now (resume continues)",
                       description="Ask the process writing RUN (on any machine) to let its running trials finish "
                                   "and be recorded, start no queued one, and stop; 'resume' continues. Ctrl-C or "
                                   "SIGTERM stop at once and lose the trials in flight.")
    positional(p, "run_dir", RUN_DIR_HELP)
    p.add_argument("--cancel", action="store_true", help="withdraw a stop request not yet acted on")
    _add_json(p)

    p = sub.add_parser("calibrate", help="is the trial schedule long enough to rank? (step 1 at 1x/2x/4x)",
                       description="Train the first step's candidates and the basis at several multiples of the "
                                   "experiment's schedule; report Kendall tau against the longest, the seed-to-seed "
                                   "std and the rule's pick per schedule, and recommend the shortest that ranks "
                                   "like the longest.")
    positional(p, "experiment", EXPERIMENT_HELP)
    p.add_argument("--schedules", action=Numbers, default=[1.0, 2.0, 4.0], metavar="X", spill_to="experiment",
                   help="schedule multipliers (default 1 2 4)")
    p.add_argument("--seeds", type=int_up_to(MAX_CALIBRATION_SEEDS, "seeds per model and schedule"), default=1,
                   help="seeds per model and schedule (2+: seed std)")
    p.add_argument("--min-tau", type=float, default=0.8,
                   help="tau a schedule needs to be recommended, -1 to 1 (default 0.8)")
    p.add_argument("--out", default=None, help="run folder (default results/<name>-calibration-<time>)")
    p.add_argument("--seed", type=seed, default=None, help="override search.seed")
    _add_runner(p, runners)
    _add_set(p)
    _add_check(p, "calibration")
    _add_json(p)

    p = sub.add_parser("contract", help="contract the path to FLOP budgets")
    positional(p, "run_dir", RUN_DIR_HELP)
    p.add_argument("--target-gflops", action=Numbers, required=True, metavar="GFLOPS", spill_to="run_dir",
                   help="one or more budgets in GFLOPs (between the basis and the path's largest model)")
    p.add_argument("--train", action="store_true", help="train the contracted models (path models are reused)")
    _add_runner(p, runners, quiet=False)
    _add_json(p)

    p = sub.add_parser("show", help="the per-step trade-off table of a run")
    p.add_argument("run_dir", help=RUN_DIR_HELP)
    p.add_argument("--trials", action="store_true",
                   help="every attempt of every trial instead, as it finished: status, top-1, seconds, device, "
                        "host and error (retries and failures included)")
    _add_format(p)

    p = sub.add_parser("plot", help="write the run's figures (PNG and PDF) under RUN/plots")
    p.add_argument("run_dir", help=RUN_DIR_HELP)
    _add_json(p)

    p = sub.add_parser("baseline", help="Optuna random/TPE or compound scaling at a trial budget")
    p.add_argument("experiment", help=EXPERIMENT_HELP)
    p.add_argument("--method", choices=METHODS.names(), required=True,
                   help="random and tpe: Optuna samplers over the search space; compound: EfficientNet-style")
    p.add_argument("--trials", type=int_up_to(MAX_BASELINE_TRIALS, "trained trials"), required=True,
                   help=f"trained trials to spend, 1-{MAX_BASELINE_TRIALS}")
    p.add_argument("--max-gflops", type=positive_float, default=None, help="FLOP cap (default: the experiment's)")
    p.add_argument("--out", default=None, help="run folder (default results/<name>-<method>-<time>)")
    p.add_argument("--seed", type=seed, default=None, help="override search.seed")
    _add_runner(p, runners)
    _add_set(p)
    _add_check(p, "baseline")
    _add_json(p)

    p = sub.add_parser("compare", help="best accuracy under FLOP budgets across runs")
    positional(p, "run_dirs", "run folders to compare (expansion, baselines)", many=True)
    p.add_argument("--budgets", action=Numbers, default=None, metavar="GFLOPS", spill_to="run_dirs",
                   help="GFLOPs (default: the GFLOPs of the first expansion run's path steps)")
    _add_format(p)
    p.add_argument("--plot", default=None,
                   help="figure path, .png (a .pdf is written beside it) (default: compare.png beside the first run)")

    p = sub.add_parser("export", help="write a path step or a budget as a SlowFast, mmaction2 or pytorchvideo config")
    p.add_argument("run_dir", help=RUN_DIR_HELP)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--step", type=int, help="a step of the expansion path (0 = the basis)")
    which.add_argument("--target-gflops", type=positive_float, help="the path contracted to this budget")
    p.add_argument("--format", choices=["slowfast", "mmaction2", "pytorchvideo"], default="slowfast",
                   help="slowfast: a YAML for tools/run_net.py; mmaction2: a Python config for tools/train.py; "
                        "pytorchvideo: create_x3d keyword arguments (JSON)")
    _add_json(p)

    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP as an exception, so the run's lock, Ray's processes and open files are closed in order."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> dict:
    """Install the handler for SIGTERM and SIGHUP; returns the previous ones (main() puts them back:
    tests call main in-process).

    SIGHUP is what a search started over ssh without tmux gets when the connection drops; its
    default (die at once) would leave Ray's processes orphaned and the trial in flight with no
    record. Under ``nohup`` (SIGHUP ignored) it stays ignored.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: object) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second one kills at once
        raise Terminated(signum)

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP")
                                 and signal.getsignal(signal.SIGHUP) != signal.SIG_IGN else [])
    return {sig: signal.signal(sig, handler) for sig in wanted}


# What is kept after a stop, by command (data synth said "finished trials are kept, 'resume' continues")
_AFTER_STOP = {
    **dict.fromkeys(("search", "resume", "baseline", "calibrate", "contract"),
                    "finished trials are kept, 'resume' continues"),
    "data_cache": "finished cache entries are kept: run it again to continue",
    "data_synth": "the dataset is incomplete: run the same command again",
    "train": "the trial did not finish",
}


def _say_terminated(signum: int, command: str) -> None:
    import signal

    why = "SIGHUP: the terminal or ssh session closed" if signum == getattr(signal, "SIGHUP", -1) else "SIGTERM"
    after = f"; {_AFTER_STOP[command]}" if command in _AFTER_STOP else ""
    try:  # after a hangup the terminal is gone: writing to it fails, and that must not turn into a traceback
        print(f"{PROG}: terminated ({why}){after}", file=sys.stderr)
    except OSError:
        pass


def _disk_message(exc: OSError, problem: str) -> str:
    if isinstance(exc, DiskUnwritable):
        return exc.strerror
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"{problem}{where}; what finished is kept: fix the disk ({disk_fix(problem)}) and run it again "
            "(a search continues with 'x3d-expand resume RUN')")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0) as return codes
        return int(exc.code or 0)
    import shlex

    from expand import commands
    from expand.console import COMMAND_LINE

    command_line = COMMAND_LINE.set(shlex.join([PROG, *(sys.argv[1:] if argv is None else argv)]))
    previous = _stop_on_signals()
    command = f"data_{args.data_command}" if args.command == "data" else args.command
    handler = commands.HANDLERS[command]
    try:
        from expand.environ import check_environment

        check_environment()
        return int(handler(args) or 0)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        _say_terminated(exc.signum, command)
        return 128 + exc.signum
    except BrokenPipeError:
        return 0
    except StopRequested as exc:  # asked for (x3d-expand stop): not an error, but not finished either
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except (DeviceBroken, NodeLost) as exc:  # not a bug of ours: say what broke, and how to go on
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("X3D_EXPAND_DEBUG"):
            traceback.print_exc()
        disk = disk_error_in(exc)  # libraries wrap it (torch, Ray): the cause chain still says it
        if disk is not None:  # not a bug: say so, and how to go on (the run folder survives it)
            print(f"{PROG}: error: {_disk_message(disk, disk_problem(disk))}", file=sys.stderr)
            return 1
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        import signal

        for sig, handler in previous.items():
            signal.signal(sig, handler)
        COMMAND_LINE.reset(command_line)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
