"""Plug a custom obfuscation into the same runner: here, faces become flat average-colour ellipses.

The runner, the face detector, the tracker, the fail-closed fallback and the sinks are the project's; only
the pixel-writing step is yours.

    python examples/custom_obfuscation.py street.mp4 street_flat.mp4
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from camouflage_video.annotators import CenterFaceDetector, FaceTracker
from camouflage_video.frame import FrameContext
from camouflage_video.geometry import scale_boxes
from camouflage_video.pipelines import Anonymizer
from camouflage_video.runner import Runner
from camouflage_video.sinks import open_sink
from camouflage_video.sources import open_source


class MeanColour(Anonymizer):
    """Fill each face ellipse with the face's mean colour."""

    name = "mean-colour"

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        image = ctx.frame.image.copy()  # never write into the source frame
        h, w = image.shape[:2]
        for x1, y1, x2, y2 in scale_boxes(ctx.faces.xyxy, 1.3, w, h):
            colour = image[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
            centre, axes = ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2)
            cv2.ellipse(image, centre, axes, 0, 0, 360, colour.tolist(), -1)
        return image


if __name__ == "__main__":
    with open_source(sys.argv[1]) as source:
        sink = open_sink(sys.argv[2], source.info)
        annotators = [CenterFaceDetector(), FaceTracker(fps=source.info.fps)]
        stats = Runner(source, [sink], annotators, MeanColour(), progress=True).run()
    print(f"{stats.frames_out} frames, {stats.fallback_frames} fell back to pixelation")
