"""X3D_EXPAND_NOTIFY: the user's command, run when a step is picked and when a run finishes or stops."""

import pytest

from expand.cli import main
from expand.search.select import RULES, SelectionRule
from tests.search.helpers import oracle_experiment

HOOK = 'printf "%s|%s|%s\\n" "$X3D_EVENT" "$X3D_RUN" "$X3D_MESSAGE" >> {file}'


def _events(path):
    return [line.split("|", 2) for line in path.read_text().splitlines()] if path.exists() else []


def test_each_new_step_and_the_end_are_sent_and_a_resume_does_not_resend_old_steps(tmp_path, counter, monkeypatch,
                                                                                     oracle_run):
    # oracle_run (the session's two-step oracle search, which many tests read) counted these FLOPs
    sent = tmp_path / "sent.txt"
    # a step's hook slower than the end's (as a webhook can be): the messages still come in order
    slow_step = 'if [ "$X3D_EVENT" = step ]; then sleep 0.3; fi; '
    monkeypatch.setenv("X3D_EXPAND_NOTIFY", slow_step + HOOK.format(file=sent))
    exp = oracle_experiment(tmp_path, search={"max_steps": 1})
    run = tmp_path / "run"
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 0
    events = _events(sent)
    assert [e[0] for e in events] == ["step", "finished"]
    assert {e[1] for e in events} == {str(run)}
    assert events[0][2].startswith("x3d-expand run: step 1 -> ") and " GF top1 " in events[0][2]
    assert events[1][2].startswith("x3d-expand run: search finished after 1 steps (reached max_steps (1))")

    sent.unlink()
    assert main(["resume", str(run), "--max-steps", "2", "--quiet"]) == 0
    events = _events(sent)  # step 1 was replayed from trials.jsonl: only step 2 is news
    assert [e[0] for e in events] == ["step", "finished"] and "step 2 -> " in events[0][2]


def test_a_run_that_stops_sends_why(tmp_path, counter, monkeypatch):
    def broken(candidates, parent_top1, parent_gflops):
        raise RuntimeError("my rule broke")

    sent = tmp_path / "sent.txt"
    monkeypatch.setenv("X3D_EXPAND_NOTIFY", HOOK.format(file=sent))
    RULES.register("broken", SelectionRule("broken", broken, "raises", "a test"))
    try:
        exp = oracle_experiment(tmp_path, search={"max_steps": 1, "selection": "broken"})
        assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) != 0
    finally:
        RULES.unregister("broken")
    events = _events(sent)
    assert [e[0] for e in events] == ["stopped"]
    assert events[0][2] == "x3d-expand run: stopped: RuntimeError: my rule broke"


@pytest.mark.parametrize("hook, problem", [
    ("echo 'no route to host' >&2; exit 3", "exited with 3: no route to host"),
    ("sleep 60 & echo $! >> {dir}/pids; wait", "did not finish in 0.5 s (stopped)"),
])
def test_a_failing_or_hanging_hook_is_said_once_and_the_run_goes_on(tmp_path, counter, monkeypatch, hook, problem):
    from expand.run import notify

    monkeypatch.setattr(notify, "TIMEOUT_S", 0.5)
    monkeypatch.setenv("X3D_EXPAND_NOTIFY", hook.format(dir=tmp_path))
    exp = oracle_experiment(tmp_path, search={"max_steps": 1})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0  # two events: two failures
    log = (tmp_path / "run" / "progress.log").read_text()
    warnings = [line for line in log.splitlines() if "warning: X3D_EXPAND_NOTIFY" in line]
    assert len(warnings) == 1 and problem in warnings[0] and "the run goes on" in warnings[0]
    assert "search finished after 1 steps" in log
    for pid in (tmp_path / "pids").read_text().split() if (tmp_path / "pids").exists() else []:
        try:  # a stopped hook took its children with it (a zombie not reaped yet is dead too)
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            state = "gone"
        assert state in ("gone", "Z", "X"), state
