"""expand/search/progress.py: plain lines with ETAs, live updates from trials, the terminal table."""

import io
import math

from expand.search import live
from expand.search.progress import ConsoleProgress, Eta, LiveProgress, _Running, make_progress, whole_trial_seconds
from expand.search.runners import SerialRunner
from expand.search.trial import TrialResult, TrialSpec
from expand.spec import ArchSpec


def _trial(tid, gflops=1.0):
    return TrialSpec(tid, 1, tid.split("-")[-1], ArchSpec(2, 2, 32), 0, gflops, 10)


def _epochs(trial):
    for e in range(1, 4):
        live.report(trial.trial_id, epoch=e, epochs=3, loss=1.0 / e)
    return TrialResult(trial.trial_id, "ok", top1=0.5, seconds=2.0)


def test_a_serial_search_shows_each_epoch_of_a_running_trial():
    out = io.StringIO()
    progress = ConsoleProgress(out, heartbeat_s=0)
    trials = [_trial("s01-fast"), _trial("s01-depth", 2.0)]
    progress.batch_started(trials, 1)
    SerialRunner(_epochs).run(trials, progress.trial_finished, on_progress=progress.trial_progress)
    text = out.getvalue()
    assert "epoch  s01-fast               1/3 loss 1.000" in text and "3/3 loss 0.333" in text
    assert text.count("  finish ") == 2
    # after the first finished trial (2 s for 1 GFLOP), the second (2 GFLOPs) is estimated from its epochs
    first_finish = next(line for line in text.splitlines() if line.startswith("  finish s01-fast"))
    assert "step ~" in first_finish


def test_eta_uses_a_trials_own_epochs_then_seconds_per_gflop():
    eta = Eta()
    r = _Running(_trial("a", 2.0), first_report=100.0, epoch=2, epochs=10)
    assert eta.remaining(r, now=120.0) == 80.0  # 10 s an epoch, 8 to go
    unknown = _Running(_trial("b", 2.0))
    assert math.isnan(eta.remaining(unknown, now=0.0))
    eta.finished.append((1.0, 30.0))
    assert eta.remaining(unknown, now=0.0) == 60.0  # 30 s per GFLOP measured
    assert eta.batch([r, unknown], parallelism=2, now=120.0) == 70.0
    assert eta.later_steps(2, 6, [10.0, 10.0], 3) == (6 * 10 * 2 + 6 * 10 * 4) / 3


def test_a_trial_resumed_from_a_snapshot_is_estimated_from_the_epochs_it_ran_since():
    progress = ConsoleProgress(io.StringIO(), heartbeat_s=3600)
    trial = _trial("s01-depth", 2.0)
    progress.batch_started([trial], 1)
    progress.trial_progress({"trial_id": trial.trial_id, "phase": "training (resumed at step 50)",
                             "epoch": 5, "epochs": 10})
    r = progress.running[trial.trial_id]
    r.epoch_base_t -= 30.0  # it resumed 30 s ago ...
    progress.trial_progress({"trial_id": trial.trial_id, "epoch": 6, "epochs": 10, "loss": 1.0})
    left = progress.eta.remaining(r, now=r.epoch_base_t + 30.0)
    assert left == 4 * 30.0  # ... and has run one epoch since: 30 s an epoch, 4 to go (not 30 / 6 an epoch)

    # its result's seconds cover the 50 steps after the snapshot of 100: the rate counts it whole
    resumed = TrialResult(trial.trial_id, "ok", top1=0.5, seconds=60.0,
                          extra={"steps": 100, "resumed_from_step": 50})
    assert whole_trial_seconds(resumed) == 120.0
    assert whole_trial_seconds(TrialResult("x", "ok", seconds=60.0, extra={"steps": 100})) == 60.0
    progress.trial_finished(trial, resumed)
    assert progress.eta.seconds_per_gflop() == 60.0 and progress.step_seconds == [120.0]


def test_a_trial_requeued_after_its_worker_died_is_timed_from_its_new_attempt():
    progress = ConsoleProgress(io.StringIO(), heartbeat_s=3600)
    trial = _trial("s01-width", 2.0)
    progress.batch_started([trial], 1)
    tid = trial.trial_id
    progress.trial_progress({"trial_id": tid, "phase": "training", "epoch": 0, "epochs": 4})
    r = progress.running[tid]
    r.epoch_base_t -= 500.0  # the lost attempt began training 500 s ago and ran 3 epochs
    progress.trial_progress({"trial_id": tid, "epoch": 3, "epochs": 4, "loss": 1.0})
    # Ray requeues it on a fresh worker: it opens the data and trains again from its snapshot's epoch 2
    progress.trial_progress({"trial_id": tid, "phase": "opening the data"})
    progress.trial_progress({"trial_id": tid, "phase": "training (resumed at step 20)", "epoch": 2, "epochs": 4})
    assert r.epoch_base == 2
    r.epoch_base_t -= 40.0  # it resumed 40 s ago and has run one epoch since
    progress.trial_progress({"trial_id": tid, "epoch": 3, "epochs": 4, "loss": 1.0})
    assert progress.eta.remaining(r, now=r.epoch_base_t + 40.0) == 40.0  # not 500 / 3 an epoch


