"""``camouflage-video recover PATH``: publish what a killed live run or service left of its recordings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from camouflage_video.cli.run_options import add_messages
from camouflage_video.interrupts import Finalized


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "recover", help="publish the recordings that a killed live run or service left under temporary names",
        description="A live run or a service camera killed outright (kill -9, power loss, out of memory) leaves "
                    "its recording under a hidden temporary name. The next run to that name publishes it; this "
                    "does the same without a run. Each recording is cut after its last complete second, checked "
                    "to play and published beside its name (rec-1.mp4, ...) or, for a segment, under its own "
                    "name; never over a file. A stopped recording that does not play is deleted; one its writer "
                    "still holds is left alone, and one that cannot be read or published is left as it is (exit "
                    "1). The published files are printed, one per line.",
    )
    p.add_argument("path", nargs="+", metavar="PATH",
                   help="a recording's file name (rec.mp4, recordings/door.mp4: its segments too) or a folder "
                        "(every recording in it)")
    add_messages(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.sinks.segments import check_recovery_path, recover_recordings

    paths = [Path(p) for p in args.path]
    for path in paths:  # every name checked before anything is published
        check_recovery_path(path)
    published, failed = 0, 0
    for path in paths:
        try:
            report = recover_recordings(path)
        except KeyboardInterrupt:
            # What was published stays; the recording being copied is still under its temporary name, whole.
            if published:
                raise Finalized from None
            raise
        for name in report.recovered:
            print(name, flush=True)
        published += len(report.recovered)
        failed += len(report.failed)  # each logged with its reason
        if args.quiet:
            continue
        for temporary, pid in report.in_progress:
            print(f"camouflage-video: {temporary.name}: still being written (process {pid}); left alone",
                  file=sys.stderr)
        if report.removed:
            print(f"camouflage-video: {path}: deleted {len(report.removed)} temporary file(s) of a stopped "
                  "recording that did not play", file=sys.stderr)
        if not report.recovered and not report.failed:
            print(f"camouflage-video: {path}: nothing to recover", file=sys.stderr)
    if failed:
        print(f"camouflage-video: error: {failed} recording(s) could not be recovered; they are left as they are",
              file=sys.stderr)
        return 1
    return 0
