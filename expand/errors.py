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


def disk_error_in(exc: BaseException) -> "OSError | None":
    """The disk error (see :func:`disk_problem`) that caused ``exc``, following ``raise ... from`` and context.

    Libraries wrap it: Ray Tune stopping because its experiment state could not be
    saved raises its own error from the OSError.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if disk_problem(exc):
            return exc  # type: ignore[return-value]
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


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
