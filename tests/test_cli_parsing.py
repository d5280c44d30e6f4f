"""The CLI's argparse on a parser of its own: usage errors are one line and exit 2, and a number
list gives back the words after it to the positional (the CLI's own commands: tests/test_cli.py)."""

import re

import pytest

from expand.cli_parsing import Numbers, Parser, number, positional, positive_int, seed, steps


def _parser() -> Parser:
    p = Parser(prog="tool")
    p.add_argument("--sizes", action=Numbers, convert=positive_int, spill_to="names", default=[])
    positional(p, "names", "things", many=True)
    return p


def test_words_after_a_number_list_go_to_the_positional_before_it_or_after():
    args = _parser().parse_args(["--sizes", "1", "2", "a", "b"])
    assert args.sizes == [1, 2] and args.names == ["a", "b"]
    args = _parser().parse_args(["x", "--sizes", "3", "y"])
    assert args.sizes == [3] and args.names == ["x", "y"]  # in the order typed


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "1"], "the following arguments are required: NAMES"),
    (["--sizes", "0", "a"], "argument --sizes: must be >= 1, got 0"),
    (["--sizes", "1", "2.5", "a"], "argument --sizes: expected an integer, got '2.5'"),  # numeric: not a name
    (["--sizes", "a"], "argument --sizes: expected an integer, got 'a'"),  # no number before it
])
def test_bad_words_are_one_usage_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == f"tool: error: {message}\n"  # one line, no usage block


@pytest.mark.parametrize("text, error", [("nan", "finite number > 0"), ("inf", "finite number > 0"),
                                         ("-1", "finite number > 0"), ("0", "finite number > 0"),
                                         ("1e", "expected a number")])
def test_positive_numbers_refuse_what_is_not_one(text, error):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=error):
        number(float)(text)


def test_help_shows_the_positional_a_number_list_may_fill_as_required(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    usage = " ".join(capsys.readouterr().out.split("\n\n")[0].split())
    assert usage.endswith("NAMES [NAMES ...]") and "[NAMES [NAMES" not in usage


@pytest.mark.parametrize("convert, text, error", [(steps, "0", "must be 1-100, got 0"),
                                                  (steps, "101", "must be 1-100, got 101"),
                                                  (seed, "-1", "must be 0-4294967295, got -1"),
                                                  (steps, "2.5", "expected an integer, got '2.5'")])
def test_steps_and_seeds_take_the_range_their_config_keys_take(convert, text, error):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(error)):
        convert(text)
    assert steps("100") == 100 and seed("4294967295") == 4294967295
