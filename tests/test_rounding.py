from expand.rounding import (
    clean_factor,
    format_factor,
    inner_width,
    round_repeats,
    round_width,
    se_width,
)


def test_round_width_matches_slowfast():
    assert [round_width(w, 2.0, 8) for w in (12, 24, 48)] == [24, 48, 96]
    assert round_width(12, 2.0) == 24
    assert round_width(12, 2.9) == 35
    # the 90% rule: 10 * 1.0 with divisor 8 rounds to 8 < 9 -> 16
    assert round_width(10, 1.0, divisor=8) == 16
    assert round_width(1, 0.1) == 1  # never below one divisor


def test_round_repeats_is_ceil_without_float_error():
    assert [round_repeats(b, 2.2) for b in (1, 2, 5, 3)] == [3, 5, 11, 7]
    assert [round_repeats(b, 5.0) for b in (1, 2, 5, 3)] == [5, 10, 25, 15]
    assert round_repeats(3, 1.1) == 4
    assert round_repeats(5, 0.0) == 5  # SlowFast: a zero multiplier keeps the basis


def test_inner_and_se_width():
    assert [inner_width(w, 2.25) for w in (24, 48, 96, 192)] == [54, 108, 216, 432]
    assert se_width(54, 0.0625) == 8
    assert se_width(216, 0.0625) == 16
    assert se_width(432, 0.0625) == 32  # 24 < 0.9 * 27 -> +8


def test_factor_cleaning_and_formatting():
    assert clean_factor(0.1 + 0.2) == 0.3
    assert clean_factor(142 * 0.01) == 1.42
    assert format_factor(2.0) == "2.0" and format_factor(2.25) == "2.25"
