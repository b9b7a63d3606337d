"""End to end: what a person would check before trusting the output with real faces."""

from __future__ import annotations

import numpy as np
import pytest

from camouflage_video import anonymize
from camouflage_video.annotators import CenterFaceDetector
from tests.conftest import media_file, read_frames


@pytest.fixture(scope="module")
def hog():
    """dlib's HOG face detector: independent of CenterFace (other features, other training data)."""
    dlib = pytest.importorskip("dlib", reason="dlib-bin not installed (pip install 'camouflage-video[evaluation]')")
    return dlib.get_frontal_face_detector()


def hog_boxes(detector, frame):
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in detector(frame, 1)]


def overlaps(a, b):
    """True when the centre of either box lies inside the other (same face, whatever its exact extent)."""
    def inside(p, box):
        return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]

    centre = lambda box: ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)  # noqa: E731
    return inside(centre(a), b) or inside(centre(b), a)


@pytest.mark.parametrize(
    "clip",
    [
        None,  # the generated astronaut clip
        "videos/intel_asl_again.mkv",
        "videos/intel_preview_face-demographics-walking-and-pause.gif",
        "videos/intel_preview_head-pose-face-detection-female-and-male.gif",
        "videos/dlib_elon-musk-smoke.gif",
    ],
)
def test_an_independent_detector_finds_no_face_in_the_output(hog, sample_clip, tmp_path, clip):
    source = sample_clip if clip is None else media_file(clip)
    out = tmp_path / "out.mp4"
    stats = anonymize(source, out)
    before, _, _ = read_frames(source)
    after, _, _ = read_frames(out)
    assert len(after) == len(before) == stats.frames_out
    faces_before = [hog_boxes(hog, frame) for frame in before]
    assert sum(map(len, faces_before)) >= len(before) // 2  # the check itself sees the faces in the input
    leaks = [
        (index, box)
        for index, (frame, faces) in enumerate(zip(after, faces_before, strict=True))
        for box in hog_boxes(hog, frame)
        if any(overlaps(box, face) for face in faces)
    ]
    assert leaks == []  # no face is found where the input had one


def test_every_detected_face_region_is_changed(sample_clip, tmp_path):
    out = tmp_path / "out.mp4"
    anonymize(sample_clip, out)
    detector = CenterFaceDetector(thresh=0.5)
    before, _, _ = read_frames(sample_clip)
    after, _, _ = read_frames(out)
    changed = []
    for a, b in zip(before, after, strict=True):
        for x1, y1, x2, y2 in detector.detect(a).xyxy.astype(int):
            inner = (slice(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4), slice(x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4))
            changed.append(np.abs(a[inner].astype(int) - b[inner]).mean())
    assert len(changed) >= len(before) - 2
    assert min(changed) > 8


def test_group_photo_faces_are_all_covered(hog, tmp_path):
    source = media_file("group/insightface_t1.jpg")
    out = tmp_path / "t1.jpg"
    stats = anonymize(source, out)
    assert stats.faces_detected >= 6
    import cv2

    assert len(hog(cv2.imread(str(source))[..., ::-1], 1)) >= 4
    assert len(hog(cv2.imread(str(out))[..., ::-1], 1)) == 0
