"""Control-map annotators: every-k-th-frame reuse, fresh maps at cuts, real annotator classes with random weights."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from camouflage_video.annotators.control_maps import CONTROL_MAPS_KEY, ControlMapAnnotator
from camouflage_video.annotators.scene_cuts import SCENE_CUT_KEY
from camouflage_video.frame import Frame, FrameContext


class Counting(ControlMapAnnotator):
    kind = "depth"

    def compute(self, image: np.ndarray) -> np.ndarray:
        return np.full((*image.shape[:2], 3), self.calls, np.uint8)


def ctx(image: np.ndarray, index: int, video: bool = True, cut: bool = False) -> FrameContext:
    c = FrameContext(Frame(image, index, pts=index if video else None, time_base=Fraction(1, 25) if video else None))
    c.extras[SCENE_CUT_KEY] = cut
    return c


def test_maps_are_recomputed_every_k_frames_and_at_scene_cuts():
    annotator = Counting(every=3, resolution=64)
    image = np.zeros((64, 96, 3), np.uint8)
    cuts = [False, False, False, False, True, False, False, False]
    seen = []
    for i, cut in enumerate(cuts):
        c = ctx(image, i, cut=cut)
        annotator.annotate(c)
        seen.append(int(c.extras[CONTROL_MAPS_KEY]["depth"][0, 0, 0]))
    assert seen == [0, 0, 0, 1, 2, 2, 2, 3]  # frames 0, 3, the cut at 4, then 4 + 3
    assert annotator.calls == 4
    stills = Counting(every=10, resolution=64)
    for i in range(3):
        stills.annotate(ctx(image, i, video=False))
    assert stills.calls == 3  # unrelated images never share a map


@pytest.fixture(scope="module")
def saved_annotators(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("controlnet_aux")
    from tests.tiny_models import save_tiny_annotators

    folder = tmp_path_factory.mktemp("annotators")
    return save_tiny_annotators(folder)


@pytest.mark.parametrize("kind", ["depth", "seg", "lineart"])
def test_real_annotators_load_from_safetensors_and_draw_maps(saved_annotators, astronaut, kind):
    from camouflage_video import models
    from camouflage_video.annotators.control_maps import build_control_annotator

    source = models.resolve(f"annotator-{kind}", saved_annotators[f"annotator-{kind}"])
    annotator = build_control_annotator(kind, source, resolution=64)
    image = np.ascontiguousarray(astronaut[:300, :420])
    c = ctx(image, 0)
    annotator.annotate(c)
    control = c.extras[CONTROL_MAPS_KEY][kind]
    assert control.dtype == np.uint8 and control.ndim == 3 and control.shape[2] == 3
    assert min(control.shape[:2]) == 64 and abs(control.shape[1] / control.shape[0] - 1.4) < 0.05
    assert not np.array_equal(control, image[: control.shape[0], : control.shape[1]])  # a map, not the frame
    if kind == "seg":
        palette = {tuple(c) for c in annotator.palette.tolist()}
        assert {tuple(p) for p in control.reshape(-1, 3).tolist()} <= palette


def test_captions_are_made_once_per_scene():
    from camouflage_video.annotators.caption import CAPTION_KEY, CaptionAnnotator

    torch = pytest.importorskip("torch")
    pytest.importorskip("PIL")
    loads = []

    class Processor:  # stand-in for a transformers captioning processor (no weights offline)
        def __call__(self, images, return_tensors):  # noqa: ANN001
            from transformers import BatchFeature

            mean = float(np.asarray(images).mean())
            return BatchFeature({"pixel_values": torch.tensor([[mean]])})

        def decode(self, tokens, skip_special_tokens):  # noqa: ANN001
            return f"scene {int(tokens[0])}"

    class Model(torch.nn.Module):
        def generate(self, pixel_values, max_new_tokens):  # noqa: ANN001
            return pixel_values.long()

    captions = CaptionAnnotator(lambda: loads.append(1) or (Model(), Processor()))
    dark, bright = np.full((8, 8, 3), 10, np.uint8), np.full((8, 8, 3), 200, np.uint8)
    seen = []
    for i, (image, cut) in enumerate([(dark, False), (dark, False), (bright, True), (bright, False)]):
        c = ctx(image, i, cut=cut)
        captions.annotate(c)
        seen.append(c.extras[CAPTION_KEY])
    assert seen == ["scene 10", "scene 10", "scene 200", "scene 200"]
    assert captions.calls == 2 and loads == [1]


@pytest.mark.slow
def test_openpose_and_normalbae_load_their_upstream_weight_layouts_from_safetensors(tmp_path):
    """The two heavy networks, random weights saved the way the upstream files lay them out (~350 MB)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("controlnet_aux")
    import types
    import warnings

    from safetensors.torch import save_file

    from camouflage_video import models
    from camouflage_video.annotators.control_maps import build_control_annotator
    from camouflage_video.models import quiet_stdout

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from controlnet_aux.normalbae.nets.NNET import NNET
        from controlnet_aux.open_pose.face import FaceNet
        from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    torch.manual_seed(0)
    body, hand, face = bodypose_model(), handpose_model(), FaceNet()
    with quiet_stdout():
        normals = NNET(types.SimpleNamespace(mode="client", architecture="BN", pretrained="scannet",
                                             sampling_ratio=0.4, importance_ratio=0.7))
    # body/hand files name parameters without their first module level (controlnet-aux's util.transfer).
    for name, net in (("body_pose_model", body), ("hand_pose_model", hand)):
        state = {k.split(".", 1)[1]: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp_path / f"{name}.safetensors"))
    save_file({k: v.contiguous() for k, v in face.state_dict().items()}, str(tmp_path / "facenet.safetensors"))
    save_file({k: v.contiguous() for k, v in normals.state_dict().items()}, str(tmp_path / "scannet.safetensors"))

    pose = build_control_annotator("openpose", models.resolve("annotator-openpose", str(tmp_path)), resolution=64)
    detector = pose.detector
    for loaded, reference in ((detector.body_estimation.model, body), (detector.hand_estimation.model, hand),
                              (detector.face_estimation.model, face)):
        state = loaded.state_dict()
        assert all(torch.equal(state[k], v) for k, v in reference.state_dict().items())
    normal = build_control_annotator("normalbae", models.resolve("annotator-normalbae", str(tmp_path)), resolution=64)
    state = normal.detector.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in normals.state_dict().items())
    image = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    for annotator in (pose, normal):
        c = ctx(image, 0)
        annotator.annotate(c)
        assert c.extras[CONTROL_MAPS_KEY][annotator.kind].shape == (64, 96, 3)
