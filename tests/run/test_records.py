"""The run's records, typed: a bad state names its file and field; trial lines parse or salvage."""

import json

import pytest

from expand.run.records import STATE_VERSION, RunFileError, RunState, parse_trial_line


@pytest.mark.parametrize("state, message", [
    ([], "state.json: expected a JSON object, got list"),
    ({"version": STATE_VERSION + 1}, f"state.json: state version {STATE_VERSION + 1}, this x3d-expand reads"),
    ({"kind": "nonsense"}, "state.json: kind: 'nonsense' is not a run kind"),
    ({"status": "done"}, "state.json: status: 'done' is not one of starting, running, finished, failed"),
    ({"path": [{"step": 0}]}, "state.json: path: not a list of path models (missing 'axis')"),
    ({"steps": [{"step": 1}]}, "state.json: steps: not a list of step records (missing 'parent_id')"),
    ({"pending": "t1"}, "state.json: pending: expected a list of trial ids"),
    ({"overrides": [1]}, "state.json: overrides: expected an object"),
])
def test_a_bad_state_is_a_run_file_error_naming_the_field(state, message):
    with pytest.raises(RunFileError) as info:
        RunState.from_dict(state, "state.json")
    assert str(info.value).startswith(message)


def test_a_baseline_state_keeps_its_own_fields_through_a_round_trip():
    d = {"kind": "random", "method": "random", "name": "b", "status": "finished", "budget": 8, "best": "t3"}
    state = RunState.from_dict(d, "state.json")
    assert state.kind == "random" and state.extra == {"method": "random", "budget": 8, "best": "t3"}
    again = state.to_dict()
    assert {k: again[k] for k in d} == d and "path" not in again  # only an expansion has a path


def test_state_round_trips_through_its_types(oracle_run):
    from expand.tables import clean_nans

    d = json.loads((oracle_run / "state.json").read_text())
    state = RunState.from_dict(d, "state.json")
    assert state.kind == "expansion" and len(state.path) == 3 and state.steps[0].candidates
    again = clean_nans(state.to_dict())  # as write_state writes it: NaN (unknown) is null in the file
    for key in ("path", "steps", "kind", "status", "pending", "experiment_source"):
        assert again[key] == d[key], key


def test_a_trial_line_parses_and_a_record_glued_onto_a_fragment_is_salvaged(oracle_run):
    line = (oracle_run / "trials.jsonl").read_text().splitlines()[-1]
    record = parse_trial_line(line)
    assert record is not None and record.trial.trial_id == json.loads(line)["trial_id"]
    salvaged = parse_trial_line('{"trial_id": "s01-wi' + line)  # a torn fragment, then a whole record
    assert salvaged is not None and salvaged.to_dict() == record.to_dict()
    assert parse_trial_line('{"trial_id": "s01-wi') is None
