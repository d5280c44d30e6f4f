"""``train``: one trial by hand, with the experiment's data and schedule."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from expand.complexity import ComplexityCounter
from expand.config.settings import settings_from
from expand.fileio import make_folder
from expand.preflight import check_device_here, configured
from expand.search.node_cache import CacheJob, build_here
from expand.search.time_limits import TimeLimits
from expand.search.trial import TrialSpec, call_safely, load_trial_function
from expand.tables import clean_nans, json_line


def train_one(args: argparse.Namespace, spec_from_args) -> int:
    exp = configured(args.experiment, {}, settings_from(args.settings))
    check_device_here(exp, "train runs the trial in this process")
    spec = spec_from_args(args, base=exp.search_space.basis)
    func = load_trial_function(exp.trial.function)
    c = ComplexityCounter().count(spec)
    out = make_folder(args.out, "trial's folder") if args.out else tempfile.mkdtemp(prefix="x3d-train-")
    trial = TrialSpec("manual", 0, "manual", spec, args.seed if args.seed is not None else exp.search.seed,
                      c.gflops, c.params, exp.to_dict(), os.path.abspath(out))
    job = CacheJob.of(exp)
    if job is not None:  # as a search does: every core decodes what the cache lacks, not the trial's one
        line = build_here(job, progress=not args.json)
        if line:
            print(line, file=sys.stderr if args.json else sys.stdout, flush=True)
    # by hand as in a search: a hang ends (auto has no measured rate here: no limit)
    result = call_safely(func, trial, TimeLimits.of(exp.trial).fixed_s)
    if args.json:
        print(json_line(clean_nans({"spec": spec.to_dict(), "name": spec.name, **result.to_dict()})))
    elif not result.ok:  # no accuracy to print, only what went wrong
        print(f"{spec.name}: {result.status} after {result.seconds:.1f}s  {c.gflops:.4f} GFLOPs\n"
              f"  error: {result.error}")
    else:
        print(f"{spec.name}: {result.status}  top1 {100 * result.top1:.1f}%  top5 {100 * result.top5:.1f}%  "
              f"val loss {result.val_loss:.3f}  {result.seconds:.1f}s  {c.gflops:.4f} GFLOPs"
              + "".join(f"  {what} {rate:.0f} clips/s" for what, rate in
                        (("train", result.train_clips_per_s), ("infer", result.infer_clips_per_s))
                        if rate == rate)  # NaN: nothing was timed (the oracle trains nothing)
              + (f"\n  error: {result.error}" if result.error else ""))
    return 0 if result.ok else 1
