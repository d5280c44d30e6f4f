"""``show``, ``plot``, ``export`` and ``compare``."""

from __future__ import annotations

import argparse

from expand import results


def show_cmd(args: argparse.Namespace) -> int:
    print(results.render_run(args.run_dir, args.format))
    return 0


def plot_cmd(args: argparse.Namespace) -> int:
    results._read(args.run_dir)  # a bad folder is exit 2 before matplotlib loads
    for path in results.write_plots(args.run_dir):
        print(path)
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    from expand.export import export_run

    print(export_run(args.run_dir, step=args.step, target_gflops=args.target_gflops, out=args.out))
    return 0


def compare_cmd(args: argparse.Namespace) -> int:
    from expand.compare import compare_runs

    print(compare_runs(args.run_dirs, args.budgets, args.format, args.plot))
    return 0
