"""TimeLimits: trial.time_limit_s as a policy (none, fixed, auto from the run's seconds per GFLOP)."""

import types

import pytest

from expand.search.time_limits import TimeLimits, seconds_per_gflop
from expand.search.trial import TrialResult, TrialSpec
from expand.spec import ArchSpec


def _trial(gflops):
    return TrialSpec("s02-depth", 2, "depth", ArchSpec(4, 8, 96), 0, gflops, 10)


def _ok(seconds, **extra):
    return TrialResult("x", "ok", top1=0.5, seconds=seconds, extra=extra)


def _section(value, factor=4.0, min_s=900.0):
    return types.SimpleNamespace(time_limit_s=value, time_limit_factor=factor, time_limit_min_s=min_s)


def test_the_policy_is_read_from_the_trial_section():
    assert TimeLimits.of(_section(None)) == TimeLimits() and not TimeLimits().any
    assert TimeLimits.of(_section(5400)) == TimeLimits(fixed_s=5400.0)
    auto = TimeLimits.of(_section("auto", 3.0, 60.0))
    assert auto.auto and auto.any and (auto.factor, auto.min_s, auto.fixed_s) == (3.0, 60.0, None)


def test_auto_is_the_factor_times_the_runs_seconds_per_gflop_with_a_floor():
    finished = [(1.0, _ok(10.0)), (2.0, _ok(5.0, steps=100, resumed_from_step=50)),  # counted whole: 10 s
                (5.0, TrialResult("f", "failed", seconds=500.0))]  # a failure says nothing of training time
    assert seconds_per_gflop(finished) == pytest.approx(20.0 / 3.0)
    auto = TimeLimits(factor=4.0, min_s=1.0)
    assert auto.for_trial(_trial(6.0), finished) == 160.0  # 4 x 6 GF x 20/3 s per GF
    assert auto.for_trial(_trial(0.01), finished) == 1.0  # (whole seconds, then the floor)
    assert TimeLimits(factor=4.0, min_s=900.0).for_trial(_trial(6.0), finished) == 900.0
    assert auto.for_trial(_trial(6.0), []) is None  # nothing finished yet (the basis): no limit
    assert auto.for_trial(_trial(6.0), finished[2:]) is None
    assert TimeLimits(fixed_s=30.0).for_trial(_trial(6.0), finished) == 30.0
    assert TimeLimits().for_trial(_trial(6.0), finished) is None


def test_an_auto_limit_is_at_most_30_days_however_large_the_factor():
    """A limit past ~1e10 s cannot be set as a timer (the trial failed: OverflowError); 1e308 x a rate is inf."""
    finished = [(1.0, _ok(10.0))]
    assert TimeLimits(factor=1e308, min_s=1.0).for_trial(_trial(6.0), finished) == 30 * 24 * 3600
    assert TimeLimits(factor=4.0, min_s=1.0).for_trial(_trial(6.0), finished) == 240.0


@pytest.mark.parametrize("key", ["time_limit_s", "time_limit_min_s"])
def test_a_time_limit_over_30_days_is_refused_in_the_file(key):
    from expand.config import load_experiment, experiment_from_dict
    from expand.errors import ConfigError

    d = load_experiment("oracle").to_dict()
    d["trial"][key] = 30 * 24 * 3600
    assert getattr(experiment_from_dict(d).trial, key) == 30 * 24 * 3600
    d["trial"][key] = 1e308
    with pytest.raises(ConfigError, match=rf"trial.{key}: must be > 0 and at most 2592000 s \(30 days\), got 1e\+308"):
        experiment_from_dict(d)


def test_a_timeout_under_auto_records_the_factor_and_says_so():
    auto = TimeLimits(factor=4.0, min_s=900.0)
    stopped = auto.stamp(TrialResult("t", "timeout", error="stopped after 960 s: trial.time_limit_s is 960",
                                     extra={"time_limit_s": 960.0}))
    assert stopped.extra == {"time_limit_s": 960.0, "time_limit_factor": 4.0}
    assert "auto: 4 x this run's seconds per GFLOP, at least 900 s" in stopped.error
    assert auto.stamp(_ok(3.0)).extra == {}  # only timeouts
    assert "time_limit_factor" not in TimeLimits(fixed_s=9.0).stamp(TrialResult("t", "timeout")).extra


def test_only_a_timeout_under_a_smaller_limit_than_now_is_cut_short():
    fixed = TrialResult("t", "timeout", extra={"time_limit_s": 60.0})
    assert TimeLimits(fixed_s=90.0).cut_short(fixed, 90.0)
    assert not TimeLimits(fixed_s=60.0).cut_short(fixed, 60.0)
    assert TimeLimits().cut_short(fixed, None)  # no limit now
    assert not TimeLimits(fixed_s=90.0).cut_short(_ok(1.0), 90.0)
    # under auto, an auto timeout is judged by factor: the rate moving as trials finish retrains nothing
    under_auto = TrialResult("t", "timeout", extra={"time_limit_s": 960.0, "time_limit_factor": 4.0})
    assert not TimeLimits(factor=4.0).cut_short(under_auto, 2000.0)
    assert TimeLimits(factor=6.0).cut_short(under_auto, 960.0)
    # a fixed-limit timeout, now under auto: by seconds
    assert TimeLimits(factor=4.0).cut_short(fixed, 120.0) and not TimeLimits(factor=4.0).cut_short(fixed, 30.0)
