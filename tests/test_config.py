"""Experiment files: defaults, older spellings read as today's, bad values named."""

import os
import re

import pytest
import yaml

from expand.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_loader_workers_auto_follow_the_trials_cpus():
    from expand.config import loader_workers

    assert loader_workers("auto", 1) == 0 and loader_workers("auto", 8) == 7 and loader_workers("auto", 2.5) == 2
    assert loader_workers(3, 8) == 3
    # written out and read back, as a run's config.yaml is on resume
    from expand.config import experiment_from_dict, load_experiment

    exp = load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml"))
    assert exp.trial.workers == "auto" and experiment_from_dict(exp.to_dict()).trial.workers == "auto"
    d = exp.to_dict()
    d["trial"]["workers"] = -1
    with pytest.raises(ConfigError, match=r"trial.workers: must be 0-256 \(loader processes\), got -1"):
        experiment_from_dict(d)


def test_a_run_folder_from_before_checkpoint_policies_reads_as_the_new_default(tmp_path):
    from expand.config import experiment_from_dict, load_experiment
    from tests.search.helpers import oracle_experiment

    exp = load_experiment(oracle_experiment(tmp_path))
    assert exp.trial.checkpoint == "path"
    old = exp.to_dict()
    old["trial"]["checkpoint"] = False  # what config.yaml held before 0.2
    assert experiment_from_dict(old).to_dict() == exp.to_dict()  # so resume sees no change
    old["trial"]["checkpoint"] = True
    assert experiment_from_dict(old).trial.checkpoint == "all"
    old["trial"]["checkpoint"] = "some"
    with pytest.raises(ConfigError, match="trial.checkpoint: must be one of 'path', 'all', 'none'"):
        experiment_from_dict(old)


@pytest.mark.parametrize("value, message", [(0, "must be > 0"), (-5, "must be > 0"),
                                            ("1h", "expected a number, 'auto' or null, got '1h'")])
def test_a_time_limit_is_a_positive_number_of_seconds_auto_or_null(value, message):
    from expand.config import experiment_from_dict, load_experiment

    exp = load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml"))
    assert exp.trial.time_limit_s is None and exp.retries.timeout == 0  # off unless asked for
    d = exp.to_dict()
    d["trial"]["time_limit_s"] = 5400
    assert experiment_from_dict(d).trial.time_limit_s == 5400
    d["trial"]["time_limit_s"] = "auto"
    assert experiment_from_dict(d).trial.time_limit_s == "auto"
    d["trial"]["time_limit_s"] = value
    with pytest.raises(ConfigError, match=f"trial.time_limit_s: .*{re.escape(message)}"):
        experiment_from_dict(d)
    d["trial"]["time_limit_s"], d["trial"]["time_limit_factor"] = "auto", 0.5
    with pytest.raises(ConfigError, match="trial.time_limit_factor: must be >= 1, got 0.5"):
        experiment_from_dict(d)


@pytest.mark.parametrize("key, value, message", [
    (("search", "max_steps"), 0, "search.max_steps: must be 1-100, got 0"),
    (("search", "max_steps"), 10**12, "search.max_steps: must be 1-100, got 1000000000000"),
    (("search_space", "step", "flops_factor"), 1.0, "search_space.step.flops_factor: must be in (1, 10], got 1"),
    (("search_space", "step", "flops_factor"), 1e308, "search_space.step.flops_factor: must be in (1, 10], got 1e+308"),
])
def test_steps_and_the_step_factor_are_bounded_so_the_reach_check_cannot_overflow(key, value, message):
    """factor ** max_steps was an OverflowError (an internal error) for a huge factor or step count."""
    from expand.config import experiment_from_dict, load_experiment

    d = load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml")).to_dict()
    assert experiment_from_dict(d).search.max_steps == 4
    where = d
    for k in key[:-1]:
        where = where[k]
    where[key[-1]] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        experiment_from_dict(d)


@pytest.mark.parametrize("key, value, message", [
    ("workers", 800, "trial.workers: must be 0-256 (loader processes), got 800"),
    ("threads", 100000, "trial.threads: must be 0-256 (torch threads), got 100000"),
    ("prefetch", 1000, "trial.prefetch: must be 0-64 (batches held in memory), got 1000"),
])
def test_a_typo_that_would_flood_the_machine_with_loaders_or_threads_is_refused(key, value, message):
    from expand.config import experiment_from_dict, load_experiment

    d = load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml")).to_dict()
    for fine in ("auto", 8, 0) if key == "workers" else (8, 0):
        assert getattr(experiment_from_dict({**d, "trial": {**d["trial"], key: fine}}).trial, key) == fine
    with pytest.raises(ConfigError, match=re.escape(message)):
        experiment_from_dict({**d, "trial": {**d["trial"], key: value}})


def _tiny() -> dict:
    """The shipped synthetic_tiny experiment, resolved, without its data paths checked (a fresh clone
    has no data/synthetic until `make demo`)."""
    from expand.config import load_experiment

    return load_experiment(os.path.join(ROOT, "experiments", "synthetic_tiny.yaml"), check_paths=False).to_dict()


