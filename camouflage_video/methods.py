"""The generative methods by name: each one's options class, the components it needs and its builder.

``config`` and the CLI look a method up here; nothing below this layer (models, annotators, pipelines)
imports it, and nothing registers itself: the table is written out once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from camouflage_video.errors import ConfigError
from camouflage_video.models import PRESETS
from camouflage_video.options import read_toml
from camouflage_video.pipelines import camouflage_base, camouflage_light
from camouflage_video.pipelines.anonymizer import Anonymizer


@dataclass(frozen=True)
class Method:
    """One generative method.

    Attributes:
        name: ``--method`` value and ``models`` preset.
        options: Its options dataclass (with a ``from_mapping`` classmethod).
        components: The component names a given options object needs.
        build: Loads the components and returns the anonymizer, from ``AnonymizeConfig.generative``.

    Examples:
        >>> METHODS["light"].options.__name__
        'LightOptions'
    """

    name: str
    options: type
    components: Callable[[Any], list[str]]
    build: Callable[[Mapping[str, Any]], Anonymizer]

    def parse(self, generative: Mapping[str, Any]) -> Any:
        """The method's options: defaults, then the TOML file at ``generative["config"]``, then the other keys."""
        return self.options.from_mapping(generative)


METHODS: dict[str, Method] = {
    "base": Method("base", camouflage_base.BaseOptions, camouflage_base.needed_components,
                   camouflage_base.build_base_anonymizer),
    "light": Method("light", camouflage_light.LightOptions, camouflage_light.needed_components,
                    camouflage_light.build_light_anonymizer),
}


def method_options(method: str, generative: Mapping[str, Any]) -> Any | None:
    """The options of generative ``method``; ``None`` for a classic method, which has none."""
    return METHODS[method].parse(generative) if method in METHODS else None


def build_generative(method: str, generative: Mapping[str, Any]) -> Anonymizer:
    """The anonymizer of generative ``method`` with its models loaded."""
    return METHODS[method].build(generative)


def selected_components(preset: str, generative: Mapping[str, Any]) -> tuple[list[str], dict[str, str], str | None]:
    """Components a method's configuration needs, their configured specs and the models folder."""
    if preset in METHODS:
        options = METHODS[preset].parse(generative)
        names = METHODS[preset].components(options)
        if preset == "light" and "t2i-adapter" not in options.models:
            names.remove("t2i-adapter")  # no public checkpoint: train-light makes it (and needs the others)
        return names, dict(options.models), options.models_dir
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    config = read_toml(generative["config"]) if generative.get("config") else {}
    specs = {**config.get("models", {}), **generative.get("models", {})}
    return list(PRESETS[preset]), specs, generative.get("models_dir") or config.get("models_dir")
