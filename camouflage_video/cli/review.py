"""``camouflage-video review VIDEO --tracks tracks.json -o review.html``: the page a reviewer corrects a run on."""

from __future__ import annotations

import argparse
import sys

from camouflage_video.cli.run_options import add_messages


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "review", help="write a self-contained HTML page to review a run's tracks and export corrections",
        description="The page shows the anonymized frames (rendered from the tracks file; never original face "
                    "pixels) with every box and track; the reviewer adds, moves, resizes and deletes boxes over "
                    "frame ranges, marks tracks kept or removed, and exports regions.json for "
                    "'anonymize VIDEO --tracks-in tracks.json --regions regions.json'. See docs/redaction.md.",
    )
    p.add_argument("video", help="the video the tracks file was made from")
    p.add_argument("--tracks", required=True, metavar="PATH", help="the run's tracks.json (--tracks-out)")
    p.add_argument("-o", "--output", default="review.html", metavar="PATH", help="the page (default: review.html)")
    p.add_argument("--regions", metavar="PATH", help="an earlier regions.json to start from")
    p.add_argument("--max-frames", type=int, default=400, metavar="N",
                   help="frames embedded at most, evenly spaced (default: 400)")
    add_messages(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.errors import ConfigError
    from camouflage_video.redaction.review import render_review

    if args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    page = render_review(args.video, args.tracks, args.output, regions=args.regions, max_frames=args.max_frames)
    if not args.quiet:
        print(f"{page}: open it in a browser; export regions.json from it", file=sys.stderr)
    return 0
