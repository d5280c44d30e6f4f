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


class DiskUnwritable(OSError):
    """Trials could not write their results: the search stops (finished trials kept) until the disk is fixed.

    Recording such a trial ``failed`` would let the step choose among the axes that
    happened to finish first, a silent change of the path; stopping keeps it resumable.
    """

    def __init__(self, message: str, errno_: int) -> None:
        super().__init__(errno_, message)
