"""Command-line flags generated from options dataclasses, so that each default lives once, in its dataclass.

A field becomes a flag when its metadata carries :func:`camouflage_video.options.flag`. Every generated flag
defaults to ``None`` (not given): what the user did not give is left to the TOML config and then to the
dataclass, and the help shows the dataclass default. Option groups (fields whose default factory is a
dataclass, e.g. ``AnonymizeConfig.encoder``) are walked: their fields are flags of their own.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from typing import Any

from camouflage_video.errors import ConfigError


def pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` as a pair (the type of repeatable mapping flags such as ``--model``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


@dataclass(frozen=True)
class Flag:
    """One generated flag: the field it sets and how its text is turned into the field's value."""

    dest: str
    option: str
    kind: str  # "value", "bool", "append" (tuple field) or "pairs" (mapping field)
    convert: Any = None  # pairs: the mapping's value type


def option_fields(cls: type) -> list[tuple[Field, Any]]:
    """The fields of ``cls`` and of its option groups that carry flag metadata, with resolved annotations."""
    hints = typing.get_type_hints(cls)
    found: list[tuple[Field, Any]] = []
    for f in fields(cls):
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            found.extend(option_fields(f.default_factory))  # type: ignore[arg-type]
        elif "cli" in f.metadata:
            found.append((f, hints[f.name]))
    return found


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    classes: type | Mapping[str, type],
    *,
    groups: dict[str, argparse._ArgumentGroup] | None = None,
    skip: Sequence[str] = (),
    only: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
) -> list[Flag]:
    """Add one flag per flagged field of ``classes``; returns them for :func:`given`.

    Args:
        parser: Where flags without a ``group`` go; named groups are created on it (a group takes them all).
        classes: One options class, or several by label (``{"base": BaseOptions, "light": LightOptions}``):
            a field they share is one flag, and differing defaults are shown per label.
        groups: Argument groups by title, shared between calls so that flags of several classes meet there.
        skip: Field names not to add (the command adds them its own way).
        only: The field names to add, if not all.
        rename: Group titles to show under another title (Light's options under train-light's own).
    """
    labelled = {"": classes} if isinstance(classes, type) else dict(classes)
    groups = {} if groups is None else groups
    seen: dict[str, tuple[Field, Any, dict[str, Any]]] = {}
    for label, cls in labelled.items():
        instance_defaults = _defaults(cls)
        for f, hint in option_fields(cls):
            if f.name in skip or (only is not None and f.name not in only):
                continue
            entry = seen.setdefault(f.name, (f, hint, {}))
            entry[2][label] = instance_defaults.get(f.name)
    flags = []
    for name, (f, hint, defaults) in seen.items():
        meta = f.metadata["cli"]
        target = parser
        title = (rename or {}).get(meta.get("group"), meta.get("group"))
        if title and isinstance(parser, argparse.ArgumentParser):
            if title not in groups:
                groups[title] = parser.add_argument_group(title)
            target = groups[title]
        option = "--" + (meta.get("name") or name.replace("_", "-"))
        kwargs, made = _argument(name, option, hint, meta)
        kwargs["help"] = _help(meta, defaults, made.kind)
        target.add_argument(option, dest=name, default=None, **kwargs)
        flags.append(made)
    return flags


def given(args: argparse.Namespace, flags: Sequence[Flag]) -> dict[str, Any]:
    """The values of the flags the user gave, as field values (unset flags are left out).

    Raises:
        ConfigError: A ``NAME=VALUE`` whose value is not of the mapping's type.
    """
    values: dict[str, Any] = {}
    for made in flags:
        value = getattr(args, made.dest, None)
        if value is None:
            continue
        if made.kind == "append":
            value = tuple(value)
        elif made.kind == "pairs":
            converted = {}
            for key, text in value:
                try:
                    converted[key] = made.convert(text) if made.convert else text
                except ValueError as exc:
                    raise ConfigError(f"{made.option} {key}={text}: not a number") from exc
            value = converted
        values[made.dest] = value
    return values


def _argument(name: str, option: str, hint: Any, meta: Mapping[str, Any]) -> tuple[dict[str, Any], Flag]:
    hint = _optional_removed(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    kwargs: dict[str, Any] = {}
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    choices = meta.get("choices")
    if meta.get("type") is not None:
        kwargs["type"] = meta["type"]
        made = Flag(name, option, "value")
    elif hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        made = Flag(name, option, "bool")
    elif origin is typing.Literal:
        choices = choices or args
        kwargs["type"] = type(args[0])
        made = Flag(name, option, "value")
    elif origin in (tuple, list, Sequence) and args:
        kwargs.update(action="append", type=args[0] if args[0] is not Ellipsis else str)
        made = Flag(name, option, "append")
    elif origin in (dict, Mapping) or hint in (dict, Mapping):
        kwargs.update(action="append", type=pair)
        kwargs.setdefault("metavar", "NAME=VALUE")
        made = Flag(name, option, "pairs", args[1] if len(args) == 2 and args[1] is not str else None)
    elif hint in (int, float, str):
        kwargs["type"] = hint
        made = Flag(name, option, "value")
    else:
        raise TypeError(f"{name}: no command-line flag for a field of type {hint!r}")
    if choices:
        kwargs["choices"] = tuple(choices)
    return kwargs, made


def _optional_removed(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _defaults(cls: type) -> dict[str, Any]:
    """Every field's default, option groups' fields included (those without one are left out)."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            out.update(_defaults(f.default_factory))  # type: ignore[arg-type]
        elif f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _help(meta: Mapping[str, Any], defaults: Mapping[str, Any], kind: str) -> str:
    text = meta["help"].replace("%", "%%")
    if meta.get("default_text") is not None:
        shown = meta["default_text"]
    else:
        parts = {label: _shown(value, kind) for label, value in defaults.items()}
        values = set(parts.values()) - {None}
        if not values:
            shown = ""
        elif len(values) == 1 and len(parts) == len([v for v in parts.values() if v is not None]):
            shown = values.pop()
        else:
            shown = ", ".join(f"{value} for {label}" for label, value in parts.items() if value is not None)
    return f"{text} (default: {shown})" if shown else text


def _shown(value: Any, kind: str) -> str | None:
    if value is None or (isinstance(value, (Mapping, tuple, list)) and not value):
        return None
    if kind == "bool":
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return None
    return str(value)
