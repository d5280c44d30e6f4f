"""Where one trial's wall time goes: data wait, compute, evaluation, the rest.

Runs the default trial function once (the experiment's data, schedule and
device) and splits its seconds into the fractions the trainer measures:
waiting for the next batch, the training steps, validation, and everything
else (opening the split and cache, building the model, the inference timing
loop). Goal (issue 5): data wait < 10 % of the trial.

By default it runs the trial twice, side by side: loading in the training
thread (``prefetch 0``, the default) and with a background prefetch thread two
batches deep (``prefetch 2``), and prints the wall-time ratio.

    python benchmarks/trial_overhead.py                                 # tiny_cpu basis
    python benchmarks/trial_overhead.py --factors 4 2 64 1 1 1 --workers 1 --prefetch 0
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from expand.config import load_experiment  # noqa: E402
from expand.search.trial import TrialSpec  # noqa: E402
from expand.train import run_trial  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=os.path.join(ROOT, "experiments", "synthetic_tiny.yaml"))
    ap.add_argument("--factors", type=float, nargs=6, metavar=("FRAMES", "STRIDE", "CROP", "WIDTH", "BOTTLENECK", "DEPTH"))
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the experiment's)")
    ap.add_argument("--epochs", type=float, default=None)
    ap.add_argument("--prefetch", type=int, nargs="+", default=[0, 2],
                    help="prefetch depths to run one after the other (default: 0 2)")
    args = ap.parse_args()
    exp = load_experiment(args.experiment)
    d = exp.to_dict()
    if args.workers is not None:
        d["trial"]["workers"] = args.workers
    if args.epochs is not None:
        d["schedule"]["epochs"] = args.epochs
    spec = exp.search_space.basis
    if args.factors:
        f, s, c, w, b, dep = args.factors
        spec = spec.replace(frames=int(f), stride=int(s), crop=int(c), width=w, bottleneck=b, depth=dep)
    walls = {}
    for depth in args.prefetch:
        d["trial"]["prefetch"] = depth
        result = run_trial(TrialSpec("bench", 0, "bench", spec, 0, 0.0, 0, experiment=d))
        if not result.ok:
            raise SystemExit(f"trial {result.status}: {result.error}")
        total = walls[depth] = result.seconds
        parts = {k: result.extra[k] for k in ("data_wait_s", "compute_s", "eval_s")}
        parts["other_s"] = total - sum(parts.values())
        print(f"trial overhead: {spec.name}, {result.extra['steps']} steps, workers {d['trial']['workers']}, "
              f"prefetch {depth}, {total:.1f} s, top-1 {result.top1:.3f}, "
              f"{result.train_clips_per_s:.0f} train clips/s")
        for k, v in parts.items():
            print(f"  {k[:-2]:10} {v:7.1f} s  {v / total:6.1%}")
    if len(walls) > 1:
        first = args.prefetch[0]
        for depth in args.prefetch[1:]:
            print(f"wall time prefetch {depth} / prefetch {first}: {walls[depth] / walls[first]:.3f}")


if __name__ == "__main__":
    main()
