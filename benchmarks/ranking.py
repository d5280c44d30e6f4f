"""Do trials rank candidates reliably? Seed-to-seed noise against the gaps a search relies on.

Trains, with the experiment's schedule, over several seeds:
  * the basis (one frame) and the basis expanded in time (4 frames, stride 2);
  * the six first-step candidates of the search space (one per axis).
Prints top-1 mean and std per model, the temporal-vs-basis gap in units of the
pooled std, and the mean seed std of the first-step candidates (the noise a
step's comparison has to beat). Two trials run at a time.

    python benchmarks/ranking.py                       # experiments/synthetic_tiny.yaml, seeds 0 1 2
    python benchmarks/ranking.py --seeds 0 1 2 3 --skip-candidates
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(job: tuple) -> tuple[str, int, float, float]:
    label, spec_dict, seed, experiment = job
    from expand.search.trial import TrialSpec
    from expand.spec import ArchSpec
    from expand.train import run_trial

    r = run_trial(TrialSpec(label, 0, label, ArchSpec.from_dict(spec_dict), seed, 0.0, 0, experiment=experiment))
    return label, seed, (r.top1 if r.ok else math.nan), r.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=os.path.join(ROOT, "experiments", "synthetic_tiny.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--skip-candidates", action="store_true")
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    from expand.complexity import ComplexityCounter
    from expand.config import load_experiment
    from expand.search.axes import AxisExhausted, expand

    exp = load_experiment(args.experiment)
    space, d = exp.search_space, exp.to_dict()
    models = {"basis": space.basis, "basis in time 4x2": space.basis.replace(frames=4, stride=2)}
    if not args.skip_candidates:
        counter = ComplexityCounter()
        for axis in space.axes:
            try:
                models[f"step 1 {axis}"] = expand(space.basis, axis, space, counter).spec
            except AxisExhausted:
                pass
    jobs = [(label, spec.to_dict(), seed, d) for label, spec in models.items() for seed in args.seeds]
    results: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    with ProcessPoolExecutor(args.parallel) as pool:
        for label, seed, top1, secs in pool.map(_train, jobs):
            results.setdefault(label, []).append(top1)
            seconds.setdefault(label, []).append(secs)
            print(f"  {label:20} seed {seed}: top-1 {top1:.3f} ({secs:.0f} s)", flush=True)
    print(f"\nranking reliability: {exp.name}, seeds {args.seeds}, "
          f"{exp.schedule.epochs:g} epochs x {exp.data.train_clips_per_video} clips/video")
    print(f"{'model':20} {'spec':32} {'top-1 mean':>10} {'std':>6} {'s/trial':>8}")
    for label, values in results.items():
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        print(f"{label:20} {models[label].name:32} {statistics.mean(values):10.3f} {std:6.3f} "
              f"{statistics.mean(seconds[label]):8.0f}")
    b, t = results["basis"], results["basis in time 4x2"]
    pooled = math.sqrt((statistics.variance(b) + statistics.variance(t)) / 2) if len(b) > 1 else math.nan
    gap = statistics.mean(t) - statistics.mean(b)
    print(f"\ntemporal - basis: {gap:+.3f} top-1 = {gap / pooled:.1f} pooled std")
    cands = [v for k, v in results.items() if k.startswith("step 1") and len(v) > 1]
    if cands:
        noise = statistics.mean(statistics.stdev(v) for v in cands)
        means = sorted((statistics.mean(v), k) for k, v in results.items() if k.startswith("step 1"))
        print(f"first-step candidates: mean seed std {noise:.3f}; best {means[-1][1]} {means[-1][0]:.3f}, "
              f"runner-up {means[-2][1]} {means[-2][0]:.3f}: gap {means[-1][0] - means[-2][0]:+.3f} "
              f"= {(means[-1][0] - means[-2][0]) / noise:.1f} std")


if __name__ == "__main__":
    main()
