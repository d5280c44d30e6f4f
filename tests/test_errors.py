"""Which errors are a disk that cannot take writes, however a library wraps them."""

import errno
import os

from expand.errors import broken_device, disk_error_in, disk_fix, disk_problem


def _oserror(code):
    return OSError(code, os.strerror(code), "/run/ray/experiment_state.json")


def test_a_disk_error_is_found_under_the_errors_a_library_raises_from_it():
    full = _oserror(errno.ENOSPC)
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("The Ray Tune run failed.") from exc
    except RuntimeError as wrapped:
        assert disk_problem(wrapped) == "" and disk_error_in(wrapped) is full
    try:
        try:
            raise _oserror(errno.EROFS)
        except OSError:
            raise ValueError("while handling it, another error")  # implicit context
    except ValueError as chained:
        assert disk_problem(disk_error_in(chained)) == "read-only file system"


def test_other_errors_are_not_disk_errors_even_with_a_cycle_in_their_chain():
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert disk_error_in(a) is None
    assert disk_error_in(RuntimeError("x")) is None
    assert disk_error_in(_oserror(errno.EACCES)) is None  # permissions are bad input, not a broken disk


def test_each_disk_problem_names_its_own_fix():
    assert disk_fix("no space left") == "free space"
    assert disk_fix("read-only file system") == "make it writable"
    assert disk_fix("disk quota exceeded") == "free space or raise the quota"
    assert disk_fix("I/O error") == "check the disk"


ILLEGAL = ("CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be asynchronously "
           "reported at some other API call, so the stacktrace below might be incorrect.")


def test_a_cuda_error_that_leaves_the_gpu_unusable_is_told_from_one_that_does_not():
    assert broken_device(RuntimeError(ILLEGAL)) == "CUDA error: an illegal memory access was encountered"
    assert broken_device(RuntimeError("CUDA error: device-side assert triggered"))
    assert broken_device(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"))
    # an out-of-memory is retried with a smaller batch in the same process; the rest are ordinary errors
    assert broken_device(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")) == ""
    assert broken_device(RuntimeError("CUDA error: out of memory")) == ""
    assert broken_device(ValueError("misaligned address in my own parser")) == ""
    assert broken_device(RuntimeError()) == "" and broken_device(OSError(5, "I/O error")) == ""


def test_a_broken_device_is_found_under_a_trial_functions_own_error():
    try:
        try:
            raise RuntimeError(ILLEGAL)
        except RuntimeError as exc:
            raise ValueError("evaluation failed") from exc
    except ValueError as wrapped:
        assert broken_device(wrapped).startswith("CUDA error: an illegal memory access")


def test_a_full_dev_shm_under_a_loader_worker_is_named_and_is_not_the_run_disk():
    from expand.errors import loader_death

    # torch re-raises a worker's exception in the trial with the worker's traceback in its text;
    # "No space left on device" there is /dev/shm, not the run folder: the search must not stop
    shm = RuntimeError("Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                       "call last):\n  ...\nRuntimeError: unable to write to file </torch_7_1234_0>: No space "
                       "left on device (28)")
    assert loader_death(shm).startswith("a data loader worker could not hand over a batch: /dev/shm is full")
    assert disk_error_in(shm) is None
    assert loader_death(ValueError("Caught ValueError in DataLoader worker process 0.")) == ""
