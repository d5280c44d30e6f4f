"""expand/device.py: the device a trial trains on, and which of its errors are memory."""

import pytest


@pytest.mark.parametrize("exc, oom", [
    (RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_MEMORY"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a "
                  "non-contiguous input."), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 96636764160 bytes."), True),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), False),
    (RuntimeError("Given groups=1, weight of size [24, 3, 1, 3, 3], expected input to have 3 channels"), False),
    (MemoryError(), False),  # Python's own: not the device's, and no smaller batch is known to help
    (RuntimeError(), False),
])
def test_memory_errors_outside_the_caching_allocator_are_oom_too(exc, oom):
    from expand.device import is_out_of_memory

    assert is_out_of_memory(exc) is oom


def test_torch_compile_wrapping_an_oom_is_oom_and_its_record_quotes_the_oom_not_the_wrapper():
    import torch
    from torch._dynamo.exc import BackendCompilerFailed

    from expand.device import is_out_of_memory, out_of_memory_line

    inner = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has 1.2 GiB free")
    wrapped = BackendCompilerFailed(lambda: None, inner, None)  # how inductor's autotuning raises it
    assert is_out_of_memory(wrapped)
    assert out_of_memory_line(wrapped) == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. " \
                                          "GPU 0 has 1.2 GiB free"
    assert out_of_memory_line(inner) == str(inner)
    assert out_of_memory_line(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.")) == \
        "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED."  # no line says memory: the first


def test_auto_device_is_cuda_0_of_the_visible_set_or_the_cpu_and_says_which(monkeypatch):
    import torch

    from expand.device import describe_device, pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu") and describe_device(torch.device("cpu")) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "NVIDIA H100")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert pick_device("auto") == torch.device("cuda:0")  # the first GPU Ray gave this worker
    assert describe_device(torch.device("cuda:0")) == "cuda:0 (NVIDIA H100, CUDA_VISIBLE_DEVICES=3)"


def test_a_trial_given_gpus_never_falls_back_to_the_cpu(monkeypatch):
    # A CPU build of torch on a GPU node (or a GPU its driver lost) would train a GPU-sized
    # trial on the CPU: days instead of minutes.
    import torch

    from expand.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(RuntimeError) as info:
        pick_device("auto", gpus_per_trial=0.5)
    message = str(info.value)
    assert message.startswith("resources.gpus_per_trial is 0.5 but CUDA is not available in this trial's process")
    assert "CUDA_VISIBLE_DEVICES=3" in message and message.endswith("set gpus_per_trial: 0 to train on the CPU")
    assert ("is a CPU build" in message) == (torch.version.cuda is None)
    assert pick_device("auto", gpus_per_trial=0) == torch.device("cpu")  # a CPU search stays one
