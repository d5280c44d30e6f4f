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


def _loads_with_a_worker(sig):
    def trial_function(trial):
        import torch.utils.data

        for _ in torch.utils.data.DataLoader(_DiesOnFirstItem(sig), batch_size=2, num_workers=1):
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
    import threading

    results = []
    thread = threading.Thread(target=lambda: results.append(call_safely(_loads_with_a_worker(signal.SIGKILL),
                                                                        _TRIAL)))
    thread.start()
    thread.join(60)
    (result,) = results
    assert result.error_line.startswith("RuntimeError: DataLoader worker (pid(s)")
    assert "exited unexpectedly (a data loader worker died, most often killed by the host's out-of-memory " \
           "killer (dmesg names it) or on a small /dev/shm" in result.error_line
