"""``show``, ``plot`` and ``export``."""

from __future__ import annotations

import argparse

from expand import results


def show_cmd(args: argparse.Namespace) -> int:
    fmt = "json" if args.json else args.format
    if args.trials:
        from expand.attempts import render_attempts

        print(render_attempts(args.run_dir, fmt))
        return 0
    print(results.render_run(args.run_dir, fmt))
    return 0


def plot_cmd(args: argparse.Namespace) -> int:
    from expand.tables import json_line

    results._read(args.run_dir)  # a bad folder is exit 2 before matplotlib loads
    paths = results.write_plots(args.run_dir)
    if args.json:
        print(json_line({"figures": paths}))
    else:
        print("\n".join(paths) if paths else "no figures: the run has no finished trial with an accuracy yet")
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    from expand.export import export_run
    from expand.tables import json_line

    model = export_run(args.run_dir, step=args.step, target_gflops=args.target_gflops, fmt=args.format)
    if args.json:
        print(json_line({"path": model.path, "format": model.format, "spec": model.spec.to_dict(),
                         "gflops": model.gflops, "params": model.params, "source": model.source,
                         "train_command": model.command, "data_note": model.data_note}))
    else:
        print(f"{model.path}: {model.spec.name}, {model.gflops:.4g} GFLOPs, {model.params:,} params ({model.source})")
        if model.data_note:
            print(model.data_note)
        print(f"train it with:\n  {model.command}")
    return 0
