"""The table's notes on its steps: close-call advice, and steps where no expansion paid off."""

import math

import pytest

from expand.step_notes import confidence_note, regressed_steps, step_notes


@pytest.mark.parametrize("seeds, advice, not_said", [
    ({1: 1, 2: 1}, "max_extra_trials above 0 trains step(s) 1, 2's contenders again", "spent"),
    ({1: 3, 2: 2}, "step(s) 1, 2 trained theirs again (the seeds column) and spent", "above 0"),
    ({1: 1, 2: 2}, "above 0 trains step(s) 1's contenders again with new seeds; step(s) 2 trained theirs again",
     None),
])
def test_the_close_call_advice_fits_whether_the_step_was_confirmed(seeds, advice, not_said):
    rows = [{"step": s, "seeds": n, "chosen": k == 0} for s, n in seeds.items() for k in range(2)]
    note = confidence_note(rows, [1, 2], 0.9)
    assert "below the 90% confidence level (1, 2)" in note and advice in note
    assert not_said is None or not_said not in note
    assert "*?" not in confidence_note(rows, [], 0.9)  # no close call: no advice


def _step(gains, chosen=0, statuses=None, step=1):
    statuses = statuses or ["ok"] * len(gains)
    return [{"step": step, "axis": f"axis{i}", "gain": g, "status": s, "chosen": i == chosen, "top1_se": 0.02}
            for i, (g, s) in enumerate(zip(gains, statuses))]


def test_a_step_whose_every_candidate_lost_to_its_parent_is_named_with_its_best():
    notes = regressed_steps(_step([-0.05, -0.027, -0.1]) + _step([0.01, -0.02], step=2))
    assert len(notes) == 1  # step 2 gained with one candidate
    assert notes[0].startswith("note: step 1: every candidate scored below its parent (the best, axis1, -2.7 pts;")
    assert "standard error 2.0 pts" in notes[0] and "calibrate" in notes[0]


@pytest.mark.parametrize("rows", [
    _step([0.0, -0.03]),  # a candidate that held even is not a loss
    _step([math.nan, math.nan], statuses=["failed", "failed"]),  # nothing trained: the other note says so
    _step([-0.03, -0.05], chosen=-1),  # a step still training: nothing decided yet
])
def test_no_regression_note_where_a_candidate_held_or_nothing_was_decided(rows):
    assert regressed_steps(rows) == []


def test_only_trained_candidates_count_toward_a_regression():
    # a failed candidate has no result (whatever its row's gain says): the step lost with what it trained
    notes = regressed_steps(_step([-0.03, 0.05], statuses=["ok", "failed"]))
    assert len(notes) == 1 and "every trained candidate scored below its parent (the best, axis0, -3.0 pts" in notes[0]


def test_step_notes_lists_the_untrained_candidates_before_the_losses():
    rows = _step([-0.03, math.nan], statuses=["ok", "oom"])
    notes = step_notes(rows)
    assert [n.split(":")[1].strip() for n in notes] == ["step 1 chose among 1 of its 2 candidates, without axis1 oom",
                                                        "step 1"]
