"""The one-writer lock on its own: refused while held (naming the holder), seen by readers, freed."""

import os
import socket

import pytest

from expand.errors import InputError
from expand.run.lock import RunLock


def test_a_second_lock_is_refused_naming_the_holder_and_readers_see_who_writes(tmp_path):
    path = str(tmp_path / ".lock")
    first, second = RunLock(path), RunLock(path)
    assert first.writer() is None  # no file yet: nobody writes
    first.acquire("x3d-expand search exp.yaml")
    assert first.held and not second.held
    with pytest.raises(InputError) as info:
        second.acquire()
    msg = str(info.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in msg and "x3d-expand search exp.yaml" in msg
    assert msg.startswith(f"{tmp_path}: the run is being written by")
    holder = second.writer()  # a reader's probe does not block and does not take the lock
    assert holder is not None and holder.pid == os.getpid() and holder.command == "x3d-expand search exp.yaml"
    first.release()
    assert first.writer() is None and not first.held
    second.acquire()  # free again
    assert second.held
    second.release()


def test_acquire_twice_in_one_holder_is_a_no_op_and_a_garbled_lock_file_names_nobody(tmp_path):
    path = tmp_path / ".lock"
    lock = RunLock(str(path))
    lock.acquire("a")
    lock.acquire("b")  # already held: not refused by itself, holder unchanged
    assert lock.holder().command == "a"
    lock.release()
    path.write_text("not json")
    assert RunLock(str(path)).holder() is None
