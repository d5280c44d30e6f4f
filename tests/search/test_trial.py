"""call_safely: a trial's exception is a result; a dead data loader worker's says why and what to do."""

import os
import signal

import pytest

from expand.search.trial import TrialResult, TrialSpec, call_safely
from expand.spec import ArchSpec

_TRIAL = TrialSpec("t", 1, "depth", ArchSpec(1, 8, 64), 0, 0.002, 1)


class _DiesOnFirstItem:
    """A dataset whose worker process gets ``sig`` as it loads the first item (as the OOM killer
    sends SIGKILL, a full /dev/shm a SIGBUS, a crashing decoder a SIGSEGV)."""

    def __init__(self, sig):
        self.sig = sig

    def __len__(self):
        return 4

    def __getitem__(self, i):
        os.kill(os.getpid(), self.sig)


def _loads_with_a_worker(sig, context=None):
    def trial_function(trial):
        import torch.utils.data

        for _ in torch.utils.data.DataLoader(_DiesOnFirstItem(sig), batch_size=2, num_workers=1,
                                             multiprocessing_context=context):
            pass
        return TrialResult(trial.trial_id, "ok", top1=0.5)

    return trial_function


@pytest.mark.parametrize("sig, says", [
    (signal.SIGKILL, "killed (SIGKILL), most often by the host's out-of-memory killer: lower trial.workers"),
    (signal.SIGBUS, "killed by a bus error: /dev/shm is full or too small"),
    (signal.SIGSEGV, "crashed (segmentation fault), often a decoder on a damaged video: run 'x3d-expand data check"),
])
def test_a_data_loader_worker_that_dies_is_a_failed_trial_whose_first_line_says_why(sig, says):
    result = call_safely(_loads_with_a_worker(sig), _TRIAL)
    assert result.status == "failed"
    line = result.error_line
    assert line.startswith("RuntimeError: DataLoader worker (pid") and f"(a data loader worker {says}" in line


def test_an_error_in_a_loader_workers_code_gets_no_such_hint():
    class Raises:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise ValueError("a bad clip")

    def trial_function(trial):
        import torch.utils.data

        list(torch.utils.data.DataLoader(Raises(), num_workers=1))

    result = call_safely(trial_function, _TRIAL)
    assert result.status == "failed" and "ValueError: Caught ValueError in DataLoader worker" in result.error
    assert "a data loader worker" not in result.error


def test_off_the_main_thread_where_torch_loses_the_signal_the_line_still_names_the_usual_causes():
    # A Ray worker runs trials in a thread: torch sets no SIGCHLD handler there and finds the dead
    # worker by polling (every 5 s), so its error says only "exited unexpectedly". (A loader
    # timeout would poll sooner, but a slow fork on a loaded machine would then read as a timeout.)
    # The worker comes from the forkserver (torch preloaded there), not forked from this thread: a
    # fork from a thread of this process (Ray's session fixture runs threads beside it) once hung
    # in the child before it ran, alive, and the loader polled it for ever. Not this process's child,
    # the dead worker is found by polling, as off the main thread.
    import multiprocessing
    import threading

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torch.utils.data", __name__])
    results = []
    thread = threading.Thread(target=lambda: results.append(call_safely(
        _loads_with_a_worker(signal.SIGKILL, context), _TRIAL)), daemon=True)
    thread.start()
    thread.join(60)
    (result,) = results
    assert result.error_line.startswith("RuntimeError: DataLoader worker (pid(s)")
    assert "exited unexpectedly (a data loader worker died, most often killed by the host's out-of-memory " \
           "killer (dmesg names it) or on a small /dev/shm" in result.error_line


def _leaves(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            yield from _leaves(v, key)
        else:
            yield key


def _changed(d, key):
    import copy

    d = copy.deepcopy(d)
    *path, last = key.split(".")
    node = d
    for p in path:
        node = node[p]
    node[last] = ["changed", node[last]]  # any other value
    return d


def test_reruns_trials_names_exactly_the_keys_the_fingerprint_reads():
    """`resume --force` says whether a changed key reruns finished trials; that must follow
    TrialSpec.fingerprint, key by key, or it would promise what resume does not do."""
    import dataclasses
    import os

    from expand.config import load_experiment
    from expand.search.trial import reruns_trials

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    exp = load_experiment(os.path.join(root, "experiments", "synthetic_tiny.yaml"), check_paths=False).to_dict()
    exp["trial"]["options"] = {"x": 1}
    base = dataclasses.replace(_TRIAL, experiment=exp).fingerprint()
    keys = [k for k in _leaves(exp) if not k.startswith("search_space.") and k != "search.seed"]
    assert {"data.root", "retries.failed", "schedule.epochs", "trial.options.x", "trial.device"} <= set(keys)
    for key in keys:
        moved = dataclasses.replace(_TRIAL, experiment=_changed(exp, key)).fingerprint() != base
        assert moved == reruns_trials(key), key
    # the space and the seed act through the trial's spec and seed, which the fingerprint reads
    assert reruns_trials("search_space.basis.crop") and reruns_trials("search.seed")
    assert dataclasses.replace(_TRIAL, seed=1).fingerprint() != _TRIAL.fingerprint()


def test_a_result_says_which_machine_ran_it_and_under_which_torch():
    import socket

    import torch

    ok = call_safely(lambda t: TrialResult(t.trial_id, "ok", top1=0.5), _TRIAL)
    failed = call_safely(lambda t: 1 / 0, _TRIAL)
    for result in (ok, failed):
        assert result.extra["host"] == socket.gethostname() and result.extra["torch"] == torch.__version__
    mine = call_safely(lambda t: TrialResult(t.trial_id, "ok", extra={"host": "node-7"}), _TRIAL)
    assert mine.extra["host"] == "node-7"  # a trial function that knows better keeps its word