@pytest.mark.parametrize("section, key, value, message", [
    ("schedule", "epochs", 1e308, "schedule.epochs: must be > 0 and at most 10000 (a trial's epochs), got 1e+308"),
    ("data", "val_clips", 1000000, "data.val_clips: must be 1-100 (clips per video), got 1000000"),
    ("data", "train_clips_per_video", 10**9, "data.train_clips_per_video: must be 1-100 (clips per video), got"),
    ("schedule", "batch_size", 10**9, "schedule.batch_size: must be 1-4096 (clips per step on one device), got"),
    ("schedule", "iterations", 10**12, "schedule.iterations: must be 1-100000000 (a trial's train steps), got"),
    ("data", "fps", 1e308, "data.fps: must be > 0 and at most 1000 (frames per second), got 1e+308"),
    ("data", "test_crop_ratio", 1e308, "data.test_crop_ratio: must be > 0 and at most 8 (x the train crop), got"),
    ("data", "jitter", [1.0, 1e308], "data.jitter: maximum must be at most 8 (x the crop), got 1e+308"),
    ("data", "std", [0.2, 0.0, 0.2], "data.std: every value must be > 0, got 0.0"),
])
def test_a_typo_that_would_overflow_or_multiply_the_data_is_refused(section, key, value, message):
    """epochs 1e308 failed every trial (OverflowError); 1e9 clips per video (or per batch) was recorded
    as an OOM (a 2.5 TB allocation) and retried with half the batch; fps 1e308 hung the clip sampler, a crop
    ratio or jitter of 1e308 stopped the command with an internal OverflowError; std 0 divided
    every frame by zero and the trial "diverged"."""
    from expand.config import experiment_from_dict

    d = _tiny()
    fine = [1.0, 2.0] if key == "jitter" else [0.2, 0.2, 0.2] if key == "std" else 2
    assert experiment_from_dict({**d, section: {**d[section], key: fine}}) is not None
    with pytest.raises(ConfigError, match=re.escape(message)):
        experiment_from_dict({**d, section: {**d[section], key: value}})


@pytest.mark.parametrize("section, key, fine, value, message", [
    ("trial", "device", "cuda:1", "tpu", "trial.device: must be auto, cpu, cuda, cuda:N, mps or xpu, got 'tpu'"),
    ("data", "mean", [0.4, 0.4, 0.4], [0.4, 0.4], "data.mean: must be 3 values (R, G, B), got 2"),
    ("data", "std", [0.2, 0.2, 0.2], [0.2], "data.std: must be 3 values (R, G, B), got 1"),
    ("data", "separator", ",", "", "data.separator: must be one or more characters"),
    ("schedule", "momentum", 0.0, 1.5, "schedule.momentum: must be in [0, 1), got 1.5"),
    ("retries", "failed", 100, 10**9, "retries.failed: must be 0-100 (retries of one trial), got 1000000000"),
])
def test_a_value_that_would_fail_or_retry_every_trial_is_refused_at_start(section, key, fine, value, message):
    """Each was accepted and then failed every trial (torch.device('tpu'), a 2-value mean broadcast
    against 3 channels), silently read whitespace (separator ''), diverged (momentum >= 1), or
    retried an always-failing trial a billion times."""
    from expand.config import experiment_from_dict

    d = _tiny()
    assert getattr(getattr(experiment_from_dict({**d, section: {**d[section], key: fine}}), section), key) == fine
    with pytest.raises(ConfigError, match=re.escape(message)):
        experiment_from_dict({**d, section: {**d[section], key: value}})


def test_a_target_far_out_of_reach_is_a_config_error_not_an_overflow(tmp_path):
    """targets [1e308]: 1e308 / basis overflowed to inf and validate() raised OverflowError."""
    from expand.complexity import ComplexityCounter
    from expand.config import experiment_from_dict
    from expand.preflight import check_budgets

    d = _tiny()
    exp = experiment_from_dict({**d, "search": {**d["search"], "targets": [1e308]}})
    with pytest.raises(ConfigError, match=r"search.targets: 1e\+308 GFLOPs is out of reach: about 10\d\d steps"):
        check_budgets(exp, ComplexityCounter())


@pytest.mark.parametrize("key, fine, value, message", [
    ("seed_std", 0.035, 3.5,
     "search.confirm.seed_std: must be a fraction of top-1 in [0, 0.5] (3.5 points is 0.035), got 3.5"),
    ("max_extra_trials", 1000, 10**9, "search.confirm.max_extra_trials: must be 0-1000 (extra trials per step), got"),
])
def test_confirmation_settings_in_the_wrong_unit_or_absurd_are_refused(key, fine, value, message):
    """seed_std 3.5 (top-1 points, not a fraction) made every step a coin toss: each candidate a
    contender, max_extra_trials spent on every step."""
    from expand.config import experiment_from_dict

    d = _tiny()

    def with_confirm(v):
        return {**d, "search": {**d["search"], "confirm": {**d["search"]["confirm"], key: v}}}

    assert getattr(experiment_from_dict(with_confirm(fine)).search.confirm, key) == fine
    with pytest.raises(ConfigError, match=re.escape(message)):
        experiment_from_dict(with_confirm(value))


@pytest.mark.parametrize("name", ["../../escape", "", "a b", "x/y", ".hidden", "n" * 101])
def test_an_experiment_name_that_is_not_a_folder_name_is_refused(tmp_path, name):
    """The default run folder is results/<name>-<time>: "../../escape" wrote outside results."""
    from expand.config import experiment_from_dict, load_experiment

    d = yaml.safe_load(open(os.path.join(ROOT, "experiments", "oracle.yaml")))
    d["search_space"] = os.path.join(ROOT, "search_spaces", "tiny_cpu.yaml")
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({**d, "name": "fine-name_1.0"}))
    assert load_experiment(str(tmp_path / "e.yaml")).name == "fine-name_1.0"
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({**d, "name": name}))
    with pytest.raises(ConfigError, match=r"e\.yaml: name: must be 1-100 letters, digits"):
        load_experiment(str(tmp_path / "e.yaml"))
    # a run folder's config.yaml from before the check still loads (resume, show)
    assert experiment_from_dict({**load_experiment(os.path.join(ROOT, "experiments", "oracle.yaml")).to_dict(),
                                 "name": name}).name == name
