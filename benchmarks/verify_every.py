"""Does checking each face track every 50 frames (``--verify-every 50``, the default) leave faces that every
frame's check would have escalated?

Between two checks of a track its face keeps the level it reached (blur, then stronger). A face that becomes
easier to recognize mid-track (turning to the camera, coming out of shadow) is seen again only at the next
check, or when it has grown by a quarter. This measures what that costs against checking more often.

For each real clip of ../shared/media/videos (its first ``--frames`` frames, copied losslessly, so that the
anonymizer and the evaluator see the same original), the default blur with verification is run once per
``--every`` value, and each output is scored by ``evaluate`` (calibrated rule, every frame analysed): faces
re-identified (distance < 0.6 and recovery >= 0.5, what ``evaluate`` calls a leak), faces that match and keep
more than the verification margin (recovery >= 0.25: what a check would have escalated), the highest
recovery, and the time of the whole run.

Usage: python benchmarks/verify_every.py [--frames 120] [--every 50 10 1] [--clips asl MOT20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import MEDIA, write_results  # noqa: E402
from camouflage_video.api import anonymize  # noqa: E402
from camouflage_video.config import AnonymizeConfig  # noqa: E402
from camouflage_video.evaluation import DlibRecognizer, EvaluationConfig, Evaluator  # noqa: E402

MARGIN = AnonymizeConfig().verify_margin


def trimmed(clip: Path, frames: int, out: Path) -> int:
    """The first ``frames`` pictures of ``clip`` as a lossless FFV1 file at 25 fps; how many there were."""
    with av.open(str(clip)) as source, av.open(str(out), "w") as target:
        stream = None
        count = 0
        for picture in source.decode(video=0):
            if stream is None:
                stream = target.add_stream("ffv1", rate=25)
                stream.width, stream.height, stream.pix_fmt = picture.width, picture.height, "bgr0"
            image = picture.to_ndarray(format="rgb24")
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgr0")
            frame.pts = count
            target.mux(stream.encode(frame))
            count += 1
            if count >= frames:
                break
        target.mux(stream.encode(None))
    return count


def score(original: Path, anonymized: Path, recognizer: DlibRecognizer) -> dict:
    result = Evaluator(EvaluationConfig(thumbnails=False), recognizer=recognizer).run(original, anonymized)
    faces = [f for f in result.faces if f.recovery is not None]
    recovery = np.array([f.recovery for f in faces]) if faces else np.zeros(0)
    return {
        "faces": len(faces),
        "leaks": sum(f.leak for f in faces),
        "over_margin": sum(bool(f.match and f.recovery >= MARGIN) for f in faces),
        "max": float(recovery.max()) if len(recovery) else 0.0,
        "p99": float(np.percentile(recovery, 99)) if len(recovery) else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--every", type=int, nargs="+", default=[50, 10, 1])
    parser.add_argument("--clips", nargs="+", help="only the clips whose names contain one of these")
    args = parser.parse_args()
    recognizer = DlibRecognizer()
    rows = []
    totals = {n: {"faces": 0, "leaks": 0, "over_margin": 0, "max": 0.0, "seconds": 0.0, "checks": 0,
                  "escalations": 0} for n in args.every}
    clips = sorted(p for p in (MEDIA / "videos").iterdir() if not p.name.startswith(".")
                   and (not args.clips or any(part in p.name for part in args.clips)))
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            original = Path(tmp) / f"{clip.stem}.mkv"
            frames = trimmed(clip, args.frames, original)
            for n in args.every:
                out = Path(tmp) / f"{clip.stem}_every{n}.mp4"
                start = time.perf_counter()
                stats = anonymize(original, out, AnonymizeConfig(verify_every=n), progress=False)
                seconds = time.perf_counter() - start
                verify = stats.to_dict()["model"]["verify"]
                s = score(original, out, recognizer)
                t = totals[n]
                for key in ("faces", "leaks", "over_margin"):
                    t[key] += s[key]
                t["max"] = max(t["max"], s["max"])
                t["seconds"] += seconds
                t["checks"] += verify["checks"]
                t["escalations"] += verify["escalations"]
                rows.append(f"| {clip.name} | {frames} | {n} | {s['faces']} | {s['leaks']} | {s['over_margin']} | "
                            f"{s['max']:.2f} | {s['p99']:.2f} | {verify['checks']} | {verify['escalations']} | "
                            f"{seconds:.1f} |")
                print(rows[-1], flush=True)
    base = totals[args.every[0]]["seconds"]
    body = (
        "Script: `benchmarks/verify_every.py`. Each real clip of ../shared/media/videos (its first "
        f"{args.frames} frames, copied losslessly), anonymized with the defaults (blur, verification with margin "
        f"{MARGIN}) once per `--verify-every N`, and scored by `evaluate` (calibrated rule, every frame): "
        "re-identified = distance < 0.6 and recovery >= 0.5; over the margin = matches and recovery >= "
        f"{MARGIN} (what a check there would have escalated). Checks and escalations are the run's own counts "
        "(`model.verify` in the stats).\n\n"
        "| clip | frames | N | faces scored | re-identified | over the margin | max recovery | p99 recovery | "
        "checks | escalations | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        + "\n".join(f"Every {n}: {t['faces']} faces scored, {t['leaks']} re-identified, {t['over_margin']} over the "
                    f"margin, highest recovery {t['max']:.2f}; {t['checks']} checks, {t['escalations']} escalations, "
                    f"run time {t['seconds'] / max(base, 1e-9):.2f}x of every {args.every[0]}."
                    for n, t in totals.items())
    )
    write_results("Verifying every N-th frame of a track (benchmarks/verify_every.py)", body)
    print(body)


if __name__ == "__main__":
    main()
