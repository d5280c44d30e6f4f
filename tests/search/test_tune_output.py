def test_tunes_trial_printer_is_replaced_by_a_silent_one(capsys):
    """Tune adds its own printer unless given one; ours prints nothing (the search prints its own lines)."""
    from ray.tune.progress_reporter import TrialProgressCallback
    from ray.tune.utils.callback import _create_default_callbacks

    from expand.search.tune_output import silent_progress_callback

    class Worker:  # what the printer reads of a Tune trial that ended without a new result
        last_result: dict = {}

        def __str__(self) -> str:
            return "_ray_worker_0"

    TrialProgressCallback().on_trial_complete(0, [], Worker())
    assert "_ray_worker_0 completed" in capsys.readouterr().out  # Tune's own does print the worker's name
    silent = silent_progress_callback()
    silent.on_trial_complete(0, [], Worker())
    assert capsys.readouterr().out == ""
    callbacks = _create_default_callbacks([silent], air_verbosity=None)
    assert [c for c in callbacks if isinstance(c, TrialProgressCallback)] == [silent]  # Tune adds none of its own
