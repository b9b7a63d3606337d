"""Options of the generative methods and train-light: TOML layering and one ``from_mapping`` for them all.

An options dataclass gets its values from its defaults, then a TOML file (``options["config"]``), then the
other keys (CLI flags; ``None`` means unset). A field whose default factory is itself a dataclass is an
option group (``temporal``, ``conditioning``): its fields are given flat, next to the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError

T = TypeVar("T")

#: The help's option group of the generative methods' flags.
GENERATIVE = "generative methods (--method base, light) and their models"


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML config of a generative method, keys in snake_case; relative paths are relative to the file."""
    toml = require("tomllib", "diffusion") if sys.version_info >= (3, 11) else require("tomli", "diffusion")
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    out = {key.replace("-", "_"): value for key, value in data.items()}
    # Relative model paths are relative to the config file, not to wherever the command runs.
    base = Path(path).resolve().parent
    for key in ("models_dir", "base_config"):
        if key in out:
            out[key] = _relative_to(base, out[key])
    if isinstance(out.get("models"), dict):
        out["models"] = {name: _relative_to(base, spec) for name, spec in out["models"].items()}
    return out


def layered_options(
    options: Mapping[str, Any],
    tables: Iterable[str] = ("models",),
    normalize: Callable[[str, Any], Any] | None = None,
) -> dict[str, Any]:
    """Merge a generative method's options: the TOML file at ``options["config"]``, then the other keys.

    Keys may be kebab- or snake-case; ``None`` values are ignored (an unset CLI flag). Keys named in
    ``tables`` are merged entry by entry; ``normalize(key, value)`` may rewrite a value of each layer first.
    The dataclass that receives the result supplies the defaults.
    """
    merged: dict[str, Any] = {}
    layers = [read_toml(options["config"])] if options.get("config") else []
    layers.append({k.replace("-", "_"): v for k, v in options.items() if k != "config"})
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if normalize is not None:
                value = normalize(key, value)
            if key in tables:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{key.replace('_', '-')} must be a table of name = value")
                value = {**merged.get(key, {}), **value}
            merged[key] = value
    return merged


def _relative_to(base: Path, spec: Any) -> Any:
    """``spec`` as a path under ``base`` when it names something there; otherwise unchanged (a hub id)."""
    if isinstance(spec, str) and not os.path.isabs(spec) and (base / spec).exists():
        return str(base / spec)
    return spec


def option_groups(cls: type) -> dict[str, type]:
    """The option groups of an options dataclass: fields whose default factory is a dataclass."""
    return {f.name: f.default_factory for f in fields(cls)
            if f.default_factory is not MISSING and is_dataclass(f.default_factory)}


def from_mapping(
    cls: type[T],
    options: Mapping[str, Any],
    *,
    tables: Iterable[str] = ("models",),
    normalize: Callable[[str, Any], Any] | None = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    required: Iterable[str] = (),
    where: str = "",
) -> T:
    """``cls`` from its defaults, then the TOML file at ``options["config"]``, then the other keys.

    Keys are option names in snake_case or kebab-case; ``None`` values are ignored (an unset CLI flag).

    Args:
        cls: The options dataclass.
        options: The keys to layer (``config`` names a TOML file).
        tables: Keys that are tables, merged entry by entry over the layers.
        normalize: ``normalize(key, value)`` rewrites a value of each layer first.
        defaults: Per table, entries the given ones are merged over.
        required: Keys that have no default.
        where: Names the command in errors (``for --method light``).

    Raises:
        ConfigError: An unknown or missing option, or a value the dataclass rejects.

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Options:
        ...     steps: int = 25
        >>> from_mapping(Options, {"steps": 4, "seed": None})
        Options(steps=4)
    """
    merged = layered_options(options, tables, normalize)
    groups = option_groups(cls)
    group_names = {name: {f.name for f in fields(group)} for name, group in groups.items()}
    names = {f.name for f in fields(cls)} - set(groups)
    flat = names.union(*group_names.values())
    unknown = sorted(set(merged) - flat)
    if unknown:
        known = sorted(n.replace("_", "-") for n in flat)
        given = ", ".join(u.replace("_", "-") for u in unknown)
        raise ConfigError(f"unknown option(s) {where + ': ' if where else ''}{given}; known: {', '.join(known)}")
    missing = [n for n in required if n not in merged]
    if missing:
        raise ConfigError(f"{where.removeprefix('for ') or cls.__name__} needs {' and '.join(missing)}")
    for key, table in (defaults or {}).items():
        merged[key] = {**table, **merged.get(key, {})}
    try:
        built = {name: groups[name](**{k: merged.pop(k) for k in list(merged) if k in group_names[name]})
                 for name in groups}
        return cls(**built, **merged)
    except TypeError as exc:
        raise ConfigError(f"invalid option: {exc}") from exc


def flag(
    help: str,  # noqa: A002 - argparse's own name for it
    *,
    metavar: str | None = None,
    name: str | None = None,
    choices: Iterable[str] | None = None,
    group: str | None = None,
    type: Callable[[str], Any] | None = None,  # noqa: A002 - argparse's own name for it
    default_text: str | None = None,
) -> dict[str, Any]:
    """Field metadata that makes an options field a command-line flag (``cli.flags`` generates it).

    The flag is ``--<field-name-in-kebab-case>`` unless ``name`` says otherwise; its type comes from the
    field's annotation (``bool`` fields get ``--x/--no-x``, ``tuple[str, ...]`` fields are repeatable) and
    its default is the field's own default, appended to ``help``: each default lives once, in its dataclass.
    ``type`` overrides the annotation's (a mapping field given as one value for all keys); ``default_text``
    replaces the shown default (``""`` shows none).

    Examples:
        >>> from dataclasses import dataclass, field
        >>> @dataclass(frozen=True)
        ... class Options:
        ...     steps: int = field(default=25, metadata=flag("denoising steps"))
        >>> fields(Options)[0].metadata["cli"]["help"]
        'denoising steps'
    """
    return {"cli": {"help": help, "metavar": metavar, "name": name,
                    "choices": tuple(choices) if choices is not None else None, "group": group,
                    "type": type, "default_text": default_text}}
