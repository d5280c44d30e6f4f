"""The run's one-writer lock: an exclusive ``flock`` on RUN/.lock naming its holder.

The kernel drops the lock when the holder dies, even by kill -9, so a crashed
search never leaves a run locked; a second writer is refused with the holder's
pid, host and command. Readers probe it (``RunLock.writer``) without blocking.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Optional

from expand.errors import InputError


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    command: str
    since: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since)) if self.since else "?"
        return f"pid {self.pid} on {self.host} ({self.command or '?'}, since {started})"


_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _flock_patiently(fd: int, how: int, patience_s: float = 1.0) -> None:
    """``flock`` without blocking, retried for ``patience_s``: a reader's probe (``writer``) holds
    the lock for microseconds, and must not make a starting search fail as 'being written'."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in _BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class RunLock:
    """An exclusive ``flock`` on RUN/.lock, with the holder's pid, host and command in the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, command: str = "") -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _flock_patiently(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _BUSY:
                raise
            holder = self.holder()
            who = holder.describe() if holder else "another process"
            raise InputError(f"{os.path.dirname(self.path)}: the run is being written by {who}; "
                             "wait for it to finish or stop it (readers like 'show' work meanwhile)") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "command": command or " ".join(os.path.basename(a) if i == 0 else a
                                               for i, a in enumerate(sys.argv[:4]))}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def writer(self) -> Optional[LockHolder]:
        """Who holds the lock now (None: nobody; the run is not being written, whatever state.json says).

        A shared lock taken and dropped at once: a writer starting in that instant waits for it
        (see ``_flock_patiently``) instead of being told the run is busy.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in _BUSY:
                raise
            return self.holder() or LockHolder(0, "?", "", 0.0)
        finally:
            os.close(fd)  # closing drops the probe's lock
        return None

    def holder(self) -> Optional[LockHolder]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                d = json.load(fh)
            return LockHolder(int(d["pid"]), str(d["host"]), str(d.get("command", "")), float(d.get("since", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a RunDir dropped without release() must not hold the run forever
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter exit os/fcntl may already be gone
            pass
