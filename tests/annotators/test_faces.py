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
    "kwargs",
    [{"thresh": 0}, {"thresh": 1.5}, {"det_size": 16}, {"nms": 0}, {"backend": "tensorflow"}, {"min_face": 3},
     {"window": 100}, {"window": 1000}, {"precision": "fp16"}, {"precision": "int8", "backend": "opencv"}],
)
def test_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError):
        CenterFaceDetector(**kwargs)


@pytest.mark.parametrize("name", ["group/insightface_t1.jpg", "group/deepface_selfie-many-people.jpg"])
def test_backends_find_the_same_faces(name):
    """onnxruntime runs a cleaned-up copy of the graph (weights folded, free input size): same network, same boxes."""
    pytest.importorskip("onnxruntime")
    image = read_image(media_file(name))
    a = CenterFaceDetector(backend="onnxruntime", precision="fp32").detect(image)
    b = CenterFaceDetector(backend="opencv").detect(image)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


@pytest.mark.parametrize(
    "name", ["group/insightface_t1.jpg", "group/deepface_selfie-many-people.jpg", "group/facenet_pytorch_multiface.jpg"]
)
def test_int8_finds_every_face_the_float_model_finds(name):
    """The quantized CenterFace loses no face of the original's (boxes may move by a few percent)."""
    pytest.importorskip("onnxruntime")
    image = read_image(media_file(name))
    full = CenterFaceDetector(thresh=0.5, precision="fp32").detect(image)
    int8 = CenterFaceDetector(thresh=0.5, precision="int8").detect(image)
    assert len(int8) == len(full) > 0
    assert all(_found(box, int8.xyxy) for box in full.xyxy)


def test_int8_runs_by_default_on_the_cpu():
    onnxruntime = pytest.importorskip("onnxruntime")
    detector = CenterFaceDetector()
    on_cpu = detector.provider == "CPUExecutionProvider"
    assert detector.precision == ("int8" if on_cpu else "fp32"), onnxruntime.get_available_providers()
    assert detector.describe()["precision"] == detector.precision


def test_onnxruntime_backend_reports_a_broken_model(tmp_path):
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="broken.onnx"):
        CenterFaceDetector(model_path=bad, backend="onnxruntime")


def _found(reference: np.ndarray, boxes: np.ndarray) -> bool:
    """One box of ``boxes`` and ``reference`` contain each other's centres."""
    rc = (reference[:2] + reference[2:]) / 2
    dc = (boxes[:, :2] + boxes[:, 2:]) / 2
    return bool(np.any(np.all((boxes[:, :2] <= rc) & (rc <= boxes[:, 2:]), axis=1)
                       & np.all((reference[:2] <= dc) & (dc <= reference[2:]), axis=1)))


def _shrunk(image: np.ndarray, faces_xyxy: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
    """The image downscaled (area-averaged, as a camera sees it) so its faces are about ``height`` px tall."""
    import cv2

    k = height / np.median(faces_xyxy[:, 3] - faces_xyxy[:, 1])
    return cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA), faces_xyxy * k


