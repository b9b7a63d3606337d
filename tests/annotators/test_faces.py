from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.annotators import CenterFaceDetector
from camouflage_video.errors import ConfigError, ModelError
from camouflage_video.sources.images import read_image
from tests.conftest import media_file


@pytest.fixture(scope="module")
def detector():
    return CenterFaceDetector(thresh=0.5)


def test_finds_the_astronauts_face_with_landmarks(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.xyxy[0]
    # Eileen Collins' face sits in the upper middle of the 512x512 portrait
    assert 150 < (x1 + x2) / 2 < 260 and 50 < (y1 + y2) / 2 < 160 and 60 < x2 - x1 < 160
    eyes = faces.landmarks[0, :2]
    assert np.all((eyes[:, 0] > x1) & (eyes[:, 0] < x2) & (eyes[:, 1] > y1) & (eyes[:, 1] < y2))
    assert faces.scores[0] > 0.8


def test_boxes_map_back_from_the_detection_size(astronaut):
    import cv2

    big = cv2.resize(astronaut, (2048, 2048))
    small = CenterFaceDetector(thresh=0.5, det_size=512, min_face=0).detect(big)
    full = CenterFaceDetector(thresh=0.5, det_size=512, min_face=0).detect(astronaut)
    assert len(small) == len(full) == 1
    assert np.allclose(small.xyxy[0] / 4, full.xyxy[0], atol=4)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("group/ultralytics_zidane.jpg", 2),
        ("group/fr_two_people.jpg", 2),
        ("group/insightface_t1.jpg", 6),
        ("group/facenet_pytorch_multiface.jpg", 6),
        ("group/deepface_selfie-many-people.jpg", 6),
    ],
)
def test_counts_faces_on_real_group_photos(detector, name, expected):
    faces = detector.detect(read_image(media_file(name)))
    assert len(faces) == expected


def test_no_faces_on_a_blank_frame(detector):
    assert len(detector.detect(np.full((360, 640, 3), 127, np.uint8))) == 0


@pytest.mark.parametrize(
    "kwargs", [{"thresh": 0}, {"thresh": 1.5}, {"det_size": 16}, {"nms": 0}, {"backend": "tensorflow"}]
)
def test_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError):
        CenterFaceDetector(**kwargs)


@pytest.mark.parametrize("name", ["group/insightface_t1.jpg", "group/deepface_selfie-many-people.jpg"])
def test_backends_find_the_same_faces(name):
    """onnxruntime runs a cleaned-up copy of the graph (weights folded, free input size): same network, same boxes."""
    pytest.importorskip("onnxruntime")
    image = read_image(media_file(name))
    a = CenterFaceDetector(backend="onnxruntime").detect(image)
    b = CenterFaceDetector(backend="opencv").detect(image)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_onnxruntime_backend_reports_a_broken_model(tmp_path):
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="broken.onnx"):
        CenterFaceDetector(model_path=bad, backend="onnxruntime")
