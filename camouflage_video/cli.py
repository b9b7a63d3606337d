"""Command line: ``camouflage-video anonymize|sample ...``. The only place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from camouflage_video import __version__
from camouflage_video.errors import CamouflageError
from camouflage_video.live import RedactingFilter, redact_url

logger = logging.getLogger("camouflage_video")

EXAMPLES = """examples:
  camouflage-video anonymize street.mp4                    # writes street_anonymized.mp4 with its audio
  camouflage-video anonymize street.mp4 -o out.mkv --method pixelate --mask-scale 1.4 --stats stats.json
  camouflage-video anonymize photos/ -o photos_anon/       # image folder, recursive, same relative paths
  camouflage-video anonymize rtsp://user:pass@cam/stream1 -o rtmp://127.0.0.1/live/anon -o rec.mp4  # live
  camouflage-video sample -o sample.mp4                    # a clip with a real (public-domain) face
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camouflage-video",
        description="Anonymize faces in videos, images, image folders and streams.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "anonymize", help="anonymize a video, image, image folder or stream", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("input", help="video file, image, image folder, or stream URL")
    run.add_argument(
        "-o", "--output", action="append", help="output path (default: <stem>_anonymized<ext>); repeatable"
    )
    add_run_options(run)
    add_live_options(run)
    run.set_defaults(func=cmd_anonymize)

    sample = commands.add_parser("sample", help="write a sample clip with a real face and audio")
    sample.add_argument("-o", "--output", default="sample.mp4", help="output file (default: sample.mp4)")
    sample.add_argument("--seconds", type=float, default=4.0, help="length in seconds (default: 4)")
    sample.set_defaults(func=cmd_sample)
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that anonymizes (``anonymize``, ``dataset``)."""
    from camouflage_video.config import ALL_METHODS

    g = parser.add_argument_group("anonymization")
    g.add_argument("--method", choices=ALL_METHODS, default="blur", help="how faces are anonymized (default: blur)")
    g.add_argument("--mask-scale", type=float, default=1.3, help="grow face boxes by this factor (default: 1.3)")
    g.add_argument("--shape", choices=("ellipse", "box"), default="ellipse", help="mask shape (default: ellipse)")
    g.add_argument("--on-error", choices=("fallback", "fail"), default="fallback",
                   help="a frame that fails: pixelate it whole (default) or stop with nothing written")
    d = parser.add_argument_group("face detection and tracking")
    d.add_argument("--thresh", type=float, default=0.2, help="detection threshold (default: 0.2)")
    d.add_argument("--det-size", type=int, default=960,
                   help="long side of the detection input in pixels, 0 for full resolution (default: 960)")
    d.add_argument("--nms", type=float, default=0.3, help="overlap above which boxes merge (default: 0.3)")
    d.add_argument("--hold-frames", type=int, default=10,
                   help="frames a lost face track stays obfuscated at its predicted place (default: 10)")
    d.add_argument("--no-track", action="store_true", help="detect frame by frame without tracking")
    d.add_argument("--detector-model", metavar="PATH", help="another CenterFace ONNX file")
    e = parser.add_argument_group("output")
    e.add_argument("--no-audio", action="store_true", help="drop the audio (kept by default)")
    e.add_argument("--codec", help="video encoder (default: libx264; libvpx-vp9 for .webm)")
    e.add_argument("--crf", type=int, default=18, help="encoder quality, lower is better (default: 18)")
    e.add_argument("--preset", default="veryfast", help="x264/x265 preset (default: veryfast)")
    e.add_argument("--stats", metavar="PATH", help="write run statistics as JSON")
    v = parser.add_argument_group("messages")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    v.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")


def add_live_options(parser: argparse.ArgumentParser) -> None:
    """Options of live inputs (RTSP/RTMP/HTTP/webcam) and restream outputs; see docs/live.md."""
    g = parser.add_argument_group("live streams")
    g.add_argument("--rtsp-transport", choices=("tcp", "udp"), default="tcp", help="RTSP transport (default: tcp)")
    g.add_argument("--open-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for a stream to connect (default: 10)")
    g.add_argument("--read-timeout", type=float, default=5.0, metavar="S",
                   help="seconds without data before a feed counts as lost (default: 5)")
    g.add_argument("--reconnect-delay", type=float, default=1.0, metavar="S",
                   help="first wait before reconnecting a lost feed; doubles each attempt (default: 1)")
    g.add_argument("--reconnect-max-delay", type=float, default=30.0, metavar="S",
                   help="longest wait between reconnection attempts (default: 30)")
    g.add_argument("--max-reconnects", type=int, metavar="N",
                   help="give up after N failed attempts in a row (default: retry forever)")
    g.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg demuxer/protocol option, e.g. video_size=1280x720 for a webcam; repeatable")
    g.add_argument("--gop", type=int, metavar="FRAMES", help="keyframe interval (default: 1 s for restreams)")
    g.add_argument("--stats-interval", type=float, default=5.0, metavar="S",
                   help="rewrite --stats every S seconds during a live run (default: 5)")


def source_options_from_args(args: argparse.Namespace) -> dict:
    from camouflage_video.errors import ConfigError
    from camouflage_video.live import Backoff

    options = {}
    for item in args.input_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--input-option {item!r}: expected KEY=VALUE")
        options[key] = value
    return {
        "transport": args.rtsp_transport,
        "open_timeout": args.open_timeout,
        "read_timeout": args.read_timeout,
        "reconnect": Backoff(
            initial=args.reconnect_delay, maximum=args.reconnect_max_delay, attempts=args.max_reconnects
        ),
        "input_options": options,
    }


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - AnonymizeConfig, imported lazily
    from camouflage_video.config import AnonymizeConfig
    from camouflage_video.sinks.video import EncoderOptions

    return AnonymizeConfig(
        method=args.method,
        thresh=args.thresh,
        det_size=args.det_size,
        nms=args.nms,
        mask_scale=args.mask_scale,
        shape=args.shape,
        track=not args.no_track,
        hold_frames=args.hold_frames,
        on_error=args.on_error,
        audio=not args.no_audio,
        encoder=EncoderOptions(codec=args.codec, crf=args.crf, preset=args.preset, gop=getattr(args, "gop", None)),
        detector_model=args.detector_model,
    )


def cmd_anonymize(args: argparse.Namespace) -> int:
    from camouflage_video.api import anonymize

    stats = anonymize(
        args.input,
        args.output,
        config_from_args(args),
        progress=False if args.quiet else None,
        stats_path=args.stats,
        source_options=source_options_from_args(args),
        stats_interval=args.stats_interval,
    )
    if not args.quiet:
        outputs = ", ".join(o.get("uri", "?") for o in stats.outputs)
        extra = f", {stats.fallback_frames} fallback" if stats.fallback_frames else ""
        extra += f", {stats.corrupt_frames} corrupt skipped" if stats.corrupt_frames else ""
        if stats.live:
            extra += f", {stats.live['frames_dropped']} dropped as stale, {stats.live['reconnects']} reconnects"
        print(f"{outputs}: {stats.frames_out} frames, {stats.faces_detected} faces{extra}", file=sys.stderr)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from camouflage_video.samples import make_sample_video

    print(make_sample_video(args.output, seconds=args.seconds), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failure, 2 usage, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING,
        format="camouflage-video: %(levelname)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())  # stream URLs carry passwords; no log line may show them
    previous = signal.signal(signal.SIGTERM, _interrupt) if _in_main_thread() else None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("camouflage-video: interrupted; what was processed has been saved", file=sys.stderr)
        return 130
    except CamouflageError as exc:
        if debug:
            logger.exception("failed")
        print(f"camouflage-video: error: {redact_url(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            raise
        print(f"camouflage-video: error: {type(exc).__name__}: {redact_url(str(exc))}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a service manager stopping us) takes the Ctrl-C path: finalize what was processed."""
    raise KeyboardInterrupt


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    raise SystemExit(main())
