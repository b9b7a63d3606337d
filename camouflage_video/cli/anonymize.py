"""``camouflage-video anonymize``: a video, image, image folder or stream."""

from __future__ import annotations

import argparse
import sys

from camouflage_video.cli.run_options import add_run_options, config_from_args, stream_options_from_args

EXAMPLES = """examples:
  camouflage-video anonymize street.mp4                    # writes street_anonymized.mp4 with its audio
  camouflage-video anonymize street.mp4 -o out.mkv --method pixelate --mask-scale 1.4 --stats stats.json
  camouflage-video anonymize photos/ -o photos_anon/       # image folder, recursive, same relative paths
  camouflage-video anonymize rtsp://user:pass@cam/stream1 -o rtmp://127.0.0.1/live/anon -o rec.mp4  # live
  camouflage-video sample -o sample.mp4                    # a clip with a real (public-domain) face
  camouflage-video anonymize clip.mp4 --method base --anonymization-scale 1.25 --seed 7   # CAMOUFLaGE-Base, GPU
  camouflage-video models fetch base                       # download the models of --method base
  camouflage-video anonymize clip.mp4 --method light --t2i-adapter ckpt/   # CAMOUFLaGE-Light (train-light makes ckpt/)
  camouflage-video dataset raw/ anonymized/ --workers 2    # a whole tree, with a manifest; rerun to resume
  camouflage-video evaluate clip.mp4 clip_anonymized.mp4 --report report.html   # re-identification risk
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "anonymize", help="anonymize a video, image, image folder or stream", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="video file, image, image folder, or stream URL")
    p.add_argument("-o", "--output", action="append",
                   help="output path (default: <stem>_anonymized<ext>); repeatable")
    add_run_options(p, live=True)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.api import anonymize

    stats = anonymize(
        args.input,
        args.output,
        config_from_args(args),
        progress=False if args.quiet else None,
        stats_path=args.stats,
        source_options=stream_options_from_args(args),
        stats_interval=args.stats_interval,
    )
    if not args.quiet:
        outputs = ", ".join(o.get("uri", "?") for o in stats.outputs)
        extra = f", {stats.fallback_frames} fallback" if stats.fallback_frames else ""
        extra += f", {stats.corrupt_frames} corrupt skipped" if stats.corrupt_frames else ""
        extra += f", {stats.damaged_frames} damaged pixelated whole" if stats.damaged_frames else ""
        extra += f", {len(stats.not_read)} media files not read (see the warning)" if stats.not_read else ""
        if stats.live:
            extra += f", {stats.live['frames_dropped']} dropped as stale, {stats.live['reconnects']} reconnects"
        print(f"{outputs}: {stats.frames_out} frames, {stats.faces_detected} faces{extra}", file=sys.stderr)
    return 0
