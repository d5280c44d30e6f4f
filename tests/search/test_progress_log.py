"""RUN/progress.log: the lines a command shows, with times, kept whatever the screen shows; a disk
that refuses them costs the log, not the search."""

import io
import re

import pytest

from expand.search.progress import ConsoleProgress
from expand.search.progress_log import RunLog, TeeProgress

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def test_every_line_has_a_time_and_the_log_says_who_wrote_and_how_it_ended(tmp_path):
    path = tmp_path / "progress.log"
    log = RunLog(str(path))
    log.header("x3d-expand search exp.yaml")
    log.note("frame cache: 3 video(s) decoded")
    with log.phase("counting FLOPs"):  # a phase under a second says nothing, on screen or here
        pass
    log.ended()
    log.close()
    again = RunLog(str(path))  # the next command appends
    again.header("x3d-expand resume run")
    again.stopped(KeyboardInterrupt())
    again.stopped(OSError(28, "No space left on device"))

    class Terminated(BaseException):
        signum = 15

    again.stopped(Terminated(15))
    again.close()
    lines = path.read_text().splitlines()
    assert all(re.match(STAMP, line) for line in lines), lines
    body = [line[20:] for line in lines]
    assert body[0].startswith("== x3d-expand search exp.yaml (pid ")
    assert body[1] == "  note   frame cache: 3 video(s) decoded"
    assert re.fullmatch(r"== done in \d+s", body[2])
    assert body[3].startswith("== x3d-expand resume run (pid ")
    assert body[4:] == ["stopped: KeyboardInterrupt", "stopped: OSError: [Errno 28] No space left on device",
                        "stopped: SIGTERM"]


def test_a_disk_that_refuses_the_log_warns_once_and_the_search_goes_on(capsys):
    log = RunLog("/dev/full")  # every write: ENOSPC
    if log.broken is None:
        log.header("x3d-expand search exp.yaml")  # the first refused line
    for _ in range(3):
        log.note("a line no disk takes")
    log.close()
    assert isinstance(log.broken, OSError)
    err = capsys.readouterr().err
    assert err.count("warning: cannot write /dev/full") == 1 and "the search goes on without its log" in err


def test_a_folder_the_log_cannot_be_opened_in_warns_and_goes_on(tmp_path, capsys):
    log = RunLog(str(tmp_path / "gone" / "progress.log"))
    log.note("nothing to write it to")
    log.close()
    assert "warning: cannot write" in capsys.readouterr().err


def test_the_tee_gives_every_event_and_phase_to_each_sink():
    a, b = io.StringIO(), io.StringIO()
    tee = TeeProgress(ConsoleProgress(a, heartbeat_s=0), ConsoleProgress(b, heartbeat_s=0))
    tee.note("hello")
    with tee.phase("a phase"):
        pass
    tee.search_finished([object(), object()], "reached max_steps (1)")
    tee.close()
    assert a.getvalue() == b.getvalue()
    assert "  note   hello" in a.getvalue() and "search finished after 1 steps (reached max_steps (1))" in a.getvalue()


@pytest.mark.parametrize("quiet", [True, False])
def test_a_search_keeps_its_log_even_when_quiet(tmp_path, capsys, quiet, _isolated_cache):
    import expand
    from tests.search.helpers import oracle_experiment

    run = expand.search(oracle_experiment(tmp_path, search={"max_steps": 1, "targets": []}),
                        out=str(tmp_path / "run"), quiet=quiet)
    log = (tmp_path / "run" / "progress.log").read_text()
    assert "== Python API: search of 'oracle-test' (pid " in log
    assert log.count("  finish ") == len(run.trials) == 7
    assert "search finished after 1 steps" in log and log.splitlines()[-1][20:].startswith("== done in ")
    shown = capsys.readouterr().out
    assert ("  finish " in shown) is (not quiet)  # the screen follows --quiet; the log does not
