"""Do trials rank candidates reliably? Seed-to-seed noise against the gaps a search relies on.

Trains, with the experiment's schedule, over several seeds:
  * the basis (one frame) and the basis expanded in time (4 frames, stride 2);
  * the six first-step candidates of the search space (one per axis).
Prints top-1 mean and std per model, the temporal-vs-basis gap in units of the
pooled std, and the mean seed std of the first-step candidates (the noise a
step's comparison has to beat). Two trials run at a time.

    python benchmarks/ranking.py                       # experiments/synthetic_tiny.yaml, seeds 0 1 2
    python benchmarks/ranking.py --seeds 0 1 2 3 --skip-candidates

Path stability (--path-stability): runs step 1 of the real search (x3d-expand's coordinator,
Ray, the experiment's schedule) for each of --run-seeds with confirmation on
(search.confirm.max_extra_trials = --extra), and reports, with and without confirmation,
which axis each run seed picks, how many picked the majority axis, and the trials spent.
"Without" is the same run's first round: one trial per candidate, exactly what a run with
confirmation off trains and picks (same seeds, same trials), so both come from one run.

    python benchmarks/ranking.py --path-stability --run-seeds 0 1 2 3 4 --extra 6
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


def _stability_experiment(path: str, out_dir: str, run_seed: int, extra: int, level: float) -> str:
    """The experiment as a file in ``out_dir``: absolute paths, one step, this run seed, confirmation on."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        d = yaml.safe_load(fh)
    base = os.path.dirname(os.path.abspath(path))
    d["search_space"] = os.path.normpath(os.path.join(base, d["search_space"])) \
        if d["search_space"].endswith((".yaml", ".yml")) else d["search_space"]
    d["data"]["root"] = os.path.normpath(os.path.join(base, d["data"]["root"]))
    d["search"] = dict(d.get("search") or {}, max_steps=1, targets=[], seed=run_seed,
                       confirm={"max_extra_trials": extra, "confidence": level})
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"seed{run_seed}.yaml")
    with open(out, "w", encoding="utf-8") as fh:
        yaml.safe_dump(d, fh)
    return out


def _first_round(run_dir: str, rule: str) -> tuple[str, float, int]:
    """The pick, its confidence and the trials of step 1 as a run without confirmation has them."""
    from expand.run import RunDir
    from expand.search.confidence import Evidence, choose_seed_std, step_confidence
    from expand.search.select import Scored, select

    run = RunDir(run_dir)
    state = run.read_state()
    step = state["steps"][0]
    records = {r.trial.trial_id: r.result for r in run.read_trials().records if r.result.ok}
    ok = [c for c in step["candidates"] if c["status"] == "ok"]
    parent = state["path"][0]
    scored = [Scored(c["axis"], c["gflops"], records[c["trial_id"]].top1) for c in ok]
    pick = select(rule, scored, parent["top1"], parent["gflops"])
    ev = [Evidence.from_results(c["axis"], c["gflops"], [records[c["trial_id"]]]) for c in ok]
    parent_ev = Evidence.from_results("parent", parent["gflops"], [records[parent["trial_id"]]])
    std, source = choose_seed_std(None, (0.0, 0.0), ev)
    conf = step_confidence(rule, ev, parent_ev, parent["gflops"], std, source)
    return ok[pick]["axis"], conf.confidence[pick], 1 + len(ok)


def path_stability(args: argparse.Namespace) -> None:
    from collections import Counter

    from expand import api
    from expand.config import load_experiment

    rule = load_experiment(args.experiment).selection
    out_root = args.out or os.path.join(ROOT, "results", "path-stability")
    rows = []
    for s in args.run_seeds:
        exp_path = _stability_experiment(args.experiment, out_root, s, args.extra, args.level)
        run_dir = os.path.join(out_root, f"seed{s}")
        if not os.path.isfile(os.path.join(run_dir, "state.json")):
            api.start_search(exp_path, out=run_dir, quiet=True)
        else:  # a rerun resumes; other confirmation settings replay the recorded trials (force)
            api.resume(run_dir, quiet=True, force=True)
        from expand.run import RunDir

        state = RunDir(run_dir).read_state()
        step = state["steps"][0]
        plain, plain_conf, plain_trials = _first_round(run_dir, rule)
        rows.append({"seed": s, "plain": plain, "plain_conf": plain_conf, "plain_trials": plain_trials,
                     "confirmed": step["chosen_axis"], "conf": step["confidence"],
                     "trials": plain_trials + step["extra_trials"]})
        r = rows[-1]
        print(f"  run seed {s}: without confirmation {r['plain']} (conf {r['plain_conf']:.2f}, "
              f"{r['plain_trials']} trials); with: {r['confirmed']} (conf {r['conf']:.2f}, {r['trials']} trials)",
              flush=True)
    print(f"\npath stability, step 1: {os.path.basename(args.experiment)}, run seeds {args.run_seeds}, "
          f"confirmation at {args.level:g} with up to {args.extra} extra trials")
    print(f"{'':22} {'majority axis':>14} {'runs picking it':>16} {'trials (basis incl.)':>21} {'mean conf':>10}")
    for label, key, trials, conf in (("without confirmation", "plain", "plain_trials", "plain_conf"),
                                     ("with confirmation", "confirmed", "trials", "conf")):
        axis, n = Counter(r[key] for r in rows).most_common(1)[0]
        print(f"{label:22} {axis:>14} {f'{n} of {len(rows)}':>16} {sum(r[trials] for r in rows):>21} "
              f"{statistics.mean(r[conf] for r in rows):>10.2f}")
    ratio = sum(r["trials"] for r in rows) / sum(r["plain_trials"] for r in rows)
    print(f"trials with / without confirmation: {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=os.path.join(ROOT, "experiments", "synthetic_tiny.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--skip-candidates", action="store_true")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--path-stability", action="store_true")
    ap.add_argument("--run-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--extra", type=int, default=6, help="search.confirm.max_extra_trials")
    ap.add_argument("--level", type=float, default=0.9, help="search.confirm.confidence")
    ap.add_argument("--out", default=None, help="run folders (default results/path-stability); a rerun resumes, "
                    "and with a smaller --extra replays the recorded trials without training")
    args = ap.parse_args()
    if args.path_stability:
        path_stability(args)
        return
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
