"""``show``, ``plot`` and ``export``."""

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
    from expand.tables import json_line

    model = export_run(args.run_dir, step=args.step, target_gflops=args.target_gflops)
    if args.json:
        print(json_line({"path": model.path, "spec": model.spec.to_dict(), "gflops": model.gflops,
                         "params": model.params, "source": model.source}))
    else:
        print(f"{model.path}: {model.spec.name}, {model.gflops:.4g} GFLOPs, {model.params:,} params ({model.source})")
    return 0
