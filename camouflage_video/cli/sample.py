"""``camouflage-video sample``: a clip with a real (public-domain) face and audio to try the tool on."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser("sample", help="write a sample clip with a real face and audio")
    p.add_argument("-o", "--output", default="sample.mp4", help="output file (default: sample.mp4)")
    p.add_argument("--seconds", type=float, default=4.0, help="length in seconds (default: 4)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.samples import make_sample_video

    print(make_sample_video(args.output, seconds=args.seconds), file=sys.stderr)
    return 0
