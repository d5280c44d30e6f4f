import pytest

from expand.errors import ConfigError
from expand.registry import Registry


def test_entries_keep_registration_order_and_unknown_names_list_the_known():
    r: Registry[int] = Registry("colour")
    r.register("red", 1)
    r.register("green", 2)
    assert r.names() == ("red", "green") and "red" in r and "blue" not in r and len(r) == 2
    assert r.get("green") == 2
    with pytest.raises(ConfigError, match=r"unknown colour 'blue' \(colours: red, green\)"):
        r.get("blue")


def test_a_name_is_registered_once_unless_replaced_and_can_be_removed():
    r: Registry[str] = Registry("thing")

    @r.register("a")
    def a():  # noqa: ANN202 - the decorator form returns the entry unchanged
        return "a"

    assert r.get("a") is a and a() == "a"
    with pytest.raises(ValueError, match="already registered"):
        r.register("a", "other")
    r.register("a", "other", replace=True)
    assert r.get("a") == "other"
    assert r.unregister("a") == "other" and "a" not in r
    with pytest.raises(ValueError, match="letters, digits"):
        r.register("no spaces", "x")


def test_the_public_registries_hold_the_papers_parts():
    import expand

    assert expand.AXES.names() == ("fast", "temporal", "spatial", "width", "bottleneck", "depth")
    assert expand.FACTORS.names() == ("frames", "stride", "crop", "width", "bottleneck", "depth")
    assert [expand.FACTORS.get(f).symbol for f in expand.FACTORS] == ["γt", "γτ", "γs", "γw", "γb", "γd"]
    assert expand.RULES.names()[0] == "paper" and "gain_per_gflop" in expand.RULES
    assert set(expand.RUNNERS.names()) == {"ray", "serial"}
    assert expand.BASELINES.names() == ("random", "tpe", "compound")
