"""``x3d-expand stop``: a request file the writer reads between trials; what runs finishes, nothing new starts."""

import json
import threading
import time

import pytest

from expand.cli import main
from expand.errors import InputError
from expand.run import RunDir
from expand.run.stop import STOP_FILE, clear_stop, request_stop, stop_requested
from tests.search.helpers import oracle_experiment


def test_a_stop_is_asked_only_of_a_run_someone_writes(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(InputError, match="not a run folder"):
        request_stop(str(folder))
    writer = RunDir(str(folder)).acquire("search exp")
    try:
        (folder / "state.json").write_text("{}")
        assert stop_requested(str(folder)) is None
        assert request_stop(str(folder)).startswith("pid ")
        asked = stop_requested(str(folder))
        assert set(asked) == {"requested_at", "by"} and "@" in asked["by"]
        assert main(["stop", str(folder), "--cancel", "--json"]) == 0  # withdrawn before the writer read it
        assert stop_requested(str(folder)) is None
        assert main(["stop", str(folder), "--json"]) == 0 and stop_requested(str(folder)) is not None
    finally:
        writer.release()
    with pytest.raises(InputError, match=r"not running \(no process writes it\): nothing to stop"):
        request_stop(str(folder))
    assert main(["stop", str(tmp_path / "nothing"), "--cancel"]) == 2
    (folder / STOP_FILE).write_text("{half")  # a damaged request still asks to stop
    assert stop_requested(str(folder)) == {}
    assert clear_stop(str(folder)) and not clear_stop(str(folder))


def _search_in_thread(argv):
    codes = []
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    return thread, codes


def _wait_for_records(run, n, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run / "trials.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} trials recorded in {timeout}s")


def test_stop_lets_the_running_trial_finish_starts_no_other_and_resume_goes_on(tmp_path, capsys):
    count = tmp_path / "calls.txt"
    exp = oracle_experiment(tmp_path, options={"sleep": 0.4, "count_file": str(count)},
                            search={"max_steps": 1, "targets": []})
    run = tmp_path / "run"
    thread, codes = _search_in_thread(["search", exp, "--out", str(run), "--quiet"])
    _wait_for_records(run, 2)  # the basis and step 1's first candidate
    import expand

    assert expand.load_run(str(run)).stop().startswith("pid ")  # as `x3d-expand stop`, from Python
    assert main(["stop", str(run)]) == 0  # asked twice: one request
    assert "to stop: the trials running now finish and are recorded" in capsys.readouterr().out
    thread.join(60)
    assert codes == [1]
    err = capsys.readouterr().err
    assert "stopped as asked by " in err and f"'x3d-expand resume {run}' continues" in err
    records = RunDir(str(run)).read_trials().records
    assert 2 <= len(records) <= 3 < 7 and all(r.result.status == "ok" for r in records)  # the one running finished
    started = count.read_text().splitlines()
    assert len(started) == len(records)  # nothing started that was not recorded
    assert "stopped: as asked by " in (run / "progress.log").read_text().splitlines()[-1]
    assert not (run / STOP_FILE).exists()  # acted on
    assert main(["show", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "stopped"
    assert main(["stop", str(run)]) == 2  # nobody writes it now
    assert main(["resume", str(run), "--quiet"]) == 0  # the request was acted on: resume does not stop
    calls = count.read_text().splitlines()
    assert len(calls) == 7 and len(set(calls)) == 7  # each of the 7 trials ran once
    assert "earlier 'x3d-expand stop' request was cleared" not in (run / "progress.log").read_text()