def test_a_trials_start_line_shows_the_time_limit_it_was_given():
    import dataclasses

    out = io.StringIO()
    progress = ConsoleProgress(out, heartbeat_s=3600)
    limited = dataclasses.replace(_trial("s02-crop"), time_limit_s=960.0)
    progress.batch_started([limited, _trial("s02-depth")], 2)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("GF (limit 16m00s)") and lines[1].endswith(" GF")


def test_the_live_table_shows_state_epoch_loss_and_top1():
    out = io.StringIO()
    progress = LiveProgress(out)
    try:
        progress.batch_started([_trial("s01-fast"), _trial("s01-depth")], 2)
        progress.trial_progress({"trial_id": "s01-fast", "phase": "training", "epoch": 2, "epochs": 5,
                                 "loss": 0.75, "top1": 0.4})
        from rich.console import Console

        render = io.StringIO()
        Console(file=render, width=120).print(progress._table())
    finally:
        progress.close()
    table = render.getvalue()
    assert "s01-fast" in table and "training" in table and "2/5" in table and "0.750" in table and "40.0" in table
    assert "s01-depth" in table and "queued" in table
    assert "[elapsed " in table  # the title is text, not rich markup (which would swallow the brackets)


def test_make_progress_picks_plain_lines_off_a_terminal_and_silence_when_quiet():
    assert type(make_progress(stream=io.StringIO())) is ConsoleProgress
    assert type(make_progress(quiet=True)).__name__ == "SilentProgress"


def test_a_failing_display_never_fails_a_trial():
    def broken(update):
        raise RuntimeError("display gone")

    with live.reporting(broken):
        live.report("t", epoch=1)  # swallowed
    live.report("t", epoch=1)  # no sink: a no-op


def test_a_running_trial_that_says_nothing_for_a_while_gets_still_lines():
    import time

    out = io.StringIO()
    progress = ConsoleProgress(out, heartbeat_s=0.1)
    try:
        progress.batch_started([_trial("s01-fast")], 1)
        progress.trial_progress({"trial_id": "s01-fast", "phase": "reading the data (decoding ...)"})
        time.sleep(0.35)  # a cache build: no report for longer than the heartbeat
    finally:
        progress.close()
    still = [line for line in out.getvalue().splitlines() if "still reading the data" in line]
    assert len(still) >= 2
    n = len(out.getvalue().splitlines())
    time.sleep(0.2)
    assert len(out.getvalue().splitlines()) == n  # closed: no more lines


def test_after_the_basis_the_finish_line_estimates_the_whole_search():
    class Exp:
        name, selection = "t", "paper"

        class search:
            max_steps = 2

    out = io.StringIO()
    progress = ConsoleProgress(out, heartbeat_s=0)
    progress.search_started(Exp, 6)
    basis = _trial("s00-basis")
    progress.batch_started([basis], 2)
    progress.trial_finished(basis, TrialResult("s00-basis", "ok", top1=0.1, seconds=10.0))
    line = out.getvalue().splitlines()[-1]
    # two later steps of six trials on two workers: 6*10*2/2 + 6*10*4/2 = 180 s
    assert "step ~" not in line and "search ~3m00s left" in line


def test_a_failed_trials_finish_line_is_one_line_though_its_error_has_several():
    out = io.StringIO()
    progress = ConsoleProgress(out, heartbeat_s=0)
    trial = _trial("s01-depth")
    progress.batch_started([trial], 1)
    error = ("RuntimeError: CUDA error: an illegal memory access was encountered\nCUDA kernel errors might "
             "be asynchronously reported at some other API call")
    result = TrialResult(trial.trial_id, "failed", error=error)
    assert result.error_line == "RuntimeError: CUDA error: an illegal memory access was encountered"
    progress.trial_finished(trial, result)
    (line,) = [x for x in out.getvalue().splitlines() if "s01-depth" in x and "finish" in x]
    assert "FAILED: RuntimeError: CUDA error: an illegal memory access was encountered" in line
    assert "asynchronously" not in out.getvalue()
