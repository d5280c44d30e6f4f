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

    return ComplexityCounter(path=None)
