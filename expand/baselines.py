"""What a user without this tool would run: Optuna over the six factors, or compound scaling.

All three use the experiment's trial function, data, schedule, runner, retry
policy and run-folder format, so ``show``, ``plot`` and ``compare`` read a
baseline run like a search. The trial budget counts *trained* trials;
samples over the FLOP cap are never trained and are counted apart, and a
sample that rounds to a model already trained reuses its result.

* ``random`` / ``tpe``: Optuna samplers over the factor ranges the expansion
  can reach from the basis (frames up, stride down, crop/width/bottleneck/depth
  up, within the search space's bounds), rounded to the same grids. The study
  lives in a journal file in the run folder, so a baseline resumes like a
  search: finished trials are never retrained, and a trial that was running
  when the process died is rerun with the same factors.
* ``compound``: EfficientNet-style. The six X3D factors grow together by one
  common ratio c**phi (duration and frame rate both lengthen frames; frame
  rate shortens the stride), with phi chosen so budget k is about 2**k times
  the basis FLOPs: one trial per budget, until the cap or the trial budget;
  when budget k is over the cap, the largest compound model under the cap is
  the last one trained.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from expand.config import Experiment
from expand.factor_space import FlopFloor, capped_ranges, snap
from expand.fileio import cut_torn_tail
from expand.registry import Registry
from expand.search.executor import TrialExecutor
from expand.search.progress import Progress, SilentProgress
from expand.search.runners import Runner
from expand.search.time_limits import TimeLimits
from expand.run import RunDir
from expand.search.trial import TrialResult, TrialSpec, derive_seed
from expand.spec import ArchSpec
from expand.weights import apply_policy

MAX_SAMPLES_PER_TRIAL = 200  # over-cap or repeated samples tolerated per trained trial


@dataclass
class BaselineState:
    method: str
    budget: int
    trained: int = 0
    over_cap: int = 0
    repeats: int = 0
    samples: int = 0
    stop_reason: str = ""
    best: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)


class Baseline:
    """One baseline run: ``run()`` trains up to ``budget`` trials and writes state.json."""

    def __init__(self, exp: Experiment, run: RunDir, runner: Runner, counter: Any, method: str,
                 budget: int, max_gflops: Optional[float] = None, progress: Progress | None = None,
                 extra_state: dict[str, Any] | None = None) -> None:
        from expand.errors import InputError

        if method not in METHODS:
            raise InputError(f"--method {method}: must be one of {', '.join(METHODS)}")
        self.method = METHODS.get(method)
        self.exp, self.space, self.run_dir, self.runner, self.counter = exp, exp.search_space, run, runner, counter
        self.cap = max_gflops if max_gflops is not None else exp.search.max_gflops
        self.progress = progress or SilentProgress()
        self.state = BaselineState(method, budget, extra=dict(extra_state or {}))
        self.executor = TrialExecutor(run, runner, exp.retries, self.progress,
                                      on_pending=lambda ids: self._write_state("running", ids),
                                      limits=TimeLimits.of(exp.trial))
        self.resolved = exp.to_dict()
        self.seed = derive_seed(exp.search.seed, 1)  # every trial the same schedule and seed
        self.results: dict[ArchSpec, tuple[str, TrialResult]] = {}
        self._ranges = capped_ranges(self.space, counter, self.cap) if self.method.sampler else {}
        self._told_ok = 0  # completed Optuna trials with an accuracy: TPE's gamma counts these

    # ------------------------------------------------------------------ trials
    def _trial(self, trial_id: str, spec: ArchSpec) -> TrialSpec:
        c = self.counter.count(spec)
        return TrialSpec(trial_id, self.state.trained, self.state.method, spec, self.seed, c.gflops,
                         c.params, self.resolved, self.run_dir.file("trials", trial_id))

    def _over_cap(self, spec: ArchSpec) -> bool:
        return self.cap is not None and self.counter.gflops(spec) > self.cap

    def _record(self, trial: TrialSpec, result: TrialResult) -> None:
        self.results[trial.spec] = (trial.trial_id, result)
        self.state.trained += 1
        if result.ok and (self.state.best is None or result.top1 > self.state.best["top1"]):
            self.state.best = {"trial_id": trial.trial_id, "spec": trial.spec.to_dict(), "gflops": trial.gflops,
                               "top1": result.top1, "name": trial.spec.name}
        # a baseline's "path" is its best model so far: under trial.checkpoint "path" only it keeps weights
        best = [self.state.best["trial_id"]] if self.state.best else []
        apply_policy(self.run_dir.path, self.exp.trial.checkpoint, best)

    def _write_state(self, status: str, pending: list[str] | None = None) -> None:
        s = self.state
        self.run_dir.write_state({
            **s.extra, "name": self.exp.name, "kind": s.method, "method": s.method, "status": status,
            "stop_reason": s.stop_reason,
            "trial_budget": s.budget, "trained": s.trained, "over_cap": s.over_cap, "repeats": s.repeats,
            "samples": s.samples, "max_gflops": self.cap, "best": s.best, "pending": pending or [],
            "selection_rule": f"{s.method} baseline: best top-1 of {s.budget} trained trials",
        })

    def run(self) -> BaselineState:
        self._write_state("running")
        self.method.run(self)
        self._write_state("finished")
        return self.state

    # ------------------------------------------------------------------ optuna
    def _study(self):
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        journal = self.run_dir.file("optuna.journal")
        # A full disk can tear the journal's last line, and Optuna cannot read a log with a torn
        # line inside it: cut it (a torn tell leaves the trial running, and the replay below
        # takes its result from trials.jsonl; nothing is retrained).
        cut_torn_tail(journal, _json_line)
        storage = JournalStorage(JournalFileBackend(journal))
        sampler = self.method.sampler(self)
        return optuna.create_study(study_name=f"{self.exp.name}-{self.state.method}", storage=storage,
                                   sampler=sampler, direction="maximize", load_if_exists=True)

    def _suggest(self, trial: Any) -> ArchSpec:
        factors = {}
        ranges = self._ranges
        for name, r in ranges.items():
            if r.low == r.high:
                factors[name] = r.low
            elif name in ("frames", "stride"):
                factors[name] = trial.suggest_int(name, int(r.low), int(r.high), log=True)
            else:
                factors[name] = trial.suggest_float(name, r.low, r.high, log=True)
        return snap(self.space, factors, ranges)

    def _tell(self, study: Any, number: int, result: TrialResult) -> None:
        from optuna.trial import TrialState

        if result.ok:
            if study.tell(number, result.top1, skip_if_finished=True).state.name == "COMPLETE":
                self._told_ok += 1
        else:
            study.tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def run_optuna(self) -> None:
        """Ask the method's Optuna sampler for factors, train in batches of the runner's parallelism."""
        from optuna.trial import TrialState

        study = self._study()
        # Replay: trials finished before an interruption count; ones left running are rerun.
        pending: list[tuple[int, ArchSpec]] = []
        for ft in study.get_trials(deepcopy=False):
            spec = ArchSpec.from_dict(ft.user_attrs["spec"]) if "spec" in ft.user_attrs else None
            self.state.samples += 1
            if ft.state == TrialState.PRUNED or (ft.state == TrialState.RUNNING and spec is not None
                                                 and self._over_cap(spec)):
                self.state.over_cap += 1
                study.tell(ft.number, state=TrialState.PRUNED, skip_if_finished=True)
            elif ft.user_attrs.get("repeat_of"):
                self.state.repeats += 1
                self._told_ok += ft.state == TrialState.COMPLETE
            elif spec is not None and ft.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING):
                pending.append((ft.number, spec))
        self._train_batch(study, pending)
        parallel = max(1, self.runner.parallelism)
        floor = FlopFloor(self.space, self.counter, self._ranges) if self.cap is not None else None
        limit = MAX_SAMPLES_PER_TRIAL * self.state.budget
        while self.state.trained < self.state.budget:
            batch: list[tuple[int, ArchSpec]] = []
            while len(batch) < parallel and self.state.trained + len(batch) < self.state.budget:
                if self.state.samples >= limit:
                    break
                trial = study.ask()
                self.state.samples += 1
                spec = self._suggest(trial)
                trial.set_user_attr("spec", spec.to_dict())
                if (floor is not None and floor.gflops(spec) > self.cap) or self._over_cap(spec):
                    self.state.over_cap += 1
                    study.tell(trial, state=TrialState.PRUNED)
                    continue
                if spec in self.results or any(spec == s for _, s in batch):
                    earlier = self.results.get(spec)
                    self.state.repeats += 1
                    trial.set_user_attr("repeat_of", earlier[0] if earlier else "same batch")
                    if earlier:
                        self._tell(study, trial.number, earlier[1])
                    else:
                        study.tell(trial, state=TrialState.FAIL)
                    continue
                batch.append((trial.number, spec))
            if not batch:
                self.state.stop_reason = (f"{limit} samples drawn; the rest were over the cap "
                                          f"({self.state.over_cap}) or repeats ({self.state.repeats})")
                return
            self._train_batch(study, batch)
        self.state.stop_reason = f"trained the budget of {self.state.budget} trials"

    def _train_batch(self, study: Any, batch: list[tuple[int, ArchSpec]]) -> None:
        if not batch:
            return
        trials = [self._trial(f"{self.state.method}-{n:04d}", spec) for n, spec in batch]
        results = self.executor.train(trials)
        for (number, _), t in zip(batch, trials):
            self._record(t, results[t.trial_id])
            self._tell(study, number, results[t.trial_id])
        self._write_state("running")

    # ---------------------------------------------------------------- compound
    def _compound_at(self, phi: float) -> ArchSpec:
        """The basis with every factor grown by the common ratio c = 2**phi, on the grids."""
        b, c = self.space.basis, 2.0 ** phi
        return snap(self.space, {"frames": b.frames * c * c, "stride": b.stride / c, "crop": b.crop * c,
                                 "width": b.width * c, "bottleneck": b.bottleneck * c, "depth": b.depth * c})

    def _compound_bracket(self, gflops: float, hi: float) -> tuple[ArchSpec, ArchSpec]:
        """The compound specs just under and just over ``gflops`` (FLOPs grow with phi, up to rounding)."""
        lo = 0.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.counter.gflops(self._compound_at(mid)) <= gflops:
                lo = mid
            else:
                hi = mid
        return self._compound_at(lo), self._compound_at(hi)

    def compound_spec(self, k: int) -> ArchSpec:
        """The spec whose FLOPs are nearest 2**k x the basis (in log) on the common-ratio line."""
        target = math.log(self.counter.gflops(self.space.basis) * 2.0 ** k)
        options = set(self._compound_bracket(math.exp(target), float(k)))
        return min(options, key=lambda s: abs(math.log(self.counter.gflops(s)) - target))

    def largest_compound_under(self, cap: float, k: int) -> ArchSpec:
        """The largest spec on the common-ratio line at or under ``cap`` (the basis if none is)."""
        return self._compound_bracket(cap, float(k))[0]

    def run_compound(self) -> None:
        """One trial per budget 2**k x the basis along the common-ratio line, until the cap or budget."""
        k = 0
        while self.state.trained < self.state.budget:
            k += 1
            spec = self.compound_spec(k)
            self.state.samples += 1
            if self._over_cap(spec):
                # The last budget is the largest compound model under the cap: a
                # user with a FLOP cap would train that one rather than stop short.
                self.state.over_cap += 1
                self.state.stop_reason = f"budget 2^{k} x basis is over the cap {self.cap:g} GFLOPs"
                spec = self.largest_compound_under(self.cap, k)
                if spec in self.results or spec == self.space.basis:
                    return
                self.state.stop_reason += "; trained the largest compound model under it last"
                self._train_compound(f"compound-{k:02d}", spec)
                return
            if spec in self.results or spec == self.space.basis:
                self.state.repeats += 1
                if k > 64:
                    self.state.stop_reason = "the factors reached their bounds"
                    return
                continue
            self._train_compound(f"compound-{k:02d}", spec)
        self.state.stop_reason = f"trained the budget of {self.state.budget} trials"

    def _train_compound(self, trial_id: str, spec: ArchSpec) -> None:
        trial = self._trial(trial_id, spec)
        self._record(trial, self.executor.train([trial])[trial.trial_id])
        self._write_state("running")


def _json_line(tail: bytes) -> bool:
    """A journal line that only lacks its newline (a whole JSON object)."""
    import json

    try:
        return isinstance(json.loads(tail), dict)
    except ValueError:
        return False


def _random_sampler(b: Baseline) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=b.exp.search.seed)


def _tpe_sampler(b: Baseline) -> Any:
    import optuna

    # gamma: TPE's "good" group holds trained models only. Its default,
    # ceil(0.1 n) over every trial, filled the group with over-cap samples
    # while the first batch trained, and TPE then proposed nothing but
    # over-cap models (measured: 1 trained of 1400 samples under a cap of
    # 2x the basis). Now over-cap samples (PRUNED) land in the "bad" group
    # only, so they teach TPE where not to go.
    # (Measured on the oracle, cap 0.0084, 13 trials: this gamma trains 13 with
    # 255 over-cap samples; telling over-cap samples FAIL instead, which TPE
    # ignores, trained 5 in 2600 samples.) gamma is deprecated since Optuna
    # 4.9 and removed in 6: setup.cfg pins optuna < 6.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return optuna.samplers.TPESampler(
            seed=b.exp.search.seed, n_startup_trials=max(3, b.state.budget // 4),
            gamma=lambda n: min(25, math.ceil(0.1 * b._told_ok)))


@dataclass(frozen=True)
class BaselineMethod:
    """A baseline: ``run(baseline)`` trains it; ``sampler(baseline)``, if set, is its Optuna sampler.

    A new Optuna-based method is one entry: ``METHODS.register("qmc",
    BaselineMethod("qmc", "...", Baseline.run_optuna, lambda b: QMCSampler(...)))``.
    """

    name: str
    description: str
    run: Callable[[Baseline], None]
    sampler: Optional[Callable[[Baseline], Any]] = None


METHODS: Registry[BaselineMethod] = Registry("baseline method")
for _method in (
    BaselineMethod("random", "Optuna's random sampler over the six factors (log-uniform, on the grids)",
                   Baseline.run_optuna, _random_sampler),
    BaselineMethod("tpe", "Optuna's TPE sampler over the six factors; over-cap samples teach it where not to go",
                   Baseline.run_optuna, _tpe_sampler),
    BaselineMethod("compound", "EfficientNet-style compound scaling: all factors grow by one common ratio",
                   Baseline.run_compound),
):
    METHODS.register(_method.name, _method)


def best_under(points: list[tuple[float, float]], budget: float) -> float:
    """Best top-1 among (gflops, top1) points at or under a budget (nan if none)."""
    fits = [a for g, a in points if g <= budget * (1 + 1e-9) and not math.isnan(a)]
    return max(fits) if fits else math.nan


def run_points(run_dir: str, records: Optional[list] = None) -> list[tuple[float, float]]:
    """(GFLOPs, top-1) of every trained model of a run, contracted models included; a model
    confirmed with several seeds is one point at its mean top-1 (as its step decided).
    ``records``: the run's trials.jsonl, when the caller has read it already."""
    from expand.search.coordinator import load_contractions
    from expand.search.decide import model_scores
    from expand.run import latest_by_trial

    run = RunDir(run_dir)
    records = run.read_trials().records if records is None else records
    points = [(m.gflops, m.top1) for m in model_scores(latest_by_trial(records))]
    for c in load_contractions(run):
        if c.get("top1") is not None and c.get("gflops") is not None:
            points.append((c["gflops"], c["top1"]))
    return points


def scored_videos(run_dir: str, records: Optional[list] = None) -> int:
    """How many videos each trial's top-1 was measured on (the fewest over trials), from the
    per-video results trials record; 0 when they recorded none (an oracle without ``videos``)."""
    from expand.run import latest_by_trial

    records = RunDir(run_dir).read_trials().records if records is None else records
    counts = [int(recs[-1].result.per_video["n"])
              for recs in latest_by_trial(records).values()
              if recs[-1].result.ok and (recs[-1].result.per_video or {}).get("n")]
    return min(counts) if counts else 0


def binomial_se(top1: float, videos: int) -> float:
    """The standard error of a top-1 of ``top1`` measured on ``videos`` videos (nan if either is unknown):
    the noise the validation set alone puts on a figure, before any seed-to-seed noise."""
    if not videos or math.isnan(top1):
        return math.nan
    return math.sqrt(top1 * (1 - top1) / videos)


__all__ = ["Baseline", "BaselineMethod", "METHODS", "best_under", "binomial_se", "run_points", "scored_videos"]
