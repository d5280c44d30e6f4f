import pytest

from expand.bracketing import bracket, crossing


@pytest.mark.parametrize("first", [1, 2, 7, 19, 20])
def test_bracket_finds_the_first_level_that_reaches_from_any_guess(first):
    for guess in range(-3, 25):
        asked = []

        def reaches(level):
            asked.append(level)
            return level >= first

        assert bracket(reaches, 0, 20, guess) == (first - 1, first)
        assert all(0 < a <= 20 for a in asked)  # never outside (start, top]
    asked.clear()
    bracket(reaches, 0, 20, first)
    assert len(asked) == (1 if first == 1 else 2)  # a right guess costs it and the level below (if not start)


def test_bracket_with_nothing_reaching_raises_lookup_error():
    with pytest.raises(LookupError):
        bracket(lambda level: False, 0, 20, 5)


def test_crossing_solves_a_power_law_with_an_offset_and_refuses_a_flat_one():
    f = lambda x: 3.0 + 0.5 * x ** 2  # noqa: E731 - a constant stem and head, a body growing squared
    assert crossing(2.0, f(2.0), 9.0, f(9.0), f(6.5), 2.0) == pytest.approx(6.5)
    assert crossing(2.0, 5.0, 9.0, 5.0, 7.0, 1.0) is None
    assert crossing(2.0, 5.0, 9.0, 6.0, 1.0, 1.0) is None  # the goal is below the fitted curve's zero
