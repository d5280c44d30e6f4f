"""Shared fixtures: an isolated complexity cache and one FLOP counter per session."""

from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's ~/.cache/x3d-expand."""
    path = tmp_path_factory.mktemp("x3d-cache")
    old = os.environ.get("X3D_EXPAND_CACHE")
    os.environ["X3D_EXPAND_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("X3D_EXPAND_CACHE", None)
    else:
        os.environ["X3D_EXPAND_CACHE"] = old


@pytest.fixture(scope="session")
def counter(_isolated_cache):
    from expand.complexity import ComplexityCounter

    # The session's on-disk cache (the isolated folder above): the coordinator tests and the
    # CLI runs (in this process and in subprocesses) then count each spec once between them.
    return ComplexityCounter()


@pytest.fixture(scope="session")
def oracle_run(tmp_path_factory, _isolated_cache):
    """A finished two-step oracle search with a 0.006 GFLOP contraction: read-only for tests."""
    from expand.cli import main
    from tests.search.helpers import oracle_experiment

    tmp = tmp_path_factory.mktemp("oracle-run")
    exp = oracle_experiment(tmp, options={"sleep": 0.01}, search={"max_steps": 2, "targets": [0.006]})
    assert main(["search", exp, "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"

