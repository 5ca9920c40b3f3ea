"""Experiment configs: quick-mode defaults, ``FULL`` overrides, and ``--set key=value`` parsing.

A config is a frozen dataclass; every override goes through :func:`make_config`, which rejects
unknown keys with the list of valid ones and parses text with the field's declared type
(int, float, bool, str, or a tuple of those written ``2,4,8``) — as nanoGPT's configurator
does, but strict.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Config:
    ...     steps: int = 100          # optimizer steps
    ...     depths: tuple[int, ...] = (2, 4)  # depths to try
    >>> make_config(Config, sets=["steps=5", "depths=2,8,32"])
    Config(steps=5, depths=(2, 8, 32))
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterable


class ConfigError(ValueError):
    """A ``--set`` override names no field of the config, or its value cannot be parsed."""


def field_types(config_cls: type) -> dict[str, Any]:
    """Field name → resolved type annotation of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def parse_value(text: str, tp: Any, key: str = "value") -> Any:
    """Parse ``text`` as type ``tp`` (int, float, bool, str, tuple[T, ...], Optional[T]).

    Raises:
        ConfigError: the text is not a ``tp``.

    Example:
        >>> parse_value("1e-3", float), parse_value("yes", bool), parse_value("1,2", tuple[int, ...])
        (0.001, True, (1, 2))
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        inner = [a for a in args if a is not type(None)]
        if text.strip().lower() in ("none", "null", ""):
            return None
        return parse_value(text, inner[0], key)
    if origin in (tuple, list):
        elem = args[0] if args else str
        parts = [p for p in (s.strip() for s in text.strip("()[] ").split(",")) if p]
        return tuple(parse_value(p, elem, key) for p in parts)
    try:
        if tp is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
    except ValueError:
        raise ConfigError(f"{key}={text!r}: expected {getattr(tp, '__name__', tp)}") from None
    raise ConfigError(f"{key}: fields of type {tp} cannot be set from the command line")


def parse_sets(config_cls: type, sets: Iterable[str]) -> dict[str, Any]:
    """``["k=v", ...]`` → ``{k: parsed v}`` for the fields of ``config_cls``.

    Raises:
        ConfigError: an item is not ``key=value``, names an unknown field (the message lists the
            valid ones), or has a value of the wrong type.
    """
    types = field_types(config_cls)
    out: dict[str, Any] = {}
    for item in sets:
        key, eq, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise ConfigError(f"--set {item!r}: write key=value, e.g. --set {next(iter(types), 'key')}=...")
        if key not in types:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(types)}")
        out[key] = parse_value(text, types[key], key)
    return out


def make_config(config_cls: type, full: bool = False, full_overrides: dict[str, Any] | None = None,
                sets: Iterable[str] = ()) -> Any:
    """The config to run: defaults (quick mode), then ``FULL`` if ``full``, then ``--set`` items.

    Raises:
        ConfigError: unknown keys in ``full_overrides`` or ``sets``, or unparsable values.
    """
    types = field_types(config_cls)
    values: dict[str, Any] = {}
    if full:
        bad = sorted(set(full_overrides or {}) - set(types))
        if bad:
            raise ConfigError(f"FULL names unknown config keys {bad}; valid keys: {', '.join(types)}")
        values.update(full_overrides or {})
    values.update(parse_sets(config_cls, sets))
    return config_cls(**values)


def config_dict(config: Any) -> dict[str, Any]:
    """A config as a plain dict (tuples stay tuples; the JSON writer turns them into lists)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
