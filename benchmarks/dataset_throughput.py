"""Dataset-mode throughput: 1 vs 2 local workers, and the Ray engine against the local engine.

The dataset is many small files (short clips and photos made from the public-domain astronaut portrait),
where per-file overhead matters most. Every configuration runs into a fresh output folder; the runs are
interleaved and repeated, and the median wall time is reported, because this machine is shared.
Ray's cluster start-up is measured separately: with ``--address auto`` a cluster is already running.

Run: python benchmarks/dataset_throughput.py   (PYTHONPATH=. from a checkout that is not installed)
Writes the "Dataset throughput (issue 6)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
from _common import WORK, write_results

from camouflage_video import __version__
from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset import DatasetOptions, run_dataset
from camouflage_video.samples import astronaut, make_sample_video


def make_dataset(root: Path, clips: int, photos: int) -> Path:
    """``clips`` 1 s 320x180 clips with audio and ``photos`` 256x256 photos in a few folders."""
    if root.exists():
        shutil.rmtree(root)
    face = astronaut()
    for i in range(clips):
        path = root / f"clips/group{i % 4}/clip{i:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_sample_video(path, seconds=1.0, fps=Fraction(25), size=(320, 180))
    for i in range(photos):
        path = root / f"photos/set{i % 4}/photo{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image = cv2.resize(face[i % 64 :, i % 64 :], (256, 256))
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root


def timed(raw: Path, out: Path, config: AnonymizeConfig, options: DatasetOptions) -> tuple[float, int]:
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    summary = run_dataset(raw, out, config, options)
    seconds = time.perf_counter() - started
    if summary.failed or summary.processed == 0:
        raise SystemExit(f"benchmark run failed: {summary.failures}")
    return seconds, summary.frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24, help="number of 1 s clips (default: 24)")
    parser.add_argument("--photos", type=int, default=24, help="number of photos (default: 24)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (default: 3)")
    parser.add_argument("--work", type=Path, default=WORK / "dataset", help="scratch folder")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    parser.add_argument("--note", help="a remark to record with the results (load on the machine, ...)")
    parser.add_argument("--dry-run", action="store_true", help="print the results, do not write RESULTS.md")
    args = parser.parse_args(argv)

    raw = make_dataset(args.work / "raw", args.clips, args.photos)
    config = AnonymizeConfig(method="blur")
    runs: dict[str, DatasetOptions] = {
        "local, 1 worker": DatasetOptions(workers=1),
        "local, 2 workers": DatasetOptions(workers=2),
    }
    ray_start = None
    if not args.no_ray:
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
        ray_start = time.perf_counter() - started
        runs["ray, 2 workers"] = DatasetOptions(engine="ray", workers=2)

    times: dict[str, list[float]] = {name: [] for name in runs}
    frames = 0
    for _ in range(args.repeats):
        for name, options in runs.items():  # interleaved, so load from other users hits all alike
            seconds, frames = timed(raw, args.work / "out", config, options)
            times[name].append(seconds)
            print(f"{name}: {seconds:.2f} s", file=sys.stderr)
    if ray_start is not None:
        import ray

        ray.shutdown()

    files = args.clips + args.photos
    median = {name: statistics.median(t) for name, t in times.items()}
    lines = [
        f"camouflage-video {__version__}. Dataset: {args.clips} clips (1 s, 320x180, 25 fps, AAC) and "
        f"{args.photos} photos (256x256) in 8 folders, {frames} frames in all; method blur, default detection "
        f"(det-size 960). Median of {args.repeats} interleaved runs, each into a fresh output folder, worker "
        "start-up (process spawn, imports, model load) included.",
        "",
        "| engine | wall s (median) | runs | files/s | frames/s | speed vs local 1 worker | time vs local 2 workers |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, seconds in median.items():
        runs_text = ", ".join(f"{t:.2f}" for t in times[name])
        lines.append(
            f"| {name} | {seconds:.2f} | {runs_text} | {files / seconds:.1f} | {frames / seconds:.0f} | "
            f"{median['local, 1 worker'] / seconds:.2f}x | {seconds / median['local, 2 workers']:.2f}x |"
        )
    if ray_start is not None:
        ratio = median["ray, 2 workers"] / median["local, 2 workers"]
        verdict = "met" if ratio <= 1.3 else "NOT met"
        lines += [
            "",
            f"Ray/local wall-time ratio at 2 workers: **{ratio:.2f}** (goal <= 1.3: {verdict}). Starting the local "
            f"Ray cluster itself took {ray_start:.1f} s, not counted above (`--address auto` reuses a running "
            "cluster).",
        ]
    if args.note:
        lines += ["", args.note]
    body = "\n".join(lines)
    print(body)
    if not args.dry_run:
        write_results("Dataset throughput (issue 6)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
