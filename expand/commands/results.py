"""``show`` and ``plot``."""

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
