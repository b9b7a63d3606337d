"""Flags generated from the options dataclasses: each default lives in its dataclass, given flags set fields."""

from __future__ import annotations

import argparse

import pytest

from camouflage_video.cli import build_parser, config_from_args
from camouflage_video.cli.flags import add_flags, given, option_fields
from camouflage_video.cli.run_options import generative_from_args, stream_options_from_args
from camouflage_video.config import AnonymizeConfig
from camouflage_video.errors import ConfigError
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.stream import StreamOptions
from camouflage_video.streaming import Backoff


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def help_of(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return " ".join(sub.format_help().split())  # unwrapped


def test_no_flags_give_the_dataclass_defaults():
    args = parse("anonymize", "clip.mp4")
    assert config_from_args(args) == AnonymizeConfig()
    assert generative_from_args(args) == {}
    assert stream_options_from_args(args) == StreamOptions()


def test_given_flags_set_their_fields_and_nothing_else():
    config = config_from_args(parse(
        "dataset", "in", "out", "--mask-scale", "1.5", "--no-track", "--shape", "box", "--crf", "20",
        "--verify-every", "7", "--no-audio", "--method", "pixelate", "--min-face", "0",
    ))
    assert config == AnonymizeConfig(method="pixelate", mask_scale=1.5, track=False, shape="box", verify_every=7,
                                     audio=False, min_face=0, encoder=EncoderOptions(crf=20))


def test_every_flagged_field_has_a_flag_on_anonymize():
    options = {s for a in build_parser()._subparsers._group_actions[0].choices["anonymize"]._actions
               for s in a.option_strings}
    for cls in (AnonymizeConfig, StreamOptions):
        for f, _ in option_fields(cls):
            name = "--" + (f.metadata["cli"]["name"] or f.name.replace("_", "-"))
            assert name in options, name


def test_help_shows_each_dataclass_default_once_per_method():
    text = help_of("anonymize")
    assert "grow face boxes by this factor (default: 1.3)" in text
    assert f"(default: {AnonymizeConfig.verify_every})" in text
    assert "(default: 768 for base, 512 for light)" in text  # BaseOptions and LightOptions differ
    assert "first wait before reconnecting a lost feed; doubles each attempt (default: 1)" in text
    assert "give up after N failed attempts in a row (default: retry forever)" in text


def test_generative_flags_are_left_unset_for_the_toml_config_to_fill():
    args = parse("anonymize", "clip.mp4", "--method", "base", "--steps", "4", "--control-scale", "depth=0.5",
                 "--model", "unet=some/repo", "--identity-model", "id/repo", "--annotate-every", "2")
    assert generative_from_args(args) == {
        "steps": 4, "control_scales": {"depth": 0.5}, "annotate_every": 2,
        "models": {"unet": "some/repo", "identity": "id/repo"},
    }


def test_a_mapping_value_that_is_not_a_number_is_one_config_error():
    with pytest.raises(ConfigError, match="--control-scale depth=strong: not a number"):
        generative_from_args(parse("anonymize", "clip.mp4", "--control-scale", "depth=strong"))


def test_stream_flags_build_stream_options_with_their_backoff():
    options = stream_options_from_args(parse(
        "anonymize", "rtsp://cam/1", "--rtsp-transport", "udp", "--reconnect-delay", "0.5", "--max-reconnects", "3",
        "--input-option", "video_size=1280x720",
    ))
    assert options == StreamOptions(transport="udp", reconnect=Backoff(initial=0.5, attempts=3),
                                    input_options={"video_size": "1280x720"})


def test_an_input_option_without_a_value_never_echoes_it():
    with pytest.raises(ConfigError) as caught:
        stream_options_from_args(parse("anonymize", "rtsp://cam/1", "--input-option", "secret-token"))
    assert "secret-token" not in str(caught.value)


def test_train_light_flags_fill_its_options_and_light_conditioning():
    from camouflage_video.training.light import TrainLightOptions

    args = parse("train-light", "faces/", "--output", "ckpt/", "--max-steps", "10", "--ip-adapter-scale", "0",
                 "--model", "unet=u/repo", "--gradient-checkpointing")
    options = TrainLightOptions.from_mapping({"data_dir": args.data_dir, "output": args.output,
                                              **given(args, args.train_flags)})
    assert (options.max_steps, options.conditioning.ip_adapter_scale, options.gradient_checkpointing) == (10, 0, True)
    assert options.models == {"unet": "u/repo"}
    assert "conditioning (keep equal to the anonymize settings)" in help_of("train-light")


def test_a_field_of_a_type_without_a_flag_is_refused_when_the_parser_is_built():
    from dataclasses import dataclass, field

    from camouflage_video.options import flag

    @dataclass(frozen=True)
    class Odd:
        pairs: set = field(default_factory=set, metadata=flag("a set"))

    with pytest.raises(TypeError, match="no command-line flag"):
        add_flags(argparse.ArgumentParser(), Odd)


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "4"], "--steps: options of --method base and light, not of --method blur"),
    (["--method", "pixelate", "--model", "unet=a/b"], "--model: options of --method base and light"),
    (["--config", "settings.toml"], "--config: options of --method base and light, not of --method blur"),
    (["--person-margin", "0.1"], "--person-margin does nothing without --keep-person or --only-person"),
    (["--no-track", "--hold-frames", "5"], "--hold-frames does nothing without tracking"),
    (["--no-verify", "--verify-every", "5"], "--verify-every does nothing without --verify"),
])
def test_a_flag_the_rest_of_the_command_makes_do_nothing_is_refused(args, message):
    with pytest.raises(ConfigError, match=message):
        config_from_args(parse("anonymize", "clip.mp4", *args))


def test_flags_that_act_together_are_accepted():
    config = config_from_args(parse("anonymize", "clip.mp4", "--method", "base", "--steps", "4", "--verify-every",
                                    "5", "--hold-frames", "3"))
    assert (config.generative["steps"], config.verify_every, config.hold_frames) == (4, 5, 3)
