"""pyfacer face analysis: real architectures and loading code, random weights (pyfacer ships none and GitHub
releases are unreachable here), run on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.annotators.attribute_map import (
    ATTRIBUTE_NAMES,
    FACE_ATTRIBUTES_KEY,
    AttributeStabilizer,
    track_seed,
)
from camouflage_video.annotators.attributes import (
    AttributeClassifier,
    FaceAnalyzer,
    FaceAttributeAnnotator,
    build_attribute_network,
    load_attribute_classifier,
    load_face_parser,
    load_retinaface,
)
from camouflage_video.annotators.faces import CenterFaceDetector
from camouflage_video.errors import ConfigError, ModelError
from camouflage_video.frame import Faces, Frame, FrameContext

torch = pytest.importorskip("torch")
pytest.importorskip("facer")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _save(state: dict, path) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiny_classifier_file(tmp_path_factory) -> str:
    torch.manual_seed(0)
    state = build_attribute_network(width=64, layers=2).state_dict()
    return _save(state, tmp_path_factory.mktemp("farl") / "farl.safetensors")


@pytest.fixture(scope="module")
def classifier(tiny_classifier_file) -> AttributeClassifier:
    return load_attribute_classifier(tiny_classifier_file, device="cpu")


def test_classifier_has_pyfacers_exact_layout(monkeypatch):
    """Our CPU-safe build of ``farl/celeba/224`` has the state dict pyfacer's own (CUDA-only) build has.

    pyfacer's ``farl_classification`` calls ``.cuda()``; there is no GPU here, so that call is made a no-op
    for this comparison only.
    """
    from facer.farl.classification import farl_classification

    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    theirs = farl_classification(num_classes=40, layers=[11]).state_dict()
    ours = build_attribute_network().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_classifier_runs_on_cpu_on_a_real_face(classifier, astronaut):
    faces = CenterFaceDetector().detect(astronaut)
    probs = classifier(astronaut, faces.landmarks)
    assert probs.shape == (1, 40) and probs.dtype == np.float32
    assert ((probs > 0) & (probs < 1)).all()
    assert classifier.labels == ATTRIBUTE_NAMES
    # A face's result does not depend on the other faces classified with it.
    both = classifier(astronaut, np.concatenate([faces.landmarks, faces.landmarks + 40]))
    assert np.allclose(both[0], probs[0], atol=1e-5)
    assert not np.allclose(both[1], probs[0], atol=1e-3)


@pytest.mark.parametrize(
    "name, content, error, message",
    [
        ("farl.pt", b"not read", ConfigError, "safetensors only"),
        ("missing.safetensors", None, ModelError, "does not exist"),
        ("garbage.safetensors", b"garbage", ModelError, "cannot read"),
    ],
)
def test_classifier_loading_errors(tmp_path, name, content, error, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        load_attribute_classifier(path)


def test_classifier_refuses_another_networks_weights(tmp_path):
    path = _save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.safetensors")
    with pytest.raises(ModelError, match="not a FaRL attribute classifier"):
        load_attribute_classifier(path)


def test_analyzer_encodes_a_real_face(classifier, astronaut):
    faces = CenterFaceDetector().detect(astronaut)
    attrs = FaceAnalyzer(classifier, region_size=256).analyze(astronaut, faces)
    assert len(attrs) == 1 and np.isfinite(attrs.observed).all()
    assert attrs.regions.shape == (256, 256)
    x1, y1, x2, y2 = (faces.xyxy[0] / 2).astype(int)
    assert (attrs.regions[(y1 + y2) // 2, (x1 + x2) // 2]) == 1  # the face centre is the face's
    assert attrs.regions[5, 5] == 0
    assert np.allclose(attrs.keypoints, faces.landmarks)


def test_faces_held_by_tracking_are_not_classified(classifier, astronaut):
    faces = Faces.from_boxes([[180, 60, 270, 180], [10, 10, 60, 70]], held=[False, True])
    calls = classifier.calls
    attrs = FaceAnalyzer(classifier).analyze(astronaut, faces)
    assert classifier.calls == calls + 1
    assert np.isfinite(attrs.observed[0]).all() and np.isnan(attrs.observed[1]).all()
    assert np.isfinite(attrs.keypoints[1]).all()  # template landmarks for the keypoint channel


def test_annotator_encodes_every_face_confirmed_or_not(classifier, astronaut):
    annotator = FaceAttributeAnnotator(FaceAnalyzer(classifier), AttributeStabilizer(seed=5))
    ctx = FrameContext(Frame(astronaut, 0))
    ctx.faces = Faces.from_boxes([[180, 60, 270, 180], [300, 200, 380, 300]], track_ids=[-1, 12])
    annotator.annotate(ctx)
    attrs = ctx.extras[FACE_ATTRIBUTES_KEY]
    assert np.isfinite(attrs.probs).all()
    assert attrs.seeds.tolist() == [-1, track_seed(5, 12)]
    assert set(np.unique(attrs.regions)) == {0, 1, 2}


def test_face_parser_shapes_the_regions(tmp_path, classifier, astronaut):
    """pyfacer's own FaRLFaceParser class, loading a TorchScript stand-in from a local path: the stand-in
    labels a disc in the middle of the aligned face as 'face' and the rest as background."""

    class StandIn(torch.nn.Module):
        def forward(self, x: torch.Tensor):
            b, _, h, w = x.shape
            yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
            logits = torch.zeros(b, 11, h, w) + x.mean() * 0
            logits[:, 0] = 1.0
            logits[:, 1] = ((xx**2 + yy**2) < 0.1).float() * 2
            return logits, logits

    path = tmp_path / "parser.pt"
    torch.jit.trace(StandIn(), torch.rand(1, 3, 448, 448)).save(str(path))
    parser = load_face_parser(path, "farl/lapa/448", device="cpu")
    faces = CenterFaceDetector().detect(astronaut)
    parsed = FaceAnalyzer(classifier, parser=parser).analyze(astronaut, faces)
    plain = FaceAnalyzer(classifier).analyze(astronaut, faces)
    assert 0 < (parsed.regions == 1).sum() < (plain.regions == 1).sum()
    assert not ((parsed.regions == 1) & (plain.regions == 0)).any()


@pytest.mark.parametrize(
    "args, error, message",
    [
        (("missing.pt", "farl/lapa/448"), ModelError, "does not exist"),
        (("x.pt", "farl/nope/448"), ConfigError, "unknown pyfacer model"),
    ],
)
def test_face_parser_loading_errors(tmp_path, args, error, message):
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(error, match=message):
        load_face_parser(tmp_path / args[0], args[1])


def test_retinaface_loads_from_safetensors_and_detects(tmp_path, astronaut):
    from facer.face_detection.retinaface import RetinaFace, cfg_mnet

    torch.manual_seed(0)
    state = RetinaFace(cfg=dict(cfg_mnet, pretrain=False), phase="test").state_dict()
    path = _save(state, tmp_path / "retina.safetensors")
    detector = load_retinaface(path, threshold=0.5)
    faces = detector.detect(astronaut)  # random weights: any number of boxes, but well-formed
    assert faces.xyxy.shape[1:] == (4,) and faces.landmarks.shape[1:] == (5, 2)
    with pytest.raises(ConfigError, match="RetinaFace network"):
        load_retinaface(path, network="vgg")
