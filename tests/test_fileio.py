"""The atomic writer on a full disk: the old file kept, no temp file left, and the file named."""

import errno
import os

import pytest

from expand import fileio


def _full_disk(monkeypatch, code=errno.ENOSPC):
    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fileio.os, "fsync", fsync)


def test_a_write_that_finds_the_disk_full_keeps_the_old_file_and_names_it(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    fileio.atomic_write(str(path), "old")
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        fileio.atomic_write(str(path), "new")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]
    with pytest.raises(OSError) as info:
        fileio.append_line(str(tmp_path / "trials.jsonl"), "{}\n")
    assert info.value.filename == str(tmp_path / "trials.jsonl")


@pytest.mark.parametrize("code, problem, fix", [(errno.ENOSPC, "no space left", "free space"),
                                                 (errno.EROFS, "read-only file system", "make it writable")])
def test_a_full_disk_is_one_line_saying_what_to_do_not_an_internal_error(tmp_path, monkeypatch, capsys,
                                                                         code, problem, fix):
    from expand.cli import main
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, search={"max_steps": 1, "targets": []})
    _full_disk(monkeypatch, code)
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"x3d-expand: error: {problem} writing {tmp_path}/run/")
    assert "internal error" not in err and len(err.splitlines()) == 1
    assert err.endswith(f"({fix}) and run it again (a search continues with 'x3d-expand resume RUN')")


class _DiskFillsAfter:
    """A file object whose disk fills after ``room`` bytes, as a write to a full disk fails."""

    def __init__(self, fh, room):
        self.fh, self.room = fh, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_weights_on_a_full_disk_are_an_oserror_naming_the_file_not_torchs_runtime_error(tmp_path, monkeypatch):
    # torch.save given the file turns the failed write into "RuntimeError: [enforce fail at
    # inline_container.cc] unexpected pos": no errno, so the search recorded the trial failed.
    import torch

    from expand.spec import ArchSpec
    from expand.weights import save_weights

    spec = ArchSpec(1, 8, 32, num_classes=2, dim_c5=64)
    path = tmp_path / "model.pt"
    save_weights(str(path), spec, torch.nn.Linear(2, 2), 0.5)
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, *a, **k: _DiskFillsAfter(real_fdopen(fd, *a, **k), 100))
    with pytest.raises(OSError) as info:
        save_weights(str(path), spec, torch.nn.Linear(64, 64), 0.5)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.pt"]


def test_a_torn_last_line_is_cut_off_and_kept_and_a_whole_one_gets_its_newline(tmp_path):
    log = tmp_path / "log"
    log.write_bytes(b'{"a": 1}\n{"b": 2')
    assert fileio.cut_torn_tail(str(log)) == len(b'{"b": 2')
    assert log.read_bytes() == b'{"a": 1}\n' and (tmp_path / "log.torn").read_bytes() == b'{"b": 2\n'
    log.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert fileio.cut_torn_tail(str(log), lambda tail: tail.endswith(b"}")) == 0
    assert log.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert fileio.cut_torn_tail(str(log)) == 0 and fileio.cut_torn_tail(str(tmp_path / "none")) == 0


def test_make_folder_makes_nested_folders_and_refuses_what_cannot_be_one_in_one_line(tmp_path, monkeypatch):
    from expand.errors import InputError

    made = fileio.make_folder(str(tmp_path / "a" / "b"), "run folder")
    assert os.path.isdir(made)
    assert fileio.make_folder(made, "run folder") == made  # an existing folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"/file: exists and is not a folder$"):
        fileio.make_folder(str(tmp_path / "file"), "run folder")
    with pytest.raises(InputError, match=r"/file/sub: cannot create the run folder: Not a directory$"):
        fileio.make_folder(str(tmp_path / "file" / "sub"), "run folder")
    assert os.listdir(made) == []  # the write probe leaves nothing behind
    # a real folder nobody can create files in, even root (os.access said yes there, and the command
    # died writing its first file: "internal error: FileNotFoundError")
    if os.path.isdir("/proc/self"):
        with pytest.raises(InputError, match=r"^/proc: cannot write in the plot.s folder: "):
            fileio.make_folder("/proc", "plot's folder")
    # a folder this user may not write in (root may write anywhere, so the refusal is what is faked)
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    with pytest.raises(InputError, match=r"/a/b: cannot write in the trial's folder: Permission denied$"):
        fileio.make_folder(made, "trial's folder")
