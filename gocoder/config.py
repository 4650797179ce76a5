"""Config: small frozen dataclasses, fed by an optional TOML file and `--set a.b=v` overrides.

Each pipeline stage owns one section. The defaults are a working tiny run. An unknown key or a
value of the wrong type is a GocoderError naming the key (nanoGPT's configurator, torchtitan's
JobConfig).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gocoder import GocoderError


@dataclass(frozen=True)
class ValidateConfig:
    """The gocheck client: a pool of servers and their deadlines."""

    servers: int = 2  # gocheck server processes in the pool
    timeout_s: float = 10.0  # per request, syntax check
    typecheck_timeout_s: float = 120.0  # per request with a type check (first stdlib imports are slow)


@dataclass(frozen=True)
class Config:
    validate: ValidateConfig = field(default_factory=ValidateConfig)


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """The defaults, updated by the TOML file at path, then by each `a.b=v` override in order."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise GocoderError(f"{path}: cannot read config: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise GocoderError(f"{path}: bad TOML: {e}") from None
    for ov in overrides:
        key, sep, raw = ov.partition("=")
        if not sep or not key.strip():
            raise GocoderError(f"--set {ov!r}: expected KEY=VALUE, e.g. --set validate.servers=4")
        *parents, leaf = key.strip().split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise GocoderError(f"--set {ov!r}: {p} is not a section")
        node[leaf] = _parse_value(raw.strip())
    return _build(Config, data, "")


def _parse_value(raw: str) -> Any:
    """A TOML value (3, 0.5, true, "s", [1, 2]); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"section [{prefix.rstrip('.')}]" if prefix else "the top level"
            raise GocoderError(
                f"unknown config key {prefix + key!r} in {where}; known: {', '.join(sorted(names))}"
            )
    kwargs = {}
    for name in names & data.keys():
        kwargs[name] = _coerce(hints[name], data[name], f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise GocoderError(f"config key {key!r} is a section; give it keys, e.g. {key}.NAME=VALUE")
        return _build(tp, value, key + ".")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in typing.get_args(tp):
            if alt is type(None):
                if value is None or value == "none":
                    return None
                continue
            try:
                return _coerce(alt, value, key)
            except GocoderError as e:
                errors.append(str(e))
        raise GocoderError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise GocoderError(f"config key {key!r} must be a list, got {value!r}")
        (item, *_rest) = typing.get_args(tp)
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise GocoderError(f"config key {key!r} must be one of {choices}, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and (tp is bool or not isinstance(value, bool))):
        raise GocoderError(f"config key {key!r} must be {tp.__name__}, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_toml(cfg: Any) -> str:
    """The resolved config as TOML that load_config reads back to the same value."""
    lines: list[str] = []

    def emit(d: dict[str, Any], section: str) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if scalars:
            if section:
                lines.append(f"[{section}]")
            for k, v in scalars.items():
                if v is not None:  # TOML has no null: an absent key is the default None
                    lines.append(f"{k} = {_toml_value(v)}")
            lines.append("")
        for k, v in d.items():
            if isinstance(v, dict):
                emit(v, f"{section}.{k}" if section else k)

    emit(to_dict(cfg), "")
    return "\n".join(lines).rstrip() + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")
