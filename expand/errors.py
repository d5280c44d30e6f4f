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


def is_disk_full(exc: BaseException) -> bool:
    """No space (or quota) left: nothing a retry or a different model fixes; the user frees space."""
    import errno

    return isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, getattr(errno, "EDQUOT", 122)}


class DiskFull(OSError):
    """Trials could not write their results: the search stops (finished trials kept) until space is freed.

    Recording such a trial ``failed`` would let the step choose among the axes that
    happened to finish first, a silent change of the path; stopping keeps it resumable.
    """

    def __init__(self, message: str) -> None:
        import errno

        super().__init__(errno.ENOSPC, message)
