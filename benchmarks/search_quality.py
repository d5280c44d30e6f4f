"""Expansion vs Optuna random / TPE vs compound scaling, at the expansion's own trial count.

For each seed: run the expansion search (`x3d-expand search`), count its
trials N, then run each baseline with `--trials N` and a FLOP cap just above the
expansion's largest model, and print `x3d-expand compare` at the GFLOPs of the
expansion's path steps (best top-1 at or under each budget). Whatever the
outcome, it is what was measured.

    python benchmarks/search_quality.py                          # synthetic_tiny, 1 step, seed 0
    python benchmarks/search_quality.py --steps 2 --seeds 0 1 --out results/quality
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "expand.cli"]


def cli(*args: str, capture: bool = False) -> str:
    out = subprocess.run([*CLI, *args], cwd=ROOT, check=True, text=True,
                         stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
    return out.stdout or ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=os.path.join(ROOT, "experiments", "synthetic_tiny.yaml"))
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=["random", "tpe", "compound"])
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "search_quality"))
    args = ap.parse_args()
    for seed in args.seeds:
        folder = os.path.join(args.out, f"seed{seed}")
        exp_dir = os.path.join(folder, "expansion")
        if not os.path.isdir(exp_dir):
            cli("search", args.experiment, "--out", exp_dir, "--max-steps", str(args.steps), "--targets",
                "--seed", str(seed), "--quiet")
        with open(os.path.join(exp_dir, "state.json"), encoding="utf-8") as fh:
            path = json.load(fh)["path"]
        with open(os.path.join(exp_dir, "trials.jsonl"), encoding="utf-8") as fh:
            n_trials = sum(1 for line in fh if line.strip())
        cap = max(p["gflops"] for p in path) * 1.05
        runs = [exp_dir]
        for method in args.methods:
            run_dir = os.path.join(folder, method)
            if not os.path.isdir(run_dir):
                cli("baseline", args.experiment, "--method", method, "--trials", str(n_trials),
                    "--max-gflops", f"{cap:.6g}", "--seed", str(seed), "--out", run_dir, "--quiet")
            runs.append(run_dir)
        # repr: a budget rounded below a path model's GFLOPs would leave that model out.
        budgets = [repr(p["gflops"]) for p in path[1:]] or [repr(cap)]
        print(f"seed {seed}: {n_trials} trials each (expansion of {args.steps} step(s)), cap {cap:.4g} GFLOPs")
        print(cli("compare", *runs, "--budgets", *budgets, "--plot", os.path.join(folder, "compare.png"),
                  capture=True))


if __name__ == "__main__":
    main()
