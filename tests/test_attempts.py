"""``show --trials`` / ``Run.attempts``: every attempt as it finished, retries and failures included."""

import io
import json
import socket

import pandas as pd

import expand
from expand.cli import main
from tests.search.helpers import oracle_experiment


def test_every_attempt_is_listed_with_its_error_device_and_host(tmp_path, capsys):
    # depth's first attempt of each trial raises; retries.failed: 1 trains it again
    exp = oracle_experiment(tmp_path, options={"fail_axes": {"depth": 1}}, search={"max_steps": 1})
    out = str(tmp_path / "run")
    assert main(["search", exp, "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", out, "--trials", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["attempts"]
    assert data["run"] == out and len(rows) == 1 + 6 + 1  # basis, six candidates, depth's retry
    depth = [r for r in rows if r["axis"] == "depth"]
    assert [(r["attempt"], r["status"]) for r in depth] == [(1, "failed"), (2, "ok")]
    assert depth[0]["error"] and depth[0]["top1_frac"] is None and 0 < depth[1]["top1_frac"] < 1
    assert {r["host"] for r in rows} == {socket.gethostname()}
    assert {r["device"] for r in rows if r["status"] == "ok"} == {"oracle"}
    assert main(["show", out, "--trials"]) == 0
    table = capsys.readouterr().out
    failed_line = next(line for line in table.splitlines() if " failed " in line)
    assert "s01-depth" in failed_line and depth[0]["error"].split("\n")[0][:60] in failed_line
    assert "8 attempt(s) of 7 trial(s), 1 not ok" in table
    assert main(["show", out, "--trials", "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    attempts = expand.load_run(out).attempts  # the same rows from Python
    assert list(csv.columns) == list(attempts.columns) and len(attempts) == 8
    assert list(attempts["status"]) == [r["status"] for r in rows]
    assert main(["show", str(tmp_path / "nothing"), "--trials"]) == 2
    assert "not a run folder" in capsys.readouterr().err
