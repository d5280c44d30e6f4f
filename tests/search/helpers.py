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
