"""``camouflage-video dataset``: a folder tree of videos and images, resumably, with a manifest."""

from __future__ import annotations

import argparse
import sys

from camouflage_video.cli.run_options import add_run_options, config_from_args
from camouflage_video.redact import one_line

EXAMPLES = """examples:
  camouflage-video dataset raw/ anonymized/ --method blur --workers 2
  camouflage-video dataset raw/ anonymized/ --method base --engine ray --address auto --gpus-per-worker 1
  camouflage-video dataset raw/ anonymized/ ...   # rerun: skips what is done, retries what failed

The output tree mirrors the input tree (same names; .avi, .gif and raw streams become .mp4).
anonymized/camouflage_manifest.jsonl records every input: content hash, output, method, configuration
hash, status, frames, fallback frames, error, seconds. Exit code 1 when any input failed.
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "dataset", help="anonymize a folder tree of videos and images, resumably", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="folder to read (recursively)")
    p.add_argument("output", help="folder to write: the same tree, plus the manifest")
    add_run_options(p)
    w = p.add_argument_group("dataset")
    w.add_argument("--workers", type=int,
                   help="worker processes (local, default 1) or Ray actors (default: fill the cluster)")
    w.add_argument("--engine", choices=("local", "ray"), default="local", help="where the work runs (default: local)")
    w.add_argument("--address", help="Ray cluster address, e.g. auto or ray://head:10001 (default: start a local Ray)")
    w.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each Ray worker reserves (default: 0)")
    w.add_argument("--cpus-per-worker", type=float, help="CPUs each Ray worker reserves (default: 1)")
    w.add_argument("--export-tracks", action="store_true",
                   help="write <output>.tracks.csv per input: frame, time, track id, face box (no biometric data)")
    w.add_argument("--copy-other", action="store_true",
                   help="copy files that are not videos or images (labels...) into the output; default: list them")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from camouflage_video.dataset import DatasetOptions, run_dataset
    from camouflage_video.dataset.manifest import RESERVED
    from camouflage_video.preflight import Write, check_writes

    if args.stats:  # before any work: a stats file over the manifest lost the record of a finished dataset
        kept = {Path(args.output) / name: f"the dataset's own {name}" for name in RESERVED}
        check_writes([Write("--stats file", Path(args.stats))], reads=[args.input], reserved=kept)

    from camouflage_video.errors import ConfigError

    if args.cpus_per_worker is not None and args.engine != "ray":  # the local engine has no reservations
        raise ConfigError("--cpus-per-worker needs --engine ray")
    options = DatasetOptions(
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=1.0 if args.cpus_per_worker is None else args.cpus_per_worker,
        export_tracks=args.export_tracks,
        copy_other=args.copy_other,
        progress=False if args.quiet else None,
    )
    summary = run_dataset(args.input, args.output, config_from_args(args), options)
    if args.stats:
        summary.write(args.stats)
    if not args.quiet or not summary.ok:
        _print_summary(summary)
    if summary.interrupted:
        print("camouflage-video: interrupted; finished files are recorded, rerun to resume", file=sys.stderr)
        return 130
    return 0 if summary.ok else 1


def _print_summary(summary: object) -> None:
    s = summary  # a DatasetSummary
    for name, error in s.failures[:20]:
        print(one_line(f"  failed: {name}: {error}"), file=sys.stderr)
    if len(s.failures) > 20:
        print(f"  ... and {len(s.failures) - 20} more (see the manifest)", file=sys.stderr)
    extra = f", {s.fallback_frames} fallback frames" if s.fallback_frames else ""
    others = ""
    if s.other:
        others = f", {s.other} other files ({s.copied} copied"
        others += f", {len(s.not_copied)} not copied: see the manifest" if s.not_copied else ""
        others += ")"
    if s.folder_links:
        others += f", {len(s.folder_links)} linked folders not followed"
    print(
        f"{s.output}: {s.processed} anonymized, {s.skipped} already done, {s.failed} failed of {s.media} videos "
        f"and images ({s.frames} frames{extra}){others}; manifest {s.manifest}",
        file=sys.stderr,
    )
