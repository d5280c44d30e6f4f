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


def test_an_explicit_device_this_process_cannot_use_is_a_clear_error_not_a_torch_internal(monkeypatch):
    """device: cuda on a CPU build failed each trial with "AttributeError: module 'torch._C' has no
    attribute '_cuda_resetPeakMemoryStats'"; cuda:3 on a one-GPU worker with "invalid device ordinal"."""
    import torch

    from expand.device import device_problem, pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"^trial.device is cuda but CUDA is not available in this process \("):
        pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu") and device_problem("cpu") == ""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert device_problem("cuda:0") == "" and device_problem("cuda") == ""
    assert device_problem("cuda:3") == ("trial.device is cuda:3 but this process sees 1 GPU(s) "
                                        "(CUDA_VISIBLE_DEVICES=5); device: auto takes the one Ray gave the trial")


@pytest.mark.parametrize("command", ["train", "search", "search-ray"])
def test_device_cuda_where_trials_run_in_this_process_and_torch_has_no_cuda_is_exit_2(tmp_path, capsys, monkeypatch,
                                                                                     command):
    """search-ray: the search's own local cluster runs its trials on this machine too (with
    --address they run elsewhere, and each trial checks where it runs)."""
    import torch

    from expand.cli import main
    from tests.search.helpers import oracle_experiment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    exp = oracle_experiment(tmp_path, trial={"device": "cuda"})
    extra = ["--preset", "X2D"] if command == "train" else ["--out", str(tmp_path / "run")]
    if command == "search-ray":
        command, extra = "search", [*extra, "--runner", "ray"]
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main([command, exp, *extra]) == 2
    err = capsys.readouterr().err
    assert "trial.device is cuda but CUDA is not available in this process" in err and "use device: auto or cpu" in err
    assert not (tmp_path / "run").exists()
