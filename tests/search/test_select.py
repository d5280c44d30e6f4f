"""Selection rules through the public registry: a toy rule is one entry and drives a real search."""

import pytest

from expand.errors import ConfigError
from expand.search.select import RULES, Scored, SelectionRule, rule_description, select, select_tied
from tests.search.helpers import oracle_experiment


def test_every_rule_has_a_description_and_a_source():
    for name, rule in RULES.items():
        assert rule.name == name and rule.description and rule.source
        assert rule_description(name) == rule.description
    assert "X3D" in RULES.get("paper").source


def test_the_paper_rule_takes_the_most_accurate_of_equal_flops_and_gain_per_gflop_otherwise():
    equal = [Scored("a", 2.0, 0.50), Scored("b", 2.1, 0.55), Scored("c", 2.2, 0.52)]
    assert select("paper", equal, 0.4, 1.0) == 1
    unequal = [Scored("a", 2.0, 0.50), Scored("b", 4.0, 0.60)]  # +0.10/1 GFLOP vs +0.20/3 GFLOPs
    assert select("paper", unequal, 0.4, 1.0) == 0 and select("best_accuracy", unequal, 0.4, 1.0) == 1
    assert select_tied("best_accuracy", [Scored("a", 2.0, 0.5), Scored("b", 2.0, 0.5)], 0.4, 1.0) == [0, 1]
    with pytest.raises(ConfigError, match="unknown rule 'magic'"):
        select("magic", equal, 0.4, 1.0)


@pytest.fixture
def priciest_rule():
    """A toy rule, registered the way a user would: the most GFLOPs wins."""
    RULES.register("priciest", SelectionRule("priciest", lambda cands, top1, gflops: lambda c: c.gflops,
                                             "most GFLOPs", "a test"))
    yield "priciest"
    RULES.unregister("priciest")


def test_a_rule_registered_through_the_public_registry_runs_the_oracle_search(tmp_path, counter, priciest_rule):
    import expand

    assert priciest_rule in expand.RULES
    exp = oracle_experiment(tmp_path, search={"max_steps": 2, "selection": priciest_rule})
    run = expand.search(exp, out=str(tmp_path / "run"), quiet=True)
    steps = run.steps
    for step in (1, 2):
        cands = steps[(steps.step == step) & (steps.status == "ok")]
        chosen = cands[cands.chosen]
        assert len(chosen) == 1 and chosen.gflops.iloc[0] == cands.gflops.max()
    # the paper's rule picks differently here: the toy rule really decided
    paper = expand.search(oracle_experiment(tmp_path, "p.yaml", search={"max_steps": 2}),
                          out=str(tmp_path / "paper"), quiet=True)
    assert list(paper.path.axis) != list(run.path.axis)
    assert run.experiment.selection == "priciest"


def test_an_unregistered_rule_is_a_config_error_naming_the_known_ones(tmp_path):
    from expand.config import load_experiment

    with pytest.raises(ConfigError, match=r"search.selection: unknown rule 'priciest' \(rules: paper"):
        load_experiment(oracle_experiment(tmp_path, search={"selection": "priciest"}))
