"""The README's Python API section runs as written (from an empty folder)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks(section: str) -> list[str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_python_api_section_runs(tmp_path, monkeypatch):
    from expand.search.select import RULES

    blocks = python_blocks("Python API")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    finally:
        if "priciest" in RULES:
            RULES.unregister("priciest")
    assert os.path.isfile(tmp_path / "results" / "api-demo" / "steps.csv")
    assert os.path.isfile(tmp_path / "results" / "api-priciest" / "state.json")



def test_the_readme_is_a_guide_with_its_sections_and_links():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    for section in ("Install", "Quick start", "Your own data", "Watching a search", "Reading a run", "Python API",
                    "Recipes", "Configuration reference", "Troubleshooting", "Benchmarks"):
        assert section in headings, section
    for target in re.findall(r"\]\(((?:docs|experiments|benchmarks)/[^)#]+)\)", text):
        assert os.path.exists(os.path.join(ROOT, target)), target
    assert "## Benchmarks" in text and len(text.splitlines()) < 900
    assert "[docs/configuration.md](docs/configuration.md)" in text
