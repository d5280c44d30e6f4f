"""docs/configuration.md is generated from the schema: every key documented, the file current."""

import os

from expand.config_reference import MEANINGS, missing_meanings, render_reference, schema_keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_schema_key_has_a_meaning_and_every_meaning_a_key():
    undocumented, stale = missing_meanings()
    assert undocumented == [], "add these keys to expand/config_reference.py MEANINGS"
    assert stale == [], "these MEANINGS name no schema key"


def test_the_checked_in_reference_is_the_generated_one():
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as fh:
        assert fh.read() == render_reference(), "run `make docs` and commit docs/configuration.md"


def test_the_reference_shows_the_schemas_defaults():
    keys = {k: default for k, _, default in schema_keys()}
    assert keys["schedule.batch_size"] == 16 and keys["trial.checkpoint"] == "path"
    assert keys["space.basis.base_blocks"] == (1, 2, 5, 3) and keys["search.confirm.confidence"] == 0.9
    text = render_reference()
    assert "| `trial.tensorboard` | bool | true |" in text
    assert len([line for line in text.splitlines() if line.startswith("| `")]) == len(keys) == len(MEANINGS)
