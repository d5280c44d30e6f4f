"""Oracle experiments written to a temp folder, for coordinator and CLI tests."""

from __future__ import annotations

import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "search_spaces", "tiny_cpu.yaml")


def oracle_experiment(tmp_path, name="exp.yaml", options=None, search=None, retries=None, trial=None, **top):
    data = {
        "name": "oracle-test",
        "search_space": TINY,
        "data": {"num_classes": 10},
        "trial": {"function": "expand.search.oracle:run_oracle", "options": options or {}, **(trial or {})},
        "search": {"max_steps": 3, "seed": 0, "runner": "serial", **(search or {})},
        "retries": {"failed": 1, "oom": 0, "diverged": 0, **(retries or {})},
        **top,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def confirmed_oracle_run(tmp_path) -> str:
    """A one-step oracle search whose close call (spatial and depth tie in truth, tests/search/
    test_decide.py) was confirmed with more seeds: models with two seeds whose top-1s differ."""
    from expand.cli import main

    weights = {"frames": 0.0, "rate": 0.0, "crop": 0.6, "width": 0.0, "bottleneck": 0.0, "depth": 0.2}
    exp = oracle_experiment(tmp_path, options={"videos": 200, "noise": 0.03, "weights": weights},
                            search={"max_steps": 1, "confirm": {"max_extra_trials": 2, "confidence": 0.95}})
    out = os.path.join(str(tmp_path), "confirmed")
    assert main(["search", exp, "--out", out, "--quiet"]) == 0
    return out
