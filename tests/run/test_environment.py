"""RUN/environment.jsonl: the versions each training session ran under, and a note when they change."""

import json
import os
import subprocess

import pytest

from expand.cli import main
from expand.run import environment
from tests.search.helpers import oracle_experiment


def test_a_session_records_versions_without_starting_cuda():
    import torch

    env = environment.capture("x3d-expand search x")
    assert env["packages"]["torch"] == torch.__version__ and env["packages"]["fvcore"]
    assert set(environment.PACKAGES) <= set(env["packages"]) and env["command"] == "x3d-expand search x"
    assert env["torch_cuda"] == torch.version.cuda
    assert not torch.cuda.is_initialized()  # a driver holding a CUDA context keeps memory on a GPU all week


def test_recording_a_session_imports_no_torch_and_reads_its_cuda_build_from_its_version_file():
    """An oracle search imports no torch; recording its session did, a second of every such command."""
    import sys

    probe = ("import sys; from expand.run import environment; env = environment.capture('c'); "
             "print('torch' in sys.modules, env['packages']['torch'] is not None)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
    assert environment.cuda_in_version_file("__version__ = '2.5.1+cu121'\ncuda: Optional[str] = '12.1'\n") == "12.1"
    assert environment.cuda_in_version_file("cuda = '11.8'\n") == "11.8"
    assert environment.cuda_in_version_file("cuda: Optional[str] = None\nhip = '6.0'\n") is None


@pytest.fixture
def git_package(tmp_path):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("no git on this machine")
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("x = 1\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "pkg"], ["commit", "-qm", "one"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    return repo, head


def test_the_commit_of_a_checkout_and_none_for_an_untracked_install(git_package):
    repo, head = git_package
    assert environment.git_commit(str(repo / "pkg")) == head
    (repo / "pkg" / "__init__.py").write_text("x = 2\n")  # an edit not committed: the numbers are not head's
    assert environment.git_commit(str(repo / "pkg")) == head + "+dirty"
    # a wheel installed in a venv inside the checkout: git would name the repo's commit, which it is not
    (repo / ".venv" / "site-packages" / "pkg").mkdir(parents=True)
    (repo / ".venv" / "site-packages" / "pkg" / "__init__.py").write_text("x = 3\n")
    assert environment.git_commit(str(repo / ".venv" / "site-packages" / "pkg")) is None


def test_a_resume_under_other_versions_says_so_and_show_counts_the_sessions(tmp_path, capsys):
    exp = oracle_experiment(tmp_path, search={"max_steps": 1})
    out = str(tmp_path / "run")
    assert main(["search", exp, "--out", out, "--quiet"]) == 0
    kept = environment.sessions(out)
    assert len(kept) == 1 and kept[0]["command"].startswith("x3d-expand search ")  # the CLI's command line
    capsys.readouterr()
    older = {**kept[0], "packages": {**kept[0]["packages"], "torch": "2.12.0"}, "time": "2026-01-01T00:00:00"}
    with open(os.path.join(out, environment.FILE), "w") as fh:
        fh.write(json.dumps(older) + "\n")
    assert main(["resume", out, "--max-steps", "2"]) == 0  # grows the search: trains under this torch
    said = capsys.readouterr().out
    note = "environment changed since the last session (2026-01-01T00:00:00): torch 2.12.0 -> "
    assert note in said and note in open(os.path.join(out, "progress.log")).read()
    assert main(["show", out]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("environment: "))
    assert "torch 2.12.0" in line and line.endswith("; 2 sessions, changed: torch (environment.jsonl)")
    assert main(["resume", out]) == 0  # finished: replays, trains nothing, so it is no session
    assert "environment changed" not in capsys.readouterr().out and len(environment.sessions(out)) == 2
    assert main(["show", out, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["environment"]) == 2
    import expand

    table = expand.load_run(out).environment  # the same sessions for a notebook, a column per package
    assert list(table.torch) == ["2.12.0", kept[0]["packages"]["torch"]]


def test_a_run_from_before_the_record_and_a_damaged_line_read_as_what_is_there(tmp_path):
    assert environment.sessions(str(tmp_path)) == [] and environment.summary(str(tmp_path)) == ""
    good = environment.capture("c")
    (tmp_path / environment.FILE).write_text("{torn\n" + json.dumps(good) + "\n[1]\n")
    assert environment.sessions(str(tmp_path)) == [good]
    assert environment.summary(str(tmp_path)).startswith(f"environment: x3d-expand {good['x3d_expand']}")
