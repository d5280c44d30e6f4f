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
