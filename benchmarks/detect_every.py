"""Does detecting every N-th frame (``--detect-every N``) leave any face uncovered that detecting every frame covers?

For each real clip of ../shared/media/videos: one run detecting every frame is the reference. Every face box
it *detected* (not a held or back-filled one) is a face that is visible there. Runs with ``--detect-every N``
then cover each frame with everything they pass to the anonymizer (detections, the tracker's held boxes,
the back-fill's interpolated and carried-back boxes), grown by the mask scale as the obfuscator grows them.
A reference face is exposed by the share of its box that no such box covers.

Also measured: the detector's time per frame (from the runs' own timers) and how much more area is covered.

Usage: python benchmarks/detect_every.py [--frames 200] [--every 2 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import MEDIA, write_results  # noqa: E402
from camouflage_video.api import anonymize  # noqa: E402
from camouflage_video.config import AnonymizeConfig, StageCache  # noqa: E402
from camouflage_video.pipelines.classic import ClassicObfuscator  # noqa: E402

MASK_SCALE = 1.3
CLIPS = ("intel_one-by-one-person-detection.mp4", "dlib_MOT20-05-raw_even_shorter.mp4",
         "dlib_MOT20-08-raw_shorter.h264", "intel_preview_face-demographics-walking.gif",
         "intel_preview_face-demographics-walking-and-pause.gif", "intel_preview_classroom.gif",
         "bytetrack_MOT17-01-SDP.gif", "dlib_elon-musk-smoke.gif")


class Recording(ClassicObfuscator):
    """The solid cover, recording every box it is given per frame."""

    def __init__(self) -> None:
        super().__init__("solid", mask_scale=MASK_SCALE, shape="box")
        self.frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.size: tuple[int, int] = (0, 0)

    def __call__(self, ctx):  # noqa: ANN001, ANN204
        faces = ctx.faces
        self.frames[ctx.frame.index] = (faces.xyxy.astype(np.float64).copy(), faces.held.copy())
        self.size = ctx.frame.image.shape[:2]
        return super().__call__(ctx)


def run(clip: Path, every: int, frames: int, out: Path) -> tuple[Recording, float, int]:
    config = AnonymizeConfig(method="solid", mask_scale=MASK_SCALE, shape="box", detect_every=every, verify=False)
    cache, recorder = StageCache(config), Recording()
    detector_seconds = [0.0]

    def stages(info):  # noqa: ANN001, ANN202
        annotators, _ = cache(info)
        detector = annotators[0]
        detect = detector.detect

        def timed(image):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            try:
                return detect(image)
            finally:
                detector_seconds[0] += time.perf_counter() - t

        detector.detect = timed
        return annotators, recorder

    stopped = [0]

    def on_frame(stats):  # noqa: ANN001, ANN202
        stopped[0] = stats.frames_out
        if stats.frames_out >= frames:
            raise KeyboardInterrupt

    try:
        anonymize(clip, out, config, stages=stages, on_frame=on_frame)
    except KeyboardInterrupt:
        pass
    return recorder, detector_seconds[0], len(recorder.frames)


def grown(box: np.ndarray, scale: float, w: int, h: int) -> tuple[int, int, int, int]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * scale / 2, (box[3] - box[1]) * scale / 2
    return (max(0, int(np.floor(cx - hw))), max(0, int(np.floor(cy - hh))),
            min(w, int(np.ceil(cx + hw))), min(h, int(np.ceil(cy + hh))))


def compare(reference: Recording, test: Recording) -> dict:
    h, w = reference.size
    exposures, ref_area, test_area = [], 0, 0
    for index, (boxes, held) in reference.frames.items():
        if index not in test.frames:
            continue
        cover = np.zeros((h, w), bool)
        for box in test.frames[index][0]:
            x1, y1, x2, y2 = grown(box, MASK_SCALE, w, h)
            cover[y1:y2, x1:x2] = True
        test_area += int(cover.sum())
        mine = np.zeros((h, w), bool)
        for box in boxes:
            x1, y1, x2, y2 = grown(box, MASK_SCALE, w, h)
            mine[y1:y2, x1:x2] = True
        ref_area += int(mine.sum())
        for box in boxes[~held]:
            x1, y1, x2, y2 = grown(box, 1.0, w, h)
            area = max(1, (x2 - x1) * (y2 - y1))
            exposures.append(1 - cover[y1:y2, x1:x2].sum() / area)
    e = np.array(exposures) if exposures else np.zeros(0)
    return {"faces": len(e), "over10": int((e > 0.10).sum()), "over25": int((e > 0.25).sum()),
            "max": float(e.max()) if len(e) else 0.0, "area": test_area / max(ref_area, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--every", type=int, nargs="+", default=[2, 3])
    args = parser.parse_args()
    rows, totals = [], {n: {"faces": 0, "over10": 0, "over25": 0, "max": 0.0} for n in args.every}
    seconds = {n: 0.0 for n in [1, *args.every]}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CLIPS:
            clip = MEDIA / "videos" / name
            if not clip.exists():
                continue
            reference, s1, n_frames = run(clip, 1, args.frames, Path(tmp) / "ref.mp4")
            seconds[1] += s1
            for n in args.every:
                test, sn, _ = run(clip, n, args.frames, Path(tmp) / f"every{n}.mp4")
                seconds[n] += sn
                c = compare(reference, test)
                for key in ("faces", "over10", "over25"):
                    totals[n][key] += c[key]
                totals[n]["max"] = max(totals[n]["max"], c["max"])
                h, w = reference.size
                rows.append(f"| {name} | {w}x{h} | {n_frames} | {n} | {c['faces']} | {c['over10']} | {c['over25']} | "
                            f"{100 * c['max']:.0f}% | {c['area']:.2f}x | {s1 / max(n_frames, 1) * 1000:.0f} → "
                            f"{sn / max(n_frames, 1) * 1000:.0f} ms |")
                print(rows[-1], flush=True)
    body = (
        "Script: `benchmarks/detect_every.py`. Each real clip of ../shared/media/videos (up to "
        f"{args.frames} frames) once detecting every frame (the reference) and once with `--detect-every N`, "
        "defaults otherwise (min-face 20, tracking, 1 s look-ahead; verification off: it changes no box). A "
        "reference face is every box the reference *detected*; it is exposed by the share of it that no box "
        f"of the N run covers (the N run's detections, held and back-filled boxes, grown by the mask scale "
        f"{MASK_SCALE}). 'area' is the covered area of the N run over the reference run's (over-cover).\n\n"
        "| clip | size | frames | N | reference faces | exposed > 10% | exposed > 25% | most exposed | area | "
        "detector per frame |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        + "\n".join(f"Every {n}: {t['faces']} reference faces, {t['over10']} exposed by more than 10%, "
                    f"{t['over25']} by more than 25%, at most {100 * t['max']:.0f}%; detector time "
                    f"{seconds[n] / max(seconds[1], 1e-9):.2f}x of detecting every frame." for n, t in totals.items())
    )
    write_results("Detecting every N-th frame (benchmarks/detect_every.py)", body)
    print(body)


if __name__ == "__main__":
    main()
