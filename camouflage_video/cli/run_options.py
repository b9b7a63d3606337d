"""Flags of every command that anonymizes (``anonymize``, ``dataset``), generated from the options dataclasses.

``AnonymizeConfig`` (and its ``EncoderOptions``), the generative methods' ``BaseOptions``/``LightOptions`` and
``StreamOptions`` declare their flags as field metadata; here they become argparse flags that default to
"not given", and what was given becomes the dataclass again. Only what is not an option field is written by
hand: the TOML config, model-source shortcuts, ``--input-option``, stats and messages.
"""

from __future__ import annotations

import argparse
from typing import Any

from camouflage_video.cli.flags import add_flags, given
from camouflage_video.config import DETECTION, GENERATIVE_METHODS, OUTPUT, RUN, AnonymizeConfig
from camouflage_video.errors import ConfigError
from camouflage_video.options import GENERATIVE, from_mapping
from camouflage_video.sources.stream import LIVE, StreamOptions


#: The options classes of the generative methods, by method name: their flags are shared.
def generative_classes() -> dict[str, type]:
    from camouflage_video.pipelines.camouflage_base import BaseOptions
    from camouflage_video.pipelines.camouflage_light import LightOptions

    return {"base": BaseOptions, "light": LightOptions}


def add_run_options(parser: argparse.ArgumentParser, *, live: bool = False) -> None:
    """The options of a run: anonymization, detection, generative methods, output (and live streams)."""
    groups = {title: parser.add_argument_group(title) for title in (RUN, DETECTION, GENERATIVE, OUTPUT)}
    if live:
        groups[LIVE] = parser.add_argument_group(LIVE)
    run_flags = add_flags(parser, AnonymizeConfig, groups=groups, skip=() if live else ("gop",))
    generative_flags = add_model_sources(parser, groups) + add_flags(
        parser, generative_classes(), groups=groups, skip=("prompt", "models", "models_dir"))
    groups[OUTPUT].add_argument("--stats", metavar="PATH", help="write run statistics as JSON")
    stream_flags = add_stream_options(parser, groups) if live else []
    add_messages(parser)
    parser.set_defaults(run_flags=run_flags, generative_flags=generative_flags, stream_flags=stream_flags)


def add_model_sources(parser: argparse.ArgumentParser, groups: dict[str, Any] | None = None) -> list:
    """Where the generative methods' models come from (also the ``models`` command's options)."""
    groups = {} if groups is None else groups
    flags = add_flags(parser, generative_classes(), groups=groups, only=("prompt", "models", "models_dir"))
    g = groups.setdefault(GENERATIVE, parser.add_argument_group(GENERATIVE))
    g.add_argument("--config", metavar="TOML", help="TOML file with model sources and generation options")
    g.add_argument("--identity-model", metavar="SPEC",
                   help="identity ControlNet checkpoint (default: the public tile ControlNet, an approximation)")
    g.add_argument("--t2i-adapter", metavar="SPEC",
                   help="--method light: attribute T2I-Adapter (a train-light output folder; no public checkpoint)")
    parser.set_defaults(generative_flags=flags)
    return flags


def add_stream_options(parser: argparse.ArgumentParser, groups: dict[str, Any]) -> list:
    """How live inputs are opened and reconnected (``StreamOptions``); see docs/live.md."""
    flags = add_flags(parser, StreamOptions, groups=groups)
    g = groups[LIVE]
    g.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg demuxer/protocol option, e.g. video_size=1280x720 for a webcam; repeatable")
    g.add_argument("--stats-interval", type=float, default=5.0, metavar="S",
                   help="rewrite --stats every S seconds during a live run (default: 5)")
    return flags


def add_messages(parser: argparse.ArgumentParser) -> None:
    v = parser.add_argument_group("messages")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    v.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")


#: Flags that only act together with another setting: (flag, field, what it needs, whether the run has it).
_NEEDS = (
    ("--person-margin", "person_margin", "--keep-person or --only-person",
     lambda c: bool(c.keep_person or c.only_person)),
    ("--hold-frames", "hold_frames", "tracking (it is off: --no-track)", lambda c: c.track),
    ("--verify-margin", "verify_margin", "--verify (it is off)", lambda c: c.verify),
    ("--verify-every", "verify_every", "--verify (it is off)", lambda c: c.verify),
)


def config_from_args(args: argparse.Namespace) -> AnonymizeConfig:
    """The run's ``AnonymizeConfig``: the flags that were given over the dataclass defaults.

    Raises:
        ConfigError: A flag was given that the rest of the command makes do nothing (a user who gives
            ``--steps`` with ``--method blur`` expects it to matter).
    """
    run, generative = given(args, args.run_flags), generative_from_args(args)
    config = from_mapping(AnonymizeConfig, {**run, "generative": generative}, tables=())
    for option, name, needs, present in _NEEDS:
        if name in run and not present(config):
            raise ConfigError(f"{option} does nothing without {needs}")
    if config.method not in GENERATIVE_METHODS and generative:  # --config too: its TOML is the methods' options
        names = {"models": "--model", "control_scales": "--control-scale"}
        flags = ", ".join(names.get(key, "--" + key.replace("_", "-")) for key in sorted(generative))
        raise ConfigError(f"{flags}: options of --method base and light, not of --method {config.method}")
    return config


def generative_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The generative flags that were given, as ``AnonymizeConfig.generative`` (names in snake_case)."""
    options = given(args, getattr(args, "generative_flags", []))
    if getattr(args, "config", None):
        options["config"] = args.config
    sources = dict(options.pop("models", {}))
    if getattr(args, "identity_model", None):
        sources["identity"] = args.identity_model
    if getattr(args, "t2i_adapter", None):
        sources["t2i-adapter"] = args.t2i_adapter
    if sources:
        options["models"] = sources
    return options


def stream_options_from_args(args: argparse.Namespace) -> StreamOptions:
    """The ``StreamOptions`` of live inputs from the flags that were given."""
    options = {}
    for item in args.input_option:
        key, sep, value = item.partition("=")
        if not sep or not key:  # the value may be a secret (a token, a password): never echo it
            raise ConfigError(f"--input-option {key + '=***' if sep else '***'}: expected KEY=VALUE")
        options[key] = value
    return from_mapping(StreamOptions, {**given(args, args.stream_flags), "input_options": options}, tables=())
