"""Clips composed from real photos of real people (../shared/media/identity, skipped where absent): one
picture of a person beside another person, so that a *different* picture of the first is the reference."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from camouflage_video.frame import Faces
from tests.conftest import media_file

SIZE = (640, 360)
FRAMES = 12
#: Same-person pairs from different pictures: (in the clip, reference photo).
KIT = ("identity/fr_kit_harington_2.jpg", "identity/fr_kit_harington_1.jpg")
ALEX = ("identity/fr_alex_lacamoire_1.jpg", "identity/fr_alex_lacamoire_2.jpg")


def photo(relative: str) -> np.ndarray:
    image = cv2.imread(str(media_file(relative)), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def portrait(relative: str, width: int = 280, height: int = 340) -> np.ndarray:
    image = photo(relative)
    resized = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)
    return resized[:height]


def compose(path: Path, layout, frames: int = FRAMES, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """Write a clip: ``layout(i)`` gives, for frame ``i``, the ``(picture, x, y)`` pasted on a grey canvas.

    Returns the frames as written (before compression): what a kept face must still look like.
    """
    width, height = size
    written = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(frames):
            canvas = np.full((height, width, 3), 90, np.uint8)
            for picture, x, y in layout(i):
                h, w = picture.shape[:2]
                canvas[y : y + h, x : x + w] = picture[: height - y, : width - x]
            written.append(canvas)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return written


def side_by_side(left: str, right: str):  # noqa: ANN201 - a layout
    """Two people drifting towards each other a pixel a frame, left from x=20, right from x=340."""
    a, b = portrait(left), portrait(right)
    return lambda i: [(a, 20 + i, 10), (b, 340 - i, 10)]


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def face_in(detector, image: np.ndarray, x_range: tuple[int, int]) -> Faces:  # noqa: ANN001 - a detector
    """The most confident face whose centre lies within ``x_range`` (the half of the frame a person is in)."""
    faces = detector.detect(image)
    centres = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2
    inside = np.flatnonzero((centres >= x_range[0]) & (centres < x_range[1]))
    assert len(inside), f"no face found within x {x_range}"
    return faces[int(inside[np.argmax(faces.scores[inside])]) : int(inside[np.argmax(faces.scores[inside])]) + 1]


def identity_left(recognizer, original: np.ndarray, anonymized: np.ndarray, face: Faces) -> tuple[float, float]:  # noqa: ANN001
    """The calibrated rule of ``evaluate``: distance to the original and recovery from a blacked-out null.

    A face is re-identified when the distance is below the recognizer's threshold and recovery >= 0.5.
    """
    from camouflage_video.pipelines.classic import ClassicObfuscator

    null = anonymized.copy()
    ClassicObfuscator("solid", mask_scale=1.3, shape="box").obfuscate(null, face.xyxy)
    before, after, blank = recognizer.embed_versions(original, [anonymized, null], face)
    distance = float(recognizer.rowwise_distance(before, after)[0])
    recovery = float(recognizer.recovery(before, after, blank)[0])
    return distance, recovery


@pytest.fixture(scope="session")
def detector():  # noqa: ANN201 - a CenterFaceDetector
    from camouflage_video.annotators import CenterFaceDetector

    return CenterFaceDetector(precision="fp32")
