"""Where INT8 CenterFace puts its boxes compared with the float model, on real photos and video frames.

For every float box: the INT8 box at the same place (IoU >= 0.3), and how much that box must grow about its
centre to contain the float box. Faces the float model finds and INT8 misses count apart.

Usage: python benchmarks/int8_boxes.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import MEDIA, write_results  # noqa: E402
from camouflage_video.annotators.faces import CenterFaceDetector  # noqa: E402
from camouflage_video.geometry import box_iou  # noqa: E402

VIDEOS = ("intel_preview_face-demographics-walking.gif", "intel_one-by-one-person-detection.mp4",
          "dlib_MOT20-08-raw_shorter.h264")


def images() -> dict[str, list[np.ndarray]]:
    photos = sorted((MEDIA / "group").glob("*")) + sorted((MEDIA / "identity").glob("*.jpg"))
    out = {"photos (group, identity)": [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in photos]}
    for name in VIDEOS:
        frames = []
        with av.open(str(MEDIA / "videos" / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 10 == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if i > 60:
                    break
        out[f"{name} (every 10th of 60 frames)"] = frames
    return out


def main() -> None:
    fp32, int8 = CenterFaceDetector(precision="fp32"), CenterFaceDetector(precision="int8")
    rows = []
    for label, pictures in images().items():
        need, missed = [], 0
        for image in pictures:
            reference, quantized = fp32.detect(image).xyxy, int8.detect(image).xyxy
            for box in reference:
                ious = [box_iou(box, other) for other in quantized]
                if not ious or max(ious) < 0.3:
                    missed += 1
                    continue
                o = quantized[int(np.argmax(ious))]
                cx, cy, hw, hh = (o[0] + o[2]) / 2, (o[1] + o[3]) / 2, (o[2] - o[0]) / 2, (o[3] - o[1]) / 2
                need.append(max((cx - box[0]) / hw, (box[2] - cx) / hw, (cy - box[1]) / hh, (box[3] - cy) / hh))
        n = np.array(need)
        p50, p90, p99 = (np.percentile(n, q) if len(n) else float("nan") for q in (50, 90, 99))
        rows.append(f"| {label} | {len(n) + missed} | {missed} | {p50:.3f} | {p90:.3f} | {p99:.3f} |")
        print(rows[-1], flush=True)
    body = (
        "Script: `benchmarks/int8_boxes.py`. Float (fp32) and INT8 CenterFace with the defaults (min-face 20, "
        "thresh 0.2) on the same pictures. For each float box, the INT8 box at the same place (IoU >= 0.3): "
        "the growth about its centre it needs to contain the float box. 'no INT8 box' counts float boxes "
        "with none at their place.\n\n| pictures | float boxes | no INT8 box | growth p50 | p90 | p99 |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\nSo INT8 is not the float model's equal: on "
        "crowd video frames it misses faces the float model finds, and where both find a face its box can "
        "be a good deal smaller. It stays opt-in (`--detector-precision int8`)."
    )
    write_results("INT8 against float boxes (benchmarks/int8_boxes.py)", body)
    print(body)


if __name__ == "__main__":
    main()
