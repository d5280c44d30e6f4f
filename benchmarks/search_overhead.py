"""What the coordinator and Ray cost on top of the trials themselves.

Oracle trials that only sleep a fixed time are run through a real search
(the `x3d-expand search` command in a subprocess, so start-up, FLOP counting,
state files and Ray's own start are all included) with the Ray runner and the
serial runner. With every trial lasting exactly SLEEP seconds, the ideal wall
time is known: per step, ceil(trials / parallel) x SLEEP. The overhead is

    (wall - ideal) / wall

printed for both runners side by side. Goal (issue 6): < 5% for 30 s trials.
It is split in two, because one part is paid once per search and the other
at every step:

  start s     process start -> the basis trial starts (imports, Ray's start,
              the worker pool, counting the basis)
  stop s      the last trial ends -> the process exits (pool and Ray down, tables)
  steps       from the basis's end to the last trial's end: the time
              between batches (counting candidates, dispatching, collecting)
              as a fraction of that span. This is what a longer search pays.

Each runner gets its own empty FLOP cache, as a first search on a new machine.

    python benchmarks/search_overhead.py                  # 30 s trials, 1 step
    python benchmarks/search_overhead.py --sleep 5 --steps 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "expand.cli"]


def write_experiment(folder: str, runner: str, sleep: float, steps: int, cpus: float) -> str:
    exp = {
        "name": f"overhead-{runner}",
        "search_space": os.path.join(ROOT, "search_spaces", "tiny_cpu.yaml"),
        "data": {"num_classes": 10},
        "trial": {"function": "expand.search.oracle:run_oracle", "options": {"sleep": sleep}},
        "resources": {"cpus_per_trial": cpus},
        "search": {"max_steps": steps, "seed": 0, "runner": runner},
    }
    path = os.path.join(folder, f"{runner}.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(exp, fh)
    return path


def measure(runner: str, sleep: float, steps: int, cpus: float, parallel: int, folder: str) -> dict:
    exp = write_experiment(folder, runner, sleep, steps, cpus)
    out = os.path.join(folder, f"run-{runner}")
    env = dict(os.environ, X3D_EXPAND_CACHE=os.path.join(folder, f"cache-{runner}"))
    started = time.time()
    t0 = time.perf_counter()
    subprocess.run([*CLI, "search", exp, "--out", out, "--quiet"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    ended = started + wall
    trials_per_step: dict[int, int] = {}
    finished: dict[int, list[float]] = {}
    basis_start = math.inf
    with open(os.path.join(out, "trials.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            step = rec["step"]
            trials_per_step[step] = trials_per_step.get(step, 0) + 1
            finished.setdefault(step, []).append(rec["finished_at"])
            if step == 0:
                basis_start = min(basis_start, rec["finished_at"] - rec["result"]["seconds"])
    width = 1 if runner == "serial" else parallel
    ideal_by_step = {s: math.ceil(n / width) * sleep for s, n in trials_per_step.items()}
    ideal = sum(ideal_by_step.values())
    last = max(max(v) for v in finished.values())
    span = last - max(finished[0])
    ideal_span = ideal - ideal_by_step[0]
    return {"runner": runner, "trials": sum(trials_per_step.values()), "wall_s": wall,
            "ideal_s": ideal, "overhead_s": wall - ideal, "overhead_fraction": (wall - ideal) / wall,
            "start_s": basis_start - started, "stop_s": ended - last,
            "steps_fraction": (span - ideal_span) / span if span > 0 else math.nan}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sleep", type=float, default=30.0, help="seconds per trial")
    ap.add_argument("--steps", type=int, default=1, help="expansion steps (6 trials each, plus the basis)")
    ap.add_argument("--parallel", type=int, default=6,
                    help="trials Ray runs at once (cpus_per_trial = cores / parallel)")
    ap.add_argument("--runners", nargs="+", default=["ray", "serial"], choices=["ray", "serial"])
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    cpus = cores / args.parallel
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for runner in args.runners:
            rows.append(measure(runner, args.sleep, args.steps, cpus, args.parallel, folder))
    print(f"search overhead: {args.steps} step(s), oracle trials sleeping {args.sleep:g} s, "
          f"{cores} cores, Ray {args.parallel} trials at once ({cpus:.3g} cpus each), cold FLOP cache")
    print(f"{'runner':8} {'trials':>6} {'wall s':>8} {'ideal s':>8} {'overhead s':>10} {'overhead':>9}"
          f" {'start s':>8} {'stop s':>7} {'steps':>7}")
    for r in rows:
        print(f"{r['runner']:8} {r['trials']:6d} {r['wall_s']:8.1f} {r['ideal_s']:8.1f} "
              f"{r['overhead_s']:10.1f} {r['overhead_fraction']:9.1%} {r['start_s']:8.1f} {r['stop_s']:7.1f}"
              f" {r['steps_fraction']:7.1%}")


if __name__ == "__main__":
    main()
