"""argparse as the CLI needs it: usage errors as one line and exit 2, and number lists that
give back the words after them.

Apart from ``cli.py`` (which declares the commands) because this is how any
argument is parsed, not which arguments there are.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, NoReturn, Optional

from expand.schema import MAX_PROCESSES


class _Formatter(argparse.HelpFormatter):
    """Shows a positional a number list may fill (see :class:`Numbers`) as required, which it is."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if getattr(action, "required_after_spill", False):
            name = self._metavar_formatter(action, default_metavar)(1)[0]
            return f"{name} [{name} ...]" if action.nargs == "*" else name
        return super()._format_args(action, default_metavar)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        namespace, rest = super().parse_known_args(args, namespace)
        _place_spilled(self, namespace)
        return namespace, rest


def number(kind: type, positive: bool = True) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if positive and kind is int and value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
        if positive and kind is float and (not value > 0 or value == float("inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


positive_float = number(float)
positive_int = number(int)


def _checked_int(text: str, check: Callable[[Any], Optional[str]]) -> int:
    value = number(int, positive=False)(text)
    problem = check(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def setting(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: a dotted key and its YAML value (``expand.config.settings``)."""
    from expand.config.settings import parse_setting
    from expand.errors import InputError

    try:
        return parse_setting(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seed(text: str) -> int:
    """A seed every consumer takes (``expand.schema.MAX_SEED``), refused here rather than mid-run."""
    from expand.schema import seed_range

    return _checked_int(text, seed_range)


def int_up_to(limit: int, why: str) -> Callable[[str], int]:
    """An integer 1..``limit``: more is a typo that would run for days or fork the machine to death."""
    from expand.schema import at_most

    def convert(text: str) -> int:
        return _checked_int(text, at_most(limit, why, low=1))

    convert.__name__ = "int"
    return convert


# --workers of the data commands: as trial.workers (expand.config), 100000 forked 100000 processes
processes = int_up_to(MAX_PROCESSES, "processes")


def steps(text: str) -> int:
    """``--max-steps``, in the range ``search.max_steps`` takes (``expand.schema.MAX_STEPS``)."""
    from expand.schema import step_count

    return _checked_int(text, step_count)
_SPILL = "_spilled_positionals"


class Numbers(argparse.Action):
    """``nargs='+'`` numbers that give back what follows them to the positional.

    ``contract --target-gflops 0.003 RUN`` would otherwise read RUN as a
    fourth number: argparse's greedy matching hands every word after the flag
    to it. Words after the numbers that are not numbers are kept and placed
    in the command's positional (``spill_to``) once parsing ends.
    """

    def __init__(self, option_strings, dest, convert=positive_float, spill_to="", nargs="+",  # noqa: ANN001
                 **kwargs):
        self.convert, self.spill_to = convert, spill_to
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        numbers: list[Any] = []
        for i, text in enumerate(values):
            try:
                numbers.append(self.convert(text))
            except argparse.ArgumentTypeError as exc:
                if not numbers or not self.spill_to or _looks_numeric(text):
                    parser.error(f"argument {'/'.join(self.option_strings)}: {exc}")
                if getattr(namespace, _SPILL, None) is None:
                    setattr(namespace, _SPILL, [])
                before = getattr(namespace, self.spill_to, None)  # positionals given before the flag
                getattr(namespace, _SPILL).append((self.spill_to, list(values[i:]),
                                                   len(before) if isinstance(before, list) else 0))
                break
        setattr(namespace, self.dest, numbers)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _place_spilled(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> None:
    for dest, words, given_before in getattr(namespace, _SPILL, None) or []:
        current = getattr(namespace, dest, None)
        if isinstance(current, list):  # in the order they were typed: `compare A --budgets 1 B` is A, B
            setattr(namespace, dest, current[:given_before] + words + current[given_before:])
        elif current is None and len(words) == 1:
            setattr(namespace, dest, words[0])
        else:
            parser.error(f"unrecognized arguments: {' '.join(words)}")
    if hasattr(namespace, _SPILL):
        delattr(namespace, _SPILL)
    for action in parser._actions:  # positionals made optional so that a spill can fill them
        if getattr(action, "required_after_spill", False) and not getattr(namespace, action.dest, None):
            parser.error(f"the following arguments are required: {action.metavar or action.dest}")


def positional(p: argparse.ArgumentParser, dest: str, help: str, many: bool = False) -> None:
    """A positional that a :class:`Numbers` option before it may fill (see there)."""
    action = p.add_argument(dest, nargs="*" if many else "?", default=None, metavar=dest.upper(), help=help)
    action.required_after_spill = True


__all__ = ["Numbers", "Parser", "number", "positional", "positive_float", "positive_int", "seed"]
