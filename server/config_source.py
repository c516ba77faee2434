"""Where settings come from, merged in this order (later wins): defaults, the TOML file,
environment variables `LLMSERVE_<KEY>` and `LLMSERVE_<SECTION>__<KEY>` (pydantic-settings
conventions; nested tables go deeper with more `__`), then command-line flags.

`build(cls, mapping)` turns the merged mapping into the typed dataclasses, coercing
environment strings by each field's declared type and refusing unknown keys by name."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from domain.secret import Secret

ENV_PREFIX = "LLMSERVE_"


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """`LLMSERVE_AUTH__MODE=api_key` -> {"auth": {"mode": "api_key"}} (values stay strings)."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"environment variable {name} nests under a value")
        node[path[-1]] = _EnvString(value)
    return out


class _EnvString(str):
    """A value that came from the environment: parsed by the field's type, not taken as is."""


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def build(cls: type, data: Mapping[str, Any], where: str = "", base: Any = None) -> Any:
    """An instance of dataclass `cls` from `data`, each field on top of `base`'s (or the default)."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown settings {sorted(where + k for k in unknown)}; "
                         f"known: {sorted(where + k for k in fields)}")
    values = {}
    for name, raw in data.items():
        current = getattr(base, name) if base is not None else _default(fields[name])
        values[name] = coerce(hints[name], raw, f"{where}{name}", current)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def coerce(hint: Any, raw: Any, where: str, current: Any = None) -> Any:
    """`raw` as a value of type `hint` (environment strings are parsed)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if raw is None or (isinstance(raw, _EnvString) and raw.lower() in ("", "none", "null") and len(options) < len(args)):
            return None
        return coerce(options[0], raw, where, current)
    if dataclasses.is_dataclass(hint) and hint is not Secret:
        if isinstance(raw, _EnvString):
            raw = _json(raw, where)
        if not isinstance(raw, Mapping):
            raise ValueError(f"setting {where} must be a table")
        return build(hint, raw, f"{where}.", current if dataclasses.is_dataclass(current) else None)
    if isinstance(raw, _EnvString):
        return _parse(hint, origin, args, str(raw), where)
    if hint is Secret:
        return raw if isinstance(raw, Secret) else Secret(str(raw))
    if hint is Path:
        return Path(raw)
    if origin is tuple:
        return tuple(raw)
    return raw


def _parse(hint: Any, origin: Any, args: tuple, text: str, where: str) -> Any:
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint in (int, float):
            return hint(text)
        if hint is Path:
            return Path(text)
        if hint is Secret:
            return Secret(text)
        if origin is Literal:
            if text not in args:
                raise ValueError(f"one of {list(args)}")
            return text
        if origin in (tuple, list, dict):
            return tuple(_json(text, where)) if origin is tuple else _json(text, where)
        return text
    except ValueError as exc:
        raise ValueError(f"setting {where}: cannot read {text!r} from the environment ({exc})") from None


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"setting {where} from the environment must be JSON") from None
