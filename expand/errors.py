"""Error types that map to the CLI's exit codes.

Anything the user can fix by changing their input (a YAML field, a path, an
argument) is an :class:`InputError`: the CLI prints its message as one line on
stderr and exits with 2. Everything else is a bug or an environment problem and
exits with 1.
"""


class InputError(ValueError):
    """Bad user input: a field, file or argument that the user must change."""


class SpecError(InputError):
    """An ArchSpec factor or constant out of range."""


class ConfigError(InputError):
    """A bad experiment or search-space file."""


class DataError(InputError):
    """A dataset that cannot be used (missing path, bad manifest, no readable video)."""


def disk_problem(exc: BaseException) -> str:
    """What is wrong with a disk a write failed on ('' for any other error).

    No space, a quota, a file system remounted read-only after disk errors, an I/O error: no
    retry and no other model fixes these; a person frees space or fixes the disk, then resumes.
    """
    import errno

    if not isinstance(exc, OSError):
        return ""
    return {errno.ENOSPC: "no space left", getattr(errno, "EDQUOT", 122): "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EIO: "I/O error"}.get(exc.errno or 0, "")


def _causes(exc: "BaseException | None") -> "list[BaseException]":
    """``exc`` and what it was raised from or while handling, nearest first (a cycle ends it)."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def disk_error_in(exc: BaseException) -> "OSError | None":
    """The disk error (see :func:`disk_problem`) that caused ``exc``, following ``raise ... from`` and context.

    Libraries wrap it: Ray Tune stopping because its experiment state could not be
    saved raises its own error from the OSError.
    """
    return next((e for e in _causes(exc) if disk_problem(e)), None)  # type: ignore[return-value]


# CUDA errors after which the process's CUDA context cannot be used again: every later CUDA call
# in it fails the same way (cudaGetErrorString's texts, as torch's "CUDA error: ..." quotes them),
# and cuDNN's and cuBLAS's reports of a kernel that failed so. Xid faults, ECC errors and kernel
# bugs (a label out of range in cross-entropy is a device-side assert) all end up here.
_BROKEN_CUDA = ("an illegal memory access was encountered", "unspecified launch failure",
                "device-side assert triggered", "misaligned address", "an illegal instruction was encountered",
                "uncorrectable ECC error encountered", "the launch timed out and was terminated",
                "hardware stack error", "invalid program counter",
                "operation not supported on global/shared address space")
_BROKEN_LIBRARY = ("CUDNN_STATUS_EXECUTION_FAILED", "CUBLAS_STATUS_EXECUTION_FAILED")


def broken_device(exc: BaseException) -> str:
    """The CUDA error, one line, if ``exc`` left this process's GPU unusable ('' for any other error).

    A worker that took the next trial in such a process would fail it at once, and
    the one after, until the step had only the axes other workers ran: the search
    replaces the process instead (see :class:`DeviceBroken`).
    """
    for e in _causes(exc):
        text = str(e)
        if any(f"CUDA error: {m}" in text for m in _BROKEN_CUDA) or any(m in text for m in _BROKEN_LIBRARY):
            return (text.strip().splitlines() or [text])[0][:200]
    return ""


# What killed a DataLoader worker process, as torch's SIGCHLD handler names the signal, and what a
# person does about it. The trial's own error says only "DataLoader worker (pid(s) N) exited
# unexpectedly" (the signal is in the exception it was raised while handling), or a
# ConnectionResetError from the dead worker's half-sent batch.
_SHM = ("/dev/shm is full or too small for the loader's shared memory (a container's default is 64 MB): "
        "run it with --shm-size=8g or --ipc=host, or set trial.workers: 0")
_LOADER_DEATHS = (
    ("killed by signal: Killed", "killed (SIGKILL), most often by the host's out-of-memory killer: lower "
                                 "trial.workers or run fewer trials per node (resources.cpus_per_trial)"),
    ("killed by signal: Bus error", f"killed by a bus error: {_SHM}"),
    ("killed by signal: Segmentation fault", "crashed (segmentation fault), often a decoder on a damaged video: "
                                             "run 'x3d-expand data check EXPERIMENT'"),
    ("unable to write to file </torch_", f"could not hand over a batch: {_SHM}"),
    ("unable to allocate shared memory", f"could not hand over a batch: {_SHM}"),
    # off the main thread (a Ray worker runs trials in one) torch sets no SIGCHLD handler, and only
    # polls: the signal is lost, and these two are the usual causes
    ("exited unexpectedly", "died, most often killed by the host's out-of-memory killer (dmesg names it) "
                            "or on a small /dev/shm in a container: lower trial.workers, or give the "
                            "container --shm-size=8g"),
)

_LOADER_TEXTS = ("DataLoader worker", "</torch_", "shared memory")  # torch's, not a model's, errors


def loader_death(exc: BaseException) -> str:
    """Why a data loader worker died under this trial, and the fix, in words ('' for any other error).

    Without it a trial records "exited unexpectedly", and its retry dies the same way: these
    are the node's limits (memory, /dev/shm) or a damaged file, not the model's.
    """
    texts = [t for t in map(str, _causes(exc)) if any(m in t for m in _LOADER_TEXTS)]
    for marker, why in _LOADER_DEATHS:
        if any(marker in t for t in texts):
            return f"a data loader worker {why}"
    return ""


class StopRequested(RuntimeError):
    """``x3d-expand stop``: the search stopped after the trials that were running (exit 1: not finished)."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why or message  # short, for the log's last word and show's status


class DeviceBroken(RuntimeError):
    """A trial left its process's GPU unusable (:func:`broken_device`): the process must end.

    Raised after the trial is recorded ``failed``: a Ray worker raises it to be
    replaced by a fresh one (the retry runs there); the serial runner stops the
    search, and ``resume`` goes on in a new process.
    """

    def __init__(self, message: str, error: str = "", trial_id: str = "") -> None:
        super().__init__(message)
        self.error, self.trial_id = error, trial_id


def disk_fix(problem: str) -> str:
    """What a person does about a :func:`disk_problem` before resuming (a read-only disk wants no free space)."""
    return {"no space left": "free space", "disk quota exceeded": "free space or raise the quota",
            "read-only file system": "make it writable"}.get(problem, "check the disk")


class DiskUnwritable(OSError):
    """Trials could not write their results: the search stops (finished trials kept) until the disk is fixed.

    Recording such a trial ``failed`` would let the step choose among the axes that
    happened to finish first, a silent change of the path; stopping keeps it resumable.
    """

    def __init__(self, message: str, errno_: int) -> None:
        super().__init__(errno_, message)


class NodeLost(RuntimeError):
    """The Ray node holding the search's trial queue died (on one machine, the whole cluster).

    Its running trials did not fail, their node did: they are not recorded, and the search
    stops resumably; ``resume`` starts a new cluster and reruns them.
    """
