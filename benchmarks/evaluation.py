"""Benchmark of `camouflage-video evaluate`: recognizer accuracy, throughput, and what classic methods score.

    python benchmarks/evaluation.py [--clip ../shared/media/videos/intel_asl_again.mkv]

1. dlib on the deepface verification protocol (38 same / 262 different pairs), and its time per face.
2. Throughput of `evaluate` (every frame, and every 5th) on a real clip, as a ratio to the `anonymize` run
   that produced the anonymized clip, timed side by side on the same machine.
3. Re-identification, detection and flicker of the classic methods on that clip (and of an unchanged copy).

Writes the "evaluate" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import MEDIA, write_results
from camouflage_video.annotators import CenterFaceDetector
from camouflage_video.api import anonymize
from camouflage_video.evaluation import DlibRecognizer, EvaluationConfig, Evaluator
from camouflage_video.sources.images import read_image

NOTE = """Run with `python benchmarks/evaluation.py`. The cores of the CI machine are shared with other jobs:
absolute seconds vary from run to run, the ratios (taken side by side in one run) are the figures to compare.

Reading: a method hides the person from dlib when its distances stay well above 0.6; "Still detected" is the
share of anonymized faces CenterFace still finds (utility for downstream detectors); E_warp inside the faces
shows the flicker a method adds over the original's. Identity stability is trivially high for classic methods
(every blob embeds alike): it is informative for generative methods, whose fake faces must stay one person."""


def deepface_protocol(media: Path, recognizer: DlibRecognizer) -> tuple[float, float, float, float]:
    folder = media / "identity" / "deepface"
    rows = list(csv.DictReader((folder / "master.csv").open()))
    detector = CenterFaceDetector(thresh=0.5, det_size=640)
    embeddings, seconds = {}, []
    for name in sorted({r["file_x"] for r in rows} | {r["file_y"] for r in rows}):
        image = read_image(folder / name)
        faces = detector.detect(image)
        areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
        face = faces[int(np.argmax(areas))]
        t0 = time.perf_counter()
        embeddings[name] = recognizer.embed(image, recognizer.prepare(image, face))[0]
        seconds.append(time.perf_counter() - t0)
    distance = np.array([np.linalg.norm(embeddings[r["file_x"]] - embeddings[r["file_y"]]) for r in rows])
    same = np.array([r["Decision"] == "Yes" for r in rows])
    match = distance < recognizer.threshold
    return (match == same).mean(), match[same].mean(), (~match[~same]).mean(), float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=MEDIA / "videos" / "intel_asl_again.mkv")
    clip = parser.parse_args().clip
    recognizer = DlibRecognizer()
    accuracy, tpr, tnr, per_face = deepface_protocol(MEDIA, recognizer)
    lines = [
        "| Recognizer | Protocol | Accuracy | Same-person matched | Different-person rejected | Time per face |",
        "|---|---|---|---|---|---|",
        f"| dlib ResNet, 0.6 | deepface master.csv (300 pairs) | {accuracy:.1%} | {tpr:.1%} | {tnr:.1%} | "
        f"{per_face * 1000:.0f} ms |",
        "",
    ]

    with tempfile.TemporaryDirectory() as tmp:
        rows, timing = [], {}
        for method in ("copy", "blur", "pixelate", "solid"):
            if method == "copy":
                anonymized = clip
            else:
                anonymized = Path(tmp) / f"{method}.mp4"
                t0 = time.perf_counter()
                anonymize(clip, anonymized, method=method)
                timing[f"anonymize {method}"] = time.perf_counter() - t0
            for step in (1, 5) if method == "pixelate" else (1,):
                evaluator = Evaluator(EvaluationConfig(step=step), recognizer=recognizer)
                t0 = time.perf_counter()
                result = evaluator.run(clip, anonymized)
                timing[f"evaluate {method} step {step}"] = time.perf_counter() - t0
                if step == 1:
                    s = result.summary()
                    w = s["warping_error"]
                    rows.append(
                        f"| {method} | {s['faces']} | {s['reidentification_rate']:.1%} | {s['distance']['mean']:.3f} | "
                        f"{s['detected_rate']:.1%} | {w['original_faces']:.5f} | {w['anonymized_faces']:.5f} | "
                        f"{s['identity_stability']['anonymized_same_identity_rate']:.1%} | "
                        f"{s['fidelity_outside_faces']['psnr_db']:.1f} |"
                    )
                    frames = result.frames["paired"]
    lines += [
        f"Clip: `{clip.name}` ({frames} frames, one face), every frame analysed.",
        "",
        "| Method | Faces | Re-identified | Mean distance | Still detected | E_warp faces, original | "
        "E_warp faces, anonymized | Stable identity | PSNR outside faces (dB) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| Run | Seconds | Frames/s | Ratio to `anonymize --method pixelate` |",
        "|---|---|---|---|",
    ]
    peer = timing["anonymize pixelate"]
    for name, seconds in timing.items():
        fps = frames / seconds
        lines.append(f"| {name} | {seconds:.1f} | {fps:.1f} | {seconds / peer:.2f} |")
    lines += ["", NOTE]
    body = "\n".join(lines)
    print(body)
    write_results("evaluate", body)


if __name__ == "__main__":
    main()