def _placed(image: np.ndarray, size: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    frame = np.full((size[1], size[0], 3), 127, np.uint8)
    frame[at[1]:at[1] + image.shape[0], at[0]:at[0] + image.shape[1]] = image
    return frame


@pytest.mark.parametrize("name", ["group/insightface_t1.jpg", "group/facenet_pytorch_multiface.jpg"])
def test_small_faces_of_real_photos_are_found_in_a_4k_frame(name):
    """Faces of about 20 px (CenterFace boxes 24 px tall) in a 3840x2160 frame: one det-size pass shrinks them to
    6 px and misses them, the min-face default finds every one."""
    photo = read_image(media_file(name))
    reference = CenterFaceDetector(thresh=0.5, det_size=0, min_face=0).detect(photo).xyxy
    small, boxes = _shrunk(photo, reference, 24)
    frame = _placed(small, (3840, 2160), (1337, 911))
    boxes = boxes + [1337, 911, 1337, 911]

    detector = CenterFaceDetector()
    found = detector.detect(frame).xyxy
    assert all(_found(box, found) for box in boxes)
    assert detector.describe()["min_face"] == 20
    assert "3840x2160" in detector.describe()["passes"]
    coarse = CenterFaceDetector(min_face=0).detect(frame).xyxy
    assert sum(_found(box, coarse) for box in boxes) < len(boxes) / 2


def _seam_detector() -> tuple[CenterFaceDetector, tuple[int, int, int, int], tuple[int, int, int, int], float]:
    """A detector whose 1920x1080 plan has several windows (small ones, to keep the test fast)."""
    # fp32: INT8 boxes move a little with the input size, which would blur what this checks
    detector = CenterFaceDetector(thresh=0.5, window=512, precision="fp32")
    fine = detector.plan(1920, 1080).passes[0]
    assert len(fine.windows) > 1
    return detector, fine.windows[0], fine.windows[1], 1920 / fine.size[0]


@pytest.mark.parametrize("where", ["inside the overlap", "on the first window's edge"])
def test_a_small_face_on_a_window_seam_is_found_once(astronaut, where):
    """Windows overlap and their boxes merge: the face comes out once, where one window over the frame puts it."""
    detector, first, second, to_frame = _seam_detector()
    reference = CenterFaceDetector(thresh=0.5, min_face=0).detect(astronaut).xyxy
    small, boxes = _shrunk(astronaut, reference, 30)
    seam_x = (second[0] + first[2]) / 2 if where == "inside the overlap" else first[2]  # fine-pass pixels
    at = (round(seam_x * to_frame - (boxes[0, 0] + boxes[0, 2]) / 2), 300)  # the face's centre on it
    frame = _placed(small, (1920, 1080), at)
    faces = detector.detect(frame)
    whole = CenterFaceDetector(thresh=0.5, precision="fp32").detect(frame)  # the same scale in one window
    assert len(faces) == len(whole) == 1
    assert _found(boxes[0] + [at[0], at[1], at[0], at[1]], faces.xyxy)
    np.testing.assert_allclose(faces.xyxy, whole.xyxy, atol=1.0)


def test_a_face_filling_a_4k_frame_is_found(astronaut):
    """At the min-face scale a face this large is beyond what the network finds; the overview pass finds it."""
    import cv2

    reference = CenterFaceDetector(thresh=0.5, min_face=0).detect(astronaut).xyxy[0]
    crop = astronaut[20:220, 120:320]  # the face with a little hair and collar around it
    k = 2100 / 200
    frame = _placed(cv2.resize(crop, (2100, 2100)), (3840, 2160), (900, 30))
    face = (reference - [120, 20, 120, 20]) * k + [900, 30, 900, 30]
    assert face[3] - face[1] > 1200  # beyond LARGEST_FACE once scaled for min_face
    detector = CenterFaceDetector(thresh=0.5)
    assert len(detector.plan(3840, 2160).passes) == 2
    assert _found(face, detector.detect(frame).xyxy)


def test_the_picture_input_graph_gives_the_blob_graphs_outputs_exactly(astronaut):
    """The uint8 picture is cast and transposed inside the graph: the same floats reach the first layer."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    import cv2

    from camouflage_video.annotators.centerface_int8 import cleaned_centerface, with_picture_input
    from camouflage_video.annotators.faces import default_centerface_path

    def session(model):  # noqa: ANN001, ANN202
        return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    picture = np.ascontiguousarray(cv2.resize(astronaut, (320, 320)))
    blob = cv2.dnn.blobFromImage(picture, 1.0, None, (0, 0, 0), swapRB=False, crop=False)
    plain = session(cleaned_centerface(onnx.load(str(default_centerface_path()))))
    direct = session(with_picture_input(cleaned_centerface(onnx.load(str(default_centerface_path())))))
    want = plain.run(None, {plain.get_inputs()[0].name: blob})
    got = direct.run(None, {"picture": picture[None]})
    assert len(got) == len(want) == 4
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("image", [np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8)])
def test_a_picture_that_is_not_uint8_rgb_is_refused_not_converted(detector, image):
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect(image)
