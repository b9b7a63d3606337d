"""Control maps for the ControlNet ensemble: depth, surface normals, ADE20k segmentation, pose, lineart.

Each annotator writes ``ctx.extras["control_maps"][kind]`` as an ``(H, W, 3)`` uint8 RGB map of the frame
(at ``resolution`` on its short side; the pipeline resizes it to the generation size). Each can run only on
every ``every``-th frame and reuse its last map in between; a scene cut, a still image or a new frame size
always gets a fresh map.

Models: depth and segmentation are transformers models (safetensors from the hub or a folder); normals,
pose and lineart are controlnet-aux networks built here and filled from converted ``.safetensors`` state
dicts (see ``camouflage_video.models``).
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.scene_cuts import SCENE_CUT_KEY
from camouflage_video.errors import ConfigError
from camouflage_video.frame import FrameContext
from camouflage_video.geometry import short_side_size
from camouflage_video.models import ModelSource, load_state_dict, load_transformers_model, quiet_stdout

CONTROL_MAPS_KEY = "control_maps"
CONTROL_KINDS = ("depth", "normalbae", "seg", "openpose", "lineart")


class ControlMapAnnotator(Annotator):
    """Base class: computes a control map every ``every`` frames and reuses it in between.

    Subclasses implement ``compute(image) -> (H, W, 3) uint8``.

    Args:
        every: Run the model on every ``every``-th frame (1: every frame).
        resolution: Short side of the map and of the model input, in pixels.

    Examples:
        >>> depth = DepthAnnotator(model, processor, every=2)  # doctest: +SKIP
        >>> depth.annotate(ctx); ctx.extras["control_maps"]["depth"].shape  # doctest: +SKIP
        (512, 910, 3)
    """

    kind = "control"

    def __init__(self, every: int = 1, resolution: int = 512) -> None:
        if every < 1:
            raise ConfigError(f"annotate-every must be >= 1, got {every}")
        if resolution < 64:
            raise ConfigError(f"annotation resolution must be >= 64, got {resolution}")
        self.every, self.resolution = every, resolution
        self.name = f"control_{self.kind}"
        self.calls = 0
        self.reset()

    def reset(self) -> None:
        self._last: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self._since = 0

    def annotate(self, ctx: FrameContext) -> None:
        image = ctx.frame.image
        stale = (
            self._last is None
            or self._since >= self.every
            or ctx.frame.pts is None
            or bool(ctx.extras.get(SCENE_CUT_KEY))
            or image.shape != self._shape
        )
        if stale:
            control = self.compute(image)
            if control.ndim != 3 or control.shape[2] != 3 or control.dtype != np.uint8:
                raise ValueError(f"{self.name} produced {control.shape} {control.dtype}, not (H, W, 3) uint8")
            self._last, self._shape, self._since = control, image.shape, 0
            self.calls += 1
        self._since += 1
        ctx.extras.setdefault(CONTROL_MAPS_KEY, {})[self.kind] = self._last

    def compute(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _work_size(self, image: np.ndarray) -> tuple[int, int]:
        h, w = image.shape[:2]
        return short_side_size(w, h, self.resolution)


class DepthAnnotator(ControlMapAnnotator):
    """Relative depth (near is bright) from a transformers depth model, min-max normalised per map."""

    kind = "depth"

    def __init__(self, model: Any, processor: Any, device: Any = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.processor, self.device = model.to(device), processor, device

    def compute(self, image: np.ndarray) -> np.ndarray:
        torch = require("torch", "annotators")
        width, height = self._work_size(image)
        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            depth = self.model(**inputs).predicted_depth
        depth = torch.nn.functional.interpolate(depth[:, None].float(), size=(height, width), mode="bicubic")[0, 0]
        depth = depth.cpu().numpy()
        low, high = float(depth.min()), float(depth.max())
        scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
        return np.repeat((scaled * 255).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)


class SegmentationAnnotator(ControlMapAnnotator):
    """ADE20k semantic segmentation drawn in the ADE20k palette ControlNet's seg model was trained on."""

    kind = "seg"

    def __init__(self, model: Any, processor: Any, device: Any = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.processor, self.device = model.to(device), processor, device
        self.palette = np.asarray(_ade_palette(), np.uint8)

    def compute(self, image: np.ndarray) -> np.ndarray:
        torch = require("torch", "annotators")
        width, height = self._work_size(image)
        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        labels = self.processor.post_process_semantic_segmentation(outputs, target_sizes=[(height, width)])[0]
        return self.palette[labels.cpu().numpy() % len(self.palette)]


class _ControlnetAuxAnnotator(ControlMapAnnotator):
    """A controlnet-aux detector called at ``resolution`` (they resize internally)."""

    def __init__(self, detector: Any, device: Any = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detector = detector.to(device)
        self.options: dict[str, Any] = {}

    def compute(self, image: np.ndarray) -> np.ndarray:
        out = self.detector(
            image, detect_resolution=self.resolution, image_resolution=self.resolution, output_type="np",
            **self.options,
        )
        # controlnet-aux rounds both sides to multiples of 64, which bends the aspect at small sizes.
        return cv2.resize(np.ascontiguousarray(out), self._work_size(image), interpolation=cv2.INTER_LINEAR)


class NormalAnnotator(_ControlnetAuxAnnotator):
    """Surface normals (NormalBae), the input of ``control_v11p_sd15_normalbae``."""

    kind = "normalbae"


class PoseAnnotator(_ControlnetAuxAnnotator):
    """OpenPose body, hands and face keypoints drawn on black, the input of ``control_v11p_sd15_openpose``."""

    kind = "openpose"

    def __init__(self, detector: Any, device: Any = "cpu", **kwargs: Any) -> None:
        super().__init__(detector, device, **kwargs)
        self.options = {"include_body": True, "include_hand": True, "include_face": True}


class LineartAnnotator(_ControlnetAuxAnnotator):
    """Realistic lineart (white lines on black), the input of ``control_v11p_sd15_lineart``."""

    kind = "lineart"

    def __init__(self, detector: Any, device: Any = "cpu", **kwargs: Any) -> None:
        super().__init__(detector, device, **kwargs)
        self.options = {"coarse": False}


# -- loading ------------------------------------------------------------------------------------------


def _controlnet_aux(module: str) -> Any:
    # controlnet-aux's package import warns about optional packages (mediapipe) and deprecated timm paths.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return require(f"controlnet_aux.{module}", "annotators", package="controlnet-aux")


def _ade_palette() -> list[list[int]]:
    return _controlnet_aux("util").ade_palette()


def _build_depth(source: ModelSource, device: Any, **kwargs: Any) -> ControlMapAnnotator:
    model, processor = load_transformers_model("AutoModelForDepthEstimation", source)
    return DepthAnnotator(model, processor, device, **kwargs)


def _build_seg(source: ModelSource, device: Any, **kwargs: Any) -> ControlMapAnnotator:
    model, processor = load_transformers_model("AutoModelForSemanticSegmentation", source)
    return SegmentationAnnotator(model, processor, device, **kwargs)


def _build_normalbae(source: ModelSource, device: Any, **kwargs: Any) -> ControlMapAnnotator:
    normalbae = _controlnet_aux("normalbae")
    nnet = _controlnet_aux("normalbae.nets.NNET")
    args = types.SimpleNamespace(mode="client", architecture="BN", pretrained="scannet", sampling_ratio=0.4,
                                 importance_ratio=0.7)  # controlnet-aux's own settings for scannet.pt
    with quiet_stdout():
        model = nnet.NNET(args)
    model.load_state_dict(load_state_dict(source, "scannet.safetensors"))
    return NormalAnnotator(normalbae.NormalBaeDetector(model.eval()), device, **kwargs)


def _build_openpose(source: ModelSource, device: Any, **kwargs: Any) -> ControlMapAnnotator:
    open_pose = _controlnet_aux("open_pose")
    # Body/Hand/Face read pickles in their constructors; build them empty and fill them from safetensors.
    body = open_pose.Body.__new__(open_pose.Body)
    body.model = open_pose.body.bodypose_model()
    body_state = load_state_dict(source, "body_pose_model.safetensors")
    body.model.load_state_dict(open_pose.util.transfer(body.model, body_state))
    hand = open_pose.Hand.__new__(open_pose.Hand)
    hand.model = open_pose.hand.handpose_model()
    hand_state = load_state_dict(source, "hand_pose_model.safetensors")
    hand.model.load_state_dict(open_pose.util.transfer(hand.model, hand_state))
    face = open_pose.Face.__new__(open_pose.Face)
    face.inference_size = open_pose.face.params["inference_img_size"]
    face.sigma = open_pose.face.params["gaussian_sigma"]
    face.threshold = open_pose.face.params["heatmap_peak_thresh"]
    face.model = open_pose.face.FaceNet()
    face.model.load_state_dict(load_state_dict(source, "facenet.safetensors"))
    for part in (body, hand, face):
        part.model.eval()
    return PoseAnnotator(open_pose.OpenposeDetector(body, hand, face), device, **kwargs)


def _build_lineart(source: ModelSource, device: Any, **kwargs: Any) -> ControlMapAnnotator:
    lineart = _controlnet_aux("lineart")
    model = lineart.Generator(3, 1, 3)  # controlnet-aux's architecture of sk_model.pth
    model.load_state_dict(load_state_dict(source, "sk_model.safetensors"))
    model.eval()
    # The coarse model is never used (coarse=False); pass the same network rather than load a second one.
    return LineartAnnotator(lineart.LineartDetector(model, model), device, **kwargs)


BUILDERS: dict[str, Callable[..., ControlMapAnnotator]] = {
    "depth": _build_depth,
    "normalbae": _build_normalbae,
    "seg": _build_seg,
    "openpose": _build_openpose,
    "lineart": _build_lineart,
}


def build_control_annotator(
    kind: str, source: ModelSource, *, device: Any = "cpu", every: int = 1, resolution: int = 512
) -> ControlMapAnnotator:
    """The annotator for ``kind`` with its model loaded from ``source``."""
    if kind not in BUILDERS:
        raise ConfigError(f"unknown control map {kind!r}; choose from {', '.join(BUILDERS)}")
    return BUILDERS[kind](source, device, every=every, resolution=resolution)

