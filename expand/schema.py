"""Load plain YAML mappings into typed dataclasses, naming the field on error.

Every config object of the project is a dataclass whose annotations are the
schema; this module walks the annotations, so adding a field means adding one
line with a default, and a typo in a YAML key is reported with its full path
(``experiment.yaml: schedule.batch_sise: unknown key``) instead of silently
using a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Mapping, TypeVar

import yaml

from expand.errors import ConfigError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 numbers: PyYAML (YAML 1.1) reads ``1e9`` and ``5e-5`` as strings; JSON and YAML 1.2 do not.

    A key given twice in one mapping is an error (YAML 1.2 says keys are unique): PyYAML keeps the
    last one silently, so a second ``targets:`` pasted below the first would quietly win.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *defaults' may be overridden by design
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                twice = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's own construction reports it
                continue
            if twice:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"the key {key!r} is given twice", key_node.start_mark)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(path: str) -> Any:
    """Parse a YAML file; a missing, non-UTF-8 or malformed file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_Loader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def key_path(where: str, key: str) -> str:
    """Where a key sits, as users read it: ``file.yaml:`` + ``data`` is ``file.yaml: data``, then ``data.root``."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _at(where: str) -> str:
    """``where`` before a message's colon (a bare ``file.yaml:`` would print two)."""
    return where[:-1] if where.endswith(":") else where


def shown(value: Any, limit: int = 60) -> str:
    """A value in an error line, cut short: a whole file read as one string must not fill the screen."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _alternatives(args: tuple) -> str:
    """A union's members in words: 'a number, 'auto' or null'."""
    words = []
    for arg in args:
        if typing.get_origin(arg) is typing.Literal:
            words += [repr(a) for a in typing.get_args(arg)]
        else:
            words.append({float: "a number", int: "an integer", bool: "true or false", str: "a string",
                          type(None): "null"}.get(arg, _type_name(arg)))
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{_at(where)}: expected {_alternatives(args)}, got {shown(value)}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_at(where)}: expected a list, got {shown(value)}")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_at(where)}: expected a mapping, got {shown(value)}")
        key_tp, val_tp = args if args else (Any, Any)
        return {
            _coerce(k, key_tp, where): _coerce(v, val_tp, key_path(where, str(k))) for k, v in value.items()
        }
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{_at(where)}: must be one of {allowed}, got {shown(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_at(where)}: expected true or false, got {shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise ConfigError(f"{_at(where)}: expected an integer, got {shown(value)}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{_at(where)}: expected a number, got {shown(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{_at(where)}: must be a finite number, got {shown(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_at(where)}: expected a string, got {shown(value)}")
        return value
    raise ConfigError(f"{_at(where)}: unsupported field type {_type_name(tp)}")


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types are ConfigErrors.

    ``where`` prefixes every message (``file.yaml: section``). A field whose
    dataclass metadata holds ``check`` gets that callable run on its value; it
    returns an error string or None.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_at(where)}: expected a mapping, got {shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise ConfigError(f"{key_path(where, unknown[0])}: unknown key (allowed: {allowed})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = key_path(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{sub}: required key is missing")
            continue
        value = _coerce(data[name], hints[name], sub)
        check = f.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{sub}: {problem}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_at(where)}: {exc}") from None


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and paths to plain YAML/JSON-able values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        to_dict = getattr(obj, "to_dict", None)
        if callable(to_dict):
            return to_plain(to_dict())
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def positive(value: Any) -> str | None:
    return None if value is None or value > 0 else f"must be > 0, got {value}"


def positive_range(value: Any, limit: float = math.inf, why: str = "") -> str | None:
    """A ``[min, max]`` pair with 0 < min <= max <= ``limit`` (None: unset)."""
    if value is None:
        return None
    if len(value) != 2 or value[0] > value[1]:
        return f"must be [min, max] with min <= max, got {value}"
    if value[0] <= 0:
        return f"minimum must be > 0, got {value[0]}"
    if value[1] > limit:
        return f"maximum must be at most {limit:g} ({why}), got {value[1]}"
    return None


def positive_values(value: Any) -> str | None:
    """A list of values each > 0 (a per-channel std: 0 divides a frame by zero)."""
    bad = [v for v in value or [] if not v > 0]
    return f"every value must be > 0, got {bad[0]}" if bad else None


# The largest seed every consumer takes: numpy's RandomState (Optuna's samplers) refuses 2**32 and
# negatives, so a seed outside this range would fail in the middle of a run, not at its start.
MAX_SEED = 2**32 - 1


def seed_range(value: Any) -> str | None:
    return None if value is None or 0 <= value <= MAX_SEED else f"must be 0-{MAX_SEED}, got {value}"


# X2D to X3D-XL is about ten 2x steps; 100 is room for any path and keeps factor**steps a float
MAX_STEPS = 100


def step_count(value: Any) -> str | None:
    return None if value is None or 1 <= value <= MAX_STEPS else f"must be 1-{MAX_STEPS}, got {value}"


def _number(x: float) -> str:
    """100000000, not 1e+08: the bound as a user would type it."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def at_most(limit: float, why: str, low: float = 0, low_open: bool = False) -> Any:
    """A check for a value ``low``..``limit``: more is a typo that harms the machine or the run
    (``why``), not a setting. ``low_open``: ``low`` itself is refused (> 0 rather than >= 0)."""
    def check(value: Any) -> str | None:
        if value is None or ((value > low if low_open else value >= low) and value <= limit):
            return None
        span = f"> {_number(low)} and at most {_number(limit)}" if low_open else f"{_number(low)}-{_number(limit)}"
        return f"must be {span} ({why}), got {value}"

    return check


# Counts past which a value is a typo, not a setting; each is checked where the value is read
# (experiment files, the CLI's parser, the Python API), so the bound is written once here.
MAX_PROCESSES = 256  # worker processes (trial.workers, data --workers): 800 for 8 forks 800 torch imports
MAX_BASELINE_TRIALS = 10000  # a baseline's trials: 1000000000 ran until killed
MAX_CALIBRATION_SEEDS = 100  # calibrate's seeds per model and schedule


# A trial's time limit beyond 30 days is no limit, and past ~1e10 s a timer cannot be set at all
MAX_TIME_LIMIT_S = 30 * 24 * 3600


def time_limit(value: Any) -> str | None:
    if value is None or 0 < value <= MAX_TIME_LIMIT_S:
        return None
    return f"must be > 0 and at most {MAX_TIME_LIMIT_S} s (30 days), got {value}"


def non_negative(value: Any) -> str | None:
    return None if value is None or value >= 0 else f"must be >= 0, got {value}"


def check_field(check: Any, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field with a validation callable in its metadata."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"check": check}, **kw)
    return dataclasses.field(default=default, metadata={"check": check}, **kw)
