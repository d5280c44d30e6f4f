"""``--set KEY=VALUE``: any key of an experiment, changed for one run without a copy of its file.

Why: a researcher's variants (a shorter schedule to calibrate, another data root on the
cluster, four epochs instead of eight) otherwise become copies of the YAML that drift
apart. The values are YAML scalars or lists, as in the file; the changed experiment is
parsed again as a whole, so a bad value is the same one-line ConfigError a bad file gives,
and a cross-key rule (``trial.device: cpu`` with a GPU per trial) still holds. The run keeps
its settings (``state.json``), so ``resume`` applies them again to the experiment file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping, Optional

from expand.errors import ConfigError, InputError

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_setting(text: str) -> tuple[str, Any]:
    """``schedule.epochs=2`` -> ("schedule.epochs", 2); the value is read as YAML (``[0.5, 1]``, ``null``)."""
    import yaml

    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not KEY.fullmatch(key):
        raise InputError(f"expected KEY=VALUE with a dotted key, e.g. schedule.epochs=2, got {text!r}")
    if not value.strip():
        raise InputError(f"{key}=: no value (null for none)")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        why = str(exc).splitlines()[0]
        raise InputError(f"{key}={value}: not a YAML value ({why}); quote a string that has ': ' "
                         "or starts with [ { * & ! | > % @") from None


def settings_from(pairs: "list[tuple[str, Any]] | None") -> dict[str, Any]:
    """The CLI's repeated ``--set`` as one mapping; a key given twice is refused (which would win?)."""
    out: dict[str, Any] = {}
    for key, value in pairs or []:
        if key in out:
            raise InputError(f"--set {key}: given twice ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out


def checked_settings(settings: Any) -> dict[str, Any]:
    """Python's ``settings=`` as the CLI's: dotted string keys; a ``pathlib.Path`` value as its
    string (the run's state.json keeps them, for resume)."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise InputError(f"settings: expected a mapping of dotted keys to values, got {type(settings).__name__}")
    for key in settings:
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise InputError(f"settings: {key!r}: expected a dotted key, e.g. 'schedule.epochs'")
    return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}


def shown_settings(settings: Mapping[str, Any]) -> str:
    """``--set a.b=1 --set c.d=x``, as a user would type them again in a shell ('' for none)."""
    import json
    import shlex

    def value(v: Any) -> str:
        plain = isinstance(v, str) and v and v.strip() == v and parse_setting(f"k={v}")[1] == v
        return v if plain else json.dumps(v, separators=(",", ":"))

    return " ".join(f"--set {shlex.quote(f'{k}={value(v)}')}" for k, v in settings.items())


def apply_settings(exp: Any, settings: Mapping[str, Any], check_paths: Optional[bool] = None) -> Any:
    """``exp`` with ``settings`` (dotted key -> value) changed, checked as the file's keys are.

    Relative paths in the settings (``data.root``, ``data.cache``, a ``search_space`` file) are
    relative to the current folder, as a path on a command line is; the file's own paths keep
    meaning what they meant (they are absolute once loaded).
    """
    settings = checked_settings(settings)
    if not settings:
        return exp
    from expand.config import parse_experiment
    from expand.config.checks import check_run_name
    from expand.schema import shown

    data = exp.to_dict()
    for key, value in settings.items():
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                where = ".".join(parts[:i + 1])
                if part not in node:
                    raise ConfigError(f"--set {key}: {where}: unknown key (allowed: {', '.join(sorted(node))})")
                raise ConfigError(f"--set {key}: {where} is {shown(child)}, not a section with keys")
            node = child
        old = node.get(parts[-1])
        # a mapping merges into a section (--set 'data={num_classes: 7}' keeps data.root): replacing it
        # would put every other key of the section back to its default without a word
        node[parts[-1]] = _merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    where = f"{exp.source or 'experiment'} with --set:"
    if check_paths is None:  # the data's paths, when a setting may have changed them
        check_paths = touches(settings, "data")
    changed = parse_experiment(data, where, os.getcwd(), check_paths=check_paths)
    if "name" in settings:
        check_run_name(changed.name, where)
    space = changed.search_space
    if not touches(settings, "search_space"):
        space = dataclasses.replace(space, source=exp.search_space.source)  # it still comes from that file
    return dataclasses.replace(changed, search_space=space, source=exp.source)


def touches(settings: Mapping[str, Any], section: str) -> bool:
    """Does a setting change ``section`` (``data``, ``data.root``, ``data={...}``)?"""
    return any(k == section or k.startswith(section + ".") for k in settings)


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for key, value in new.items():
        out[key] = _merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


__all__ = ["apply_settings", "checked_settings", "parse_setting", "settings_from", "shown_settings", "touches"]
