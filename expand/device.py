"""Which device a trial trains on, and what its errors say about that device.

Apart from the trainer because others ask the same questions: the benchmarks
(``model_throughput.py``, ``device_errors.py``) whether an exception is memory
(retry in place with a smaller batch, ``is_out_of_memory``), and the run's
start-up check (``expand.preflight.check_cluster``) why CUDA is missing. Whether the
device is broken for good (replace the process) is ``expand.errors.broken_device``:
the trial runner asks it, and it needs no torch.
"""

from __future__ import annotations

import os
import socket

import torch


def pick_device(name: str, gpus_per_trial: float = 0.0) -> torch.device:
    """``auto``: cuda:0 of the GPUs this process may see (Ray sets CUDA_VISIBLE_DEVICES), else the CPU.

    Not the CPU when the experiment gives each trial GPUs: a CPU build of torch on a GPU
    node, or a GPU its driver lost, would otherwise train a GPU-sized trial on the CPU,
    days instead of minutes, with nothing wrong on screen but the device's name.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if gpus_per_trial > 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise RuntimeError(f"resources.gpus_per_trial is {gpus_per_trial:g} but CUDA is not available in "
                               f"this trial's process ({no_cuda_reason()}"
                               f"{'; CUDA_VISIBLE_DEVICES=' + visible if visible is not None else ''}); "
                               "set gpus_per_trial: 0 to train on the CPU")
        return torch.device("cpu")
    problem = device_problem(name)
    if problem:
        raise RuntimeError(problem)
    return torch.device(name)


def device_problem(name: str) -> str:
    """Why ``trial.device: name`` cannot train in this process ('' when it can).

    Without it, ``device: cuda`` on a CPU build failed each trial with "AttributeError: module
    'torch._C' has no attribute '_cuda_resetPeakMemoryStats'", and ``cuda:3`` on a one-GPU node
    with "invalid device ordinal" after the data was loaded.
    """
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            return f"trial.device is {name} but CUDA is not available in this process ({no_cuda_reason()})"
        if index and int(index) >= torch.cuda.device_count():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            return (f"trial.device is {name} but this process sees {torch.cuda.device_count()} GPU(s)"
                    f"{' (CUDA_VISIBLE_DEVICES=' + visible + ')' if visible is not None else ''}; "
                    "device: auto takes the one Ray gave the trial")
    elif kind == "mps" and not torch.backends.mps.is_available():
        return f"trial.device is {name} but MPS is not available in this process"
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return f"trial.device is {name} but no XPU is available in this process"
    return ""


# Messages of memory errors that are not torch.cuda.OutOfMemoryError: cudaMalloc failing outside the
# caching allocator (cuDNN's or cuBLAS's workspace, NCCL), cuDNN's own allocation statuses, the
# NOT_SUPPORTED cuDNN reports when no algorithm fits in what is left (PyTorch Lightning's
# is_oom_error counts it too), and the CPU allocator refusing one huge block.
_OOM_MESSAGES = ("CUDNN_STATUS_NOT_ENOUGH_MEMORY", "CUDNN_STATUS_ALLOC_FAILED",
                 "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED", "DefaultCPUAllocator: can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether a trial's exception means memory ran out, so the retry policy for ``oom`` applies
    (a smaller batch with ``retries.oom_halve_batch``) instead of recording it ``failed``."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError) or not exc.args or not isinstance(exc.args[0], str):
        return False
    text = exc.args[0]
    return ("CUDA" in text and "out of memory" in text) or any(m in text for m in _OOM_MESSAGES)


def out_of_memory_line(exc: BaseException) -> str:
    """The line of a memory error that says how much was asked for, for the trial's record.

    Not always the first: ``torch.compile`` wraps an OOM in its autotuning as
    "backend='inductor' raised:" on a line of its own, the OOM on the next.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if "memory" in line.lower() or "ALLOC_FAILED" in line),
                lines[0] if lines else "out of memory")


def describe_device(device: torch.device) -> str:
    """The device as the result records it and the progress line shows it, e.g. 'cuda:0 (GPU 3)'."""
    if device.type != "cuda":
        return str(device)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    name = torch.cuda.get_device_name(device)
    return f"{device} ({name}{', CUDA_VISIBLE_DEVICES=' + visible if visible else ''})"


def no_cuda_reason() -> str:
    """Why torch cannot use CUDA in this process, for an error line."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build"
    return f"torch {torch.__version__} finds no usable GPU: check the driver (nvidia-smi) on {socket.gethostname()}"
