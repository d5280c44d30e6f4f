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
