"""The one atomic writer: every file the project writes goes through here.

Why one: a reader (``show`` on a running search, a second process building
the frame cache, a teammate on a shared filesystem) must never see half a
file, and every file must get the same permissions. ``tempfile.mkstemp``
creates files 0600, so a renamed temp file used to be unreadable to the
group while files opened normally were 0644; here every file gets
``0666 & ~umask``, like ``open()`` gives.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Callable, Iterator


PROBE_PREFIX = ".x3d-write-probe-"  # make_folder's file, there for a moment


def make_folder(path: str, what: str) -> str:
    """``path`` made if missing, for files the command will write; exit 2 (one line) when it cannot
    be one — a file of that name, a read-only mount, no permission — before anything runs."""
    from expand.errors import InputError

    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{path}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:  # a parent that is a file, no permission, a read-only mount
        raise InputError(f"{path}: cannot create the {what}: {exc.strerror}") from None
    # a file written and removed, not os.access: root passes that on a read-only mount or in /proc,
    # and the command then died writing its first file ("internal error: FileNotFoundError")
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=PROBE_PREFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{path}: cannot write in the {what}: {exc.strerror}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_writer(path: str, binary: bool = False) -> Iterator[IO]:
    """Write to a temp file beside ``path``; on success fsync, chmod and rename it into place.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with naming(path):  # a write to the temp file names the file meant
            os.fchmod(fd, default_mode())
            with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


@contextlib.contextmanager
def naming(path: str) -> Iterator[None]:
    """An OSError raised inside that names no file (a write to a temp file or an fd, numpy's
    writes) is raised again naming ``path``: a full disk must say which file it stopped."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, path) from exc


def atomic_write(path: str, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8) in one rename."""
    with atomic_writer(path, binary=isinstance(data, bytes)) as fh:
        fh.write(data)


def append_line(path: str, line: str) -> None:
    """Append one newline-terminated line and fsync it (an append-only log)."""
    assert line.endswith("\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, default_mode())
    try:
        with naming(path):  # a torn line is cut off by the next writer (cut_torn_tail)
            data = line.encode("utf-8")
            written = 0
            while written < len(data):  # one write() in practice; a short write is finished here
                written += os.write(fd, data[written:])
            os.fsync(fd)
    finally:
        os.close(fd)


def cut_torn_tail(path: str, whole: Callable[[bytes], bool] = lambda tail: False) -> int:
    """Cut an unterminated last line off an append-only log, keeping it in ``PATH.torn``.

    A crash or a full disk can leave half a line; the next append would glue a whole one to
    it, and the log would no longer parse. A tail that ``whole`` accepts only lacked its
    newline, and gets one. Returns the bytes moved (0: nothing to cut). Only the run's one
    writer may call it.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return 0
    if not data or data.endswith(b"\n"):
        return 0
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    if whole(tail):
        append_line(path, "\n")
        return 0
    with open(path + ".torn", "ab") as fh:
        fh.write(tail + b"\n")
    with open(path, "r+b") as fh:
        fh.truncate(cut)
        os.fsync(fh.fileno())
    return len(tail)


def _fsync_dir(directory: str) -> None:
    """Make a rename durable (a power loss must not bring the old file back)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["atomic_write", "atomic_writer", "append_line", "cut_torn_tail", "default_mode", "naming"]
