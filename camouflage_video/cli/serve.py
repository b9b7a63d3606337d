"""``camouflage-video serve CAMERAS.toml``: many cameras in one service, with metrics (docs/live.md)."""

from __future__ import annotations

import argparse
import sys

from camouflage_video.cli.run_options import add_messages

EXAMPLE = """\
cameras.toml:
  metrics = "127.0.0.1:9108"            # Prometheus text format at http://127.0.0.1:9108/metrics
  method = "blur"                       # defaults for every camera
  [[camera]]
  name = "door"
  input = "rtsp://user:pass@10.0.0.5/stream1"
  outputs = ["rtmp://127.0.0.1/live/door", "recordings/door.mp4"]
  segment = "10m"                       # door_YYYYmmdd-HHMMSS.mp4 files, each playable

SIGINT or SIGTERM finalizes every recording and exits with 130. See docs/live.md for every key.
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "serve", help="run many live cameras in one service, each in its own process, with /metrics",
        description="Read, anonymize, record and restream every camera of a TOML file. Each camera runs in a "
                    "process of its own (one that fails or stalls never stops the others; it is restarted with "
                    "backoff); recordings can be cut into playable segments; /metrics serves Prometheus text "
                    "format. The file is checked whole before anything starts.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("cameras", metavar="CAMERAS.toml", help="the cameras file")
    p.add_argument("--check", action="store_true", help="check the cameras file and exit without starting")
    add_messages(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.config import check_dependencies
    from camouflage_video.serve import load_config, serve

    config = load_config(args.cameras)
    if args.check:
        for camera in config.cameras:
            check_dependencies(camera.config)
        where = f"; metrics at http://{config.metrics[0]}:{config.metrics[1]}/metrics" if config.metrics else ""
        print(f"{args.cameras}: {len(config.cameras)} camera{'s' if len(config.cameras) != 1 else ''} "
              f"({', '.join(c.name for c in config.cameras)}){where}", file=sys.stderr)
        return 0
    serve(config)  # until SIGINT/SIGTERM, which main() turns into exit code 130
    return 0
