"""What one fvcore count costs, traced as the counter did before and as it does now.

A search counts every candidate of every step (and the lookahead the next
step's), a contraction brackets between two steps, and a baseline counts the
samples its FLOP floor cannot reject: near X3D-L/XL each count used to take
seconds of the coordinator's CPU. For each spec, side by side in one run:

- whole, contiguous: every block traced, default memory layout (before);
- whole, channels-last: the same trace in channels-last (conv3d runs faster on CPU);
- 3 blocks, channels-last: blocks 0-2 of each stage traced, the rest multiplied (now).

It checks the three give the same Complexity and prints seconds (best of
--repeat) and each way's speed-up over the first.

    python benchmarks/flop_count.py                      # tiny deep spec and X3D-XS..XL
    python benchmarks/flop_count.py --presets X3D-M --repeat 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from expand.complexity import _count_complexity  # noqa: E402
from expand.presets import get_preset  # noqa: E402
from expand.spec import ArchSpec  # noqa: E402

WAYS = {
    "whole, contiguous": {"whole": True, "channels_last": False},
    "whole, channels-last": {"whole": True, "channels_last": True},
    "3 blocks, channels-last": {"whole": False, "channels_last": True},
}
TINY_DEEP = ArchSpec(4, 8, 96, width=2.0, bottleneck=3.0, depth=5.0, num_classes=10)


def best_seconds(spec: ArchSpec, repeat: int, **way: bool):
    best, got = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = _count_complexity(spec, **way)
        best = min(best, time.perf_counter() - t0)
    return best, got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="*", default=["X3D-XS", "X3D-M", "X3D-L", "X3D-XL"])
    p.add_argument("--no-tiny", action="store_true", help="skip the tiny deep spec")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    specs = ([] if args.no_tiny else [("tiny 4x96, depth 5", TINY_DEEP)]) + [(n, get_preset(n).spec) for n in args.presets]
    _count_complexity(ArchSpec(1, 8, 64))  # imports and first-trace set-up, outside the timings
    print(f"CPU x{torch.get_num_threads()} threads; seconds per count, best of {args.repeat}")
    names = list(WAYS)
    print(f"{'spec':22} {'blocks':>15} {'GFLOPs':>8} " + " ".join(f"{n:>24}" for n in names) + "  speed-up")
    for label, spec in specs:
        timed = {n: best_seconds(spec, args.repeat, **way) for n, way in WAYS.items()}
        counts = {n: c for n, (_, c) in timed.items()}
        if len({repr(c) for c in counts.values()}) != 1:
            print(f"{label}: the ways count differently: {counts}", file=sys.stderr)
            return 1
        base = timed[names[0]][0]
        speedups = " ".join(f"{base / timed[n][0]:.1f}x" for n in names[1:])
        print(f"{label:22} {str(spec.stage_blocks):>15} {counts[names[0]].gflops:8.4g} "
              + " ".join(f"{timed[n][0]:24.3f}" for n in names) + f"  {speedups}")
    print("The three ways gave the same Complexity (GFLOPs, params, every stage) for every spec.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
