"""A run's live status: the lock says whether anyone writes it, progress.log what it last did or how it ended."""

from expand.run import RunDir
from expand.run.status import LOG_FILE, live_status


def _log(folder, *lines):
    (folder / LOG_FILE).write_text("".join(f"2026-12-07 04:02:{20 + i:02d} {line}\n" for i, line in enumerate(lines)))


def test_a_run_being_written_shows_its_writer_and_its_last_logged_line(tmp_path):
    folder = tmp_path / "run"
    writer = RunDir(str(folder)).acquire("search exp")
    try:
        status, why, who = live_status(str(folder), {"status": "running"})
        assert status == "running" and why == f"in progress: {who}"  # no log yet: the writer alone
        _log(folder, "== x3d-expand search exp.yaml (pid 1 on vm)",
             "  epoch  s01-fast               3/10 loss 1.234  [1m02s, ~2m30s left]")
        status, why, _ = live_status(str(folder), {"status": "running"})
        assert why == (f"in progress: {who}; last logged 04:02:21: epoch s01-fast 3/10 loss 1.234 "
                       "[1m02s, ~2m30s left]")
    finally:
        writer.release()


def test_a_run_nobody_writes_says_how_its_log_ended(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for lines, said in ((["stopped: SIGTERM"], "not running: stopped: SIGTERM at 2026-12-07 04:02:20 (progress.log)"),
                        (["  start  s01-fast"], "its log ends at 2026-12-07 04:02:20 without a last word: killed"),
                        ([], "not running: interrupted, killed, out of disk")):
        if lines:
            _log(folder, *lines)
        else:
            (folder / LOG_FILE).unlink()
        status, why, who = live_status(str(folder), {"status": "running"})
        assert status == "stopped" and who is None and said in why and why.endswith(f"resume {folder}' continues it")
    assert live_status(str(folder), {"status": "finished", "stop_reason": "reached max_steps (2)"}) == \
        ("finished", "reached max_steps (2)", None)


def test_running_trials_are_those_that_spoke_since_their_start_in_the_writers_session(tmp_path):
    """A batch starts together; the cluster trains as many as fit, the others wait: `show` tells them apart
    from the log the real progress display writes (expand/search/progress_log.py)."""
    import dataclasses

    from expand.run.status import running_trials
    from expand.search.progress_log import RunLog
    from expand.search.trial import TrialResult, TrialSpec
    from expand.spec import ArchSpec

    folder = tmp_path / "run"
    folder.mkdir()
    assert running_trials(str(folder)) == set()  # no log yet
    trials = [TrialSpec(tid, 1, tid[4:], ArchSpec(2, 2, 32), 0, 1.0, 10) for tid in ("s01-fast", "s01-depth", "s01-width")]
    log = RunLog(str(folder / LOG_FILE))
    log.header("x3d-expand search exp.yaml")
    log.batch_started(trials, 2)
    log.trial_progress({"trial_id": "s01-fast", "phase": "opening the data"})
    log.trial_progress({"trial_id": "s01-depth", "epoch": 1, "epochs": 3, "loss": 2.0})
    assert running_trials(str(folder)) == {"s01-fast", "s01-depth"}  # width waits for a worker
    log.trial_finished(trials[1], TrialResult("s01-depth", "ok", top1=0.5, seconds=2.0))
    log.trial_progress({"trial_id": "s01-width", "phase": "opening the data"})
    assert running_trials(str(folder)) == {"s01-fast", "s01-width"}
    log.batch_started([dataclasses.replace(trials[0], attempt=2)], 2)  # its worker died: queued again
    assert running_trials(str(folder)) == {"s01-width"}
    log.close()
    again = RunLog(str(folder / LOG_FILE))
    again.header("x3d-expand resume run")  # another session: what the killed one ran runs no more
    assert running_trials(str(folder)) == set()
    again.close()
