"""expand/console.py: named phases that are never silent for long, counted progress as plain lines."""

import io
import time

from expand.console import CountProgress, format_seconds, phase


def test_a_slow_phase_says_it_started_is_still_running_and_how_long_it_took():
    lines = []
    with phase("counting FLOPs", say=lines.append, heartbeat_s=0.1, quiet_s=0.05):
        time.sleep(0.45)
    assert lines[0] == "  ... counting FLOPs"
    still = [line for line in lines if line.startswith("  ... still counting FLOPs")]
    assert len(still) >= 2  # a heartbeat every 0.1 s: no gap longer than that
    assert lines[-1].startswith("  ... counting FLOPs: done in 0.")


def test_a_phase_with_no_heartbeat_says_it_started_and_ended_and_does_not_spin():
    # heartbeat 0 (a sink with no ticker) was a wait(0) loop: a core spun saying "still ..." for
    # as long as the phase ran (a first notifier sink made a 12 s FLOP count take 214 s)
    lines = []
    with phase("counting FLOPs", say=lines.append, heartbeat_s=0, quiet_s=0.01):
        time.sleep(0.2)
    assert lines[0] == "  ... counting FLOPs" and len(lines) == 2 and "done in" in lines[1]


def test_a_quick_phase_prints_nothing():
    lines = []
    with phase("cached", say=lines.append, heartbeat_s=0.1, quiet_s=0.5):
        pass
    assert lines == []


def test_a_phase_that_raises_still_ends_its_heartbeat():
    lines = []
    try:
        with phase("failing", say=lines.append, heartbeat_s=0.05, quiet_s=0.01):
            time.sleep(0.1)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    n = len(lines)
    time.sleep(0.15)
    assert len(lines) == n and lines[-1].startswith("  ... failing: done in")


def test_counted_progress_is_a_few_plain_lines_off_a_terminal():
    out = io.StringIO()
    progress = CountProgress(100, "checking videos", stream=out)
    for i in range(1, 101):
        progress(i)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 10 <= len(lines) <= 12
    assert lines[-1].startswith("  checking videos 100/100")


def test_format_seconds():
    assert (format_seconds(5), format_seconds(65), format_seconds(3700)) == ("5s", "1m05s", "1h01m")


def test_counted_progress_under_the_searchs_live_table_is_plain_lines_it_passes_on(monkeypatch):
    """Rich's proxy of a terminal passes whole lines above the live table: a tqdm bar's carriage
    returns would never show (found on a terminal: `decoding into the frame cache` was invisible)."""
    from rich.console import Console
    from rich.file_proxy import FileProxy

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("X3D_EXPAND_PLAIN", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    console = Console(file=terminal, force_terminal=True, width=100)
    proxy = FileProxy(console, terminal)
    progress = CountProgress(20, "decoding into the frame cache", stream=proxy)
    assert progress._bar is None
    for i in range(1, 21):
        progress(i)
    proxy.flush()
    assert "decoding into the frame cache 20/20" in terminal.getvalue()
    assert CountProgress(20, "on a bare terminal", stream=Terminal())._bar is not None  # there: a bar
