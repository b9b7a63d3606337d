"""Face analysis with pyfacer (``facer``): the FaRL CelebA attribute classifier, RetinaFace detection, FaRL
face parsing and keypoints, and the annotator that turns them into CAMOUFLaGE-Light's per-person encoding.

pyfacer ships no weights; its constructors download from GitHub releases unless given a local
``model_path``. Everything here loads from local files only (``camouflage-video models fetch light`` downloads
and converts them). The classifier and the detector are plain state dicts, loaded from ``.safetensors`` into
networks built here from pyfacer's own modules: pyfacer's ``farl_classification`` calls ``.cuda()``
unconditionally, so the classifier is assembled without it and runs on CPU and CUDA alike. The face parser
and the 68-point aligner are published only as TorchScript archives (a TorchScript program and its tensors,
no pickled Python objects); they are optional and load through pyfacer's own classes.

Examples:
    >>> classifier = load_attribute_classifier("face_attribute.farl.celeba.safetensors")  # doctest: +SKIP
    >>> analyzer = FaceAnalyzer(classifier)  # doctest: +SKIP
    >>> attrs = analyzer.analyze(image, CenterFaceDetector().detect(image))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.annotators.attribute_map import (
    ATTRIBUTE_NAMES,
    FACE_ATTRIBUTES_KEY,
    MAX_FACES,
    NUM_ATTRIBUTES,
    AttributeStabilizer,
    FaceAttributes,
    face_regions,
    landmarks_from_boxes,
)
from camouflage_video.annotators.base import Annotator
from camouflage_video.errors import ConfigError, ModelError, ProcessingError
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.models import FARL_FILE, ModelSource, load_state_dict

logger = logging.getLogger(__name__)

# pyfacer's model names and where pyfacer itself downloads them from (``models fetch`` uses these).
FACER_MODELS: dict[str, str] = {
    "farl/celeba/224": "https://github.com/FacePerceiver/facer/releases/download/models-v1/face_attribute.farl.celeba.pt",
    "retinaface/mobilenet": "https://github.com/elliottzheng/face-detection/releases/download/0.0.1/mobilenet0.25_Final.pth",
    "retinaface/resnet50": "https://github.com/elliottzheng/face-detection/releases/download/0.0.1/Resnet50_Final.pth",
    "farl/lapa/448": "https://github.com/FacePerceiver/facer/releases/download/models-v1/face_parsing.farl.lapa.main_ema_136500_jit191.pt",
    "farl/celebm/448": "https://github.com/FacePerceiver/facer/releases/download/models-v1/face_parsing.farl.celebm.main_ema_181500_jit.pt",
    "farl/ibug300w/448": "https://github.com/FacePerceiver/facer/releases/download/models-v1/face_alignment.farl.ibug300w.main_ema_jit.pt",
    "farl/wflw/448": "https://github.com/FacePerceiver/facer/releases/download/models-v1/face_alignment.farl.wflw.main_ema_jit.pt",
}
# Parsing labels that are not the person's head: a region never covers them.
_NOT_FACE = {"background", "neck", "cloth", "neck_l"}


def _facer() -> Any:
    return require("facer", "light", package="pyfacer")


def _torch() -> Any:
    return require("torch", "light")


def _resolve_device(device: Any) -> Any:
    torch = _torch()
    return torch.device(device) if device is not None else torch.device("cpu")


def _load_safetensors(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    safetensors_torch = require("safetensors.torch", "light", package="safetensors")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(
            f"{what}: {path} is not a .safetensors file; weights load as safetensors only "
            "(`camouflage-video models fetch light` converts pyfacer's published .pt files)"
        )
    if not path.is_file():
        raise ModelError(f"{what}: {path} does not exist")
    try:
        state = safetensors_torch.load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{what}: cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return {k.removeprefix("module."): v for k, v in state.items()}


# -- FaRL CelebA attribute classifier ---------------------------------------------------------------------


def build_attribute_network(
    width: int = 768, layers: int = 12, heads: int | None = None, patch_size: int = 16, input_resolution: int = 224,
    num_classes: int = NUM_ATTRIBUTES, head_layers: int = 1,
) -> Any:
    """pyfacer's FaRL classification network (``farl_classification``) without its ``.cuda()`` calls.

    The defaults are the published ``farl/celeba/224`` model (a CLIP ViT-B/16 read at its last layer); the
    state-dict keys are the same as pyfacer's, so its weights load unchanged.
    """
    torch = _torch()
    _facer()
    from facer.farl.classification import VITClassificationHeadV0, add_method, get_clip_encode_func
    from facer.farl.model import VisualTransformer

    backbone = VisualTransformer(
        input_resolution=input_resolution, patch_size=patch_size, width=width, layers=layers,
        heads=heads or max(1, width // 64), output_dim=512,
    )
    del backbone.proj, backbone.ln_post  # the classifier reads token features, not CLIP's projection
    add_method(backbone, "forward", get_clip_encode_func(list(range(layers - head_layers, layers))))
    head = VITClassificationHeadV0(num_features=head_layers, channel=width, num_labels=num_classes, norm=True)

    class FaRLClassifier(torch.nn.Module):
        # pyfacer's FACTransformer, minus the `self.cuda()` in its constructor.
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, image: Any) -> Any:
            return self.head(*self.backbone(image))

    return FaRLClassifier().float().eval()


def attribute_network_from_state_dict(state: dict[str, Any]) -> Any:
    """Build the classifier whose shape a state dict describes, and load it (strictly)."""
    try:
        width, _, patch, _ = state["backbone.conv1.weight"].shape
        sequence = state["backbone.positional_embedding"].shape[0]
        layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("backbone.transformer.resblocks."))
        num_classes = state["head.final_fc.weight"].shape[0]
        head_layers = state["head.weights"].shape[1] // 3
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelError(f"not a FaRL attribute classifier state dict ({type(exc).__name__}: {exc})") from exc
    resolution = round((sequence - 1) ** 0.5) * patch
    net = build_attribute_network(width, layers, None, patch, resolution, num_classes, head_layers)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"FaRL attribute classifier weights do not match: {exc}") from exc
    return net


class AttributeClassifier:
    """FaRL's CelebA classifier: 40 attribute probabilities per face, from five landmarks per face.

    Faces are aligned to 224x224 with pyfacer's own warp (``farl/celeba/224`` settings) and normalised as
    CLIP expects, exactly as ``facer.face_attr`` does.

    Args:
        net: The classification network (``build_attribute_network`` / ``load_attribute_classifier``).
        device: Where it runs.
        batch_size: Faces classified per forward pass.

    Examples:
        >>> classifier = load_attribute_classifier("farl_celeba.safetensors", device="cuda")  # doctest: +SKIP
        >>> probs = classifier(image, faces.landmarks)  # (N, 40)  # doctest: +SKIP
    """

    labels = ATTRIBUTE_NAMES

    def __init__(self, net: Any, device: Any = None, batch_size: int = 32) -> None:
        self.device = _resolve_device(device)
        self.net = net.to(self.device).eval()
        self.batch_size = batch_size
        self.calls = 0
        _facer()
        from facer.face_attribute.farl import pretrain_settings

        setting = pretrain_settings["celeba/224"]
        if tuple(setting["classes"]) != ATTRIBUTE_NAMES:
            raise ModelError("this pyfacer's CelebA attribute order differs from camouflage-video's")
        self._matrix, self._grid = setting["get_matrix_fn"], setting["get_grid_fn"]

    def __call__(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``(N, 40)`` float32 probabilities for the faces with landmarks ``points`` (``(N, 5, 2)``)."""
        torch = _torch()
        functional = require("torch.nn.functional", "light")
        points = np.asarray(points, np.float32).reshape(-1, 5, 2)
        if len(points) == 0:
            return np.zeros((0, NUM_ATTRIBUTES), np.float32)
        h, w = image.shape[:2]
        dtype = next(self.net.parameters()).dtype
        mean = torch.tensor((0.48145466, 0.4578275, 0.40821073), device=self.device).view(1, 3, 1, 1)
        std = torch.tensor((0.26862954, 0.26130258, 0.27577711), device=self.device).view(1, 3, 1, 1)
        out = []
        with torch.no_grad():
            pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 255
            for start in range(0, len(points), self.batch_size):
                chunk = torch.from_numpy(points[start : start + self.batch_size]).to(self.device)
                grid = self._grid(matrix=self._matrix(chunk), orig_shape=(h, w))
                crops = functional.grid_sample(pixels.expand(len(chunk), -1, -1, -1), grid, mode="bilinear",
                                               align_corners=False)
                logits = self.net(((crops - mean) / std).to(dtype))
                out.append(torch.sigmoid(logits.float()).cpu().numpy())
                self.calls += len(chunk)
        return np.concatenate(out).astype(np.float32)


def load_attribute_classifier(path: str | os.PathLike[str], device: Any = None) -> AttributeClassifier:
    """pyfacer's ``farl/celeba/224`` attribute classifier from a ``.safetensors`` state dict.

    Raises:
        ConfigError: The path is not a ``.safetensors`` file.
        ModelError: It is missing or is not a FaRL classifier.
    """
    state = _load_safetensors(path, "attribute classifier")
    return AttributeClassifier(attribute_network_from_state_dict(state), device)


def classifier_from_source(source: ModelSource, device: Any = None) -> AttributeClassifier:
    """The FaRL CelebA classifier of a ``face-attributes`` source (what ``models fetch`` converted)."""
    return AttributeClassifier(attribute_network_from_state_dict(load_state_dict(source, FARL_FILE)), device)


# -- RetinaFace (pyfacer's detector) -----------------------------------------------------------------------


class RetinaFaceDetector:
    """pyfacer's RetinaFace detector with the ``detect(image) -> Faces`` interface of ``CenterFaceDetector``.

    Args:
        net: A ``facer.face_detection.retinaface.RetinaFace`` network in test phase.
        threshold: Minimum face score.
        device: Where it runs.

    Examples:
        >>> detector = load_retinaface("mobilenet0.25_Final.safetensors")  # doctest: +SKIP
        >>> faces = detector.detect(image)  # doctest: +SKIP
    """

    def __init__(self, net: Any, threshold: float = 0.8, device: Any = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"threshold must be within (0, 1), got {threshold}")
        self.device = _resolve_device(device)
        self.net, self.threshold = net.to(self.device).eval(), threshold

    def detect(self, image: np.ndarray) -> Faces:
        torch = _torch()
        from facer.face_detection.retinaface import batch_detect

        with torch.no_grad():
            pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None]
            # RetinaFace was trained on BGR images (its mean subtraction is in BGR order).
            found = batch_detect(self.net, pixels.flip(1).float(), threshold=self.threshold)
        if len(found["rects"]) == 0:
            return Faces.empty()
        return Faces.from_boxes(
            found["rects"].cpu().numpy(), scores=found["scores"].cpu().numpy(),
            landmarks=found["points"].cpu().numpy(),
        )


def retinaface_from_state_dict(state: dict[str, Any], network: str = "mobilenet") -> Any:
    """pyfacer's RetinaFace network (``mobilenet`` or ``resnet50``) with ``state`` loaded strictly."""
    _facer()
    from facer.face_detection.retinaface import RetinaFace, cfg_mnet, cfg_re50

    configs = {"mobilenet": cfg_mnet, "resnet50": cfg_re50}
    if network not in configs:
        raise ConfigError(f"RetinaFace network must be one of {', '.join(configs)}, got {network!r}")
    net = RetinaFace(cfg=dict(configs[network], pretrain=False), phase="test")
    try:
        net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"RetinaFace {network}: weights do not match: {exc}") from exc
    return net


def load_retinaface(
    path: str | os.PathLike[str], network: str = "mobilenet", threshold: float = 0.8, device: Any = None
) -> RetinaFaceDetector:
    """pyfacer's ``retinaface/mobilenet`` or ``retinaface/resnet50`` detector from a ``.safetensors`` file."""
    state = _load_safetensors(path, "RetinaFace")
    return RetinaFaceDetector(retinaface_from_state_dict(state, network), threshold, device)


# -- optional TorchScript models: face parsing and 68-point alignment ---------------------------------------


def load_face_parser(path: str | os.PathLike[str], name: str = "farl/lapa/448", device: Any = None) -> Any:
    """pyfacer's FaRL face parser (``farl/lapa/448`` or ``farl/celebm/448``) from its local TorchScript file."""
    return _load_torchscript_model(path, name, "face_parser", "face parser", device)


def load_face_aligner(path: str | os.PathLike[str], name: str = "farl/ibug300w/448", device: Any = None) -> Any:
    """pyfacer's FaRL landmark model (``farl/ibug300w/448``: 68 points) from its local TorchScript file."""
    return _load_torchscript_model(path, name, "face_aligner", "face aligner", device)


def _load_torchscript_model(path: str | os.PathLike[str], name: str, factory: str, what: str, device: Any) -> Any:
    facer = _facer()
    if name not in FACER_MODELS:
        raise ConfigError(f"unknown pyfacer model {name!r}; known: {', '.join(FACER_MODELS)}")
    path = Path(path)
    if not path.is_file():
        # pyfacer would download when given no local file; a run never does.
        raise ModelError(f"{what}: {path} does not exist (`camouflage-video models fetch light` downloads {name})")
    try:
        return getattr(facer, factory)(name, _resolve_device(device), model_path=str(path)).eval()
    except Exception as exc:
        raise ModelError(f"{what}: cannot load {path} as {name}: {type(exc).__name__}: {exc}") from exc


# -- analysis ----------------------------------------------------------------------------------------------


class FaceAnalyzer:
    """Attributes, keypoints and regions of the given faces of one image.

    Faces held by tracking (the detector missed them) are not classified: their box is a prediction, and the
    stabilizer fills in their track's values.

    Args:
        classifier: The attribute classifier.
        parser: Optional pyfacer face parser; regions then follow the parsed head instead of an ellipse.
        aligner: Optional pyfacer aligner; the keypoint channel then holds its points instead of the five
            detection landmarks.
        region_scale: Growth of face boxes for the elliptical regions.
        region_size: Long side of the region label map (it is resized to the generation size later).

    Examples:
        >>> analyzer = FaceAnalyzer(load_attribute_classifier("farl_celeba.safetensors"))  # doctest: +SKIP
        >>> attrs = analyzer.analyze(frame.image, faces)  # doctest: +SKIP
    """

    def __init__(
        self, classifier: Any, parser: Any = None, aligner: Any = None, region_scale: float = 1.2,
        region_size: int = 512,
    ) -> None:
        if not 0.5 <= region_scale <= 3.0:
            raise ConfigError(f"region scale must be within 0.5..3, got {region_scale}")
        if region_size < 16:
            raise ConfigError(f"region size must be >= 16, got {region_size}")
        self.classifier, self.parser, self.aligner = classifier, parser, aligner
        self.region_scale, self.region_size = region_scale, region_size

    def analyze(self, image: np.ndarray, faces: Faces) -> FaceAttributes:
        """The faces' per-frame attributes (``probs`` equal ``observed``; seeds -1)."""
        h, w = image.shape[:2]
        n = len(faces)
        if n > MAX_FACES:
            raise ProcessingError(f"{n} faces in one frame; at most {MAX_FACES} can be encoded")
        if n == 0:
            return FaceAttributes.empty((w, h))
        points = faces.landmarks.copy()
        missing = ~np.isfinite(points).all(axis=(1, 2))
        points[missing] = landmarks_from_boxes(faces.xyxy[missing])
        sizes = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
        seen = ~faces.held & (sizes > 1).all(axis=1)

        observed = np.full((n, NUM_ATTRIBUTES), np.nan, np.float32)
        if seen.any():
            observed[seen] = self.classifier(image, points[seen])

        keypoints = points
        if self.aligner is not None:
            keypoints = np.full((n, 68, 2), np.nan, np.float32)
            if seen.any():
                aligned = self._facer_call(self.aligner, image, points[seen])["alignment"]
                keypoints = np.full((n, aligned.shape[1], 2), np.nan, np.float32)
                keypoints[seen] = aligned.cpu().numpy()

        scale = min(1.0, self.region_size / max(h, w))
        region_w, region_h = max(1, round(w * scale)), max(1, round(h * scale))
        masks = self._parse(image, points, seen, (region_w, region_h)) if self.parser is not None else None
        regions = face_regions(faces.xyxy, (w, h), (region_w, region_h), self.region_scale, masks)
        return FaceAttributes(
            xyxy=faces.xyxy.astype(np.float32), probs=observed.copy(), observed=observed,
            keypoints=keypoints.astype(np.float32), regions=regions, seeds=np.full(n, -1, np.int64),
            frame_size=(w, h),
        )

    def _parse(self, image: np.ndarray, points: np.ndarray, seen: np.ndarray, size: tuple[int, int]) -> list:
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if size != image.shape[1::-1] else image
        scale = np.array([size[0] / image.shape[1], size[1] / image.shape[0]], np.float32)
        masks: list[np.ndarray | None] = [None] * len(points)
        if not seen.any():
            return masks
        seg = self._facer_call(self.parser, small, points[seen] * scale)["seg"]
        labels = seg["logits"].argmax(dim=1).cpu().numpy()
        head = np.array([name not in _NOT_FACE for name in seg["label_names"]])
        for row, label in zip(np.flatnonzero(seen), labels, strict=True):
            masks[row] = head[label]
        return masks

    def _facer_call(self, model: Any, image: np.ndarray, points: np.ndarray) -> dict:
        """Run a pyfacer parser or aligner on one image (the models were loaded on the classifier's device)."""
        torch = _torch()
        device = getattr(self.classifier, "device", "cpu")
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
        data = {
            "image_ids": torch.zeros(len(points), dtype=torch.long, device=device),
            "points": torch.from_numpy(np.ascontiguousarray(points, np.float32)).to(device),
        }
        with torch.no_grad():
            return model(pixels, data)


class FaceAttributeAnnotator(Annotator):
    """Adds ``ctx.extras["face_attributes"]``: stabilized per-track attributes, keypoints and regions.

    Runs after face detection and tracking (``after_tracking``: it reads the track ids); every face in
    ``ctx.faces`` is encoded, confirmed track or not.

    Args:
        analyzer: Per-frame face analysis.
        stabilizer: Per-track aggregation and seeds (``AttributeStabilizer(mode="off")`` for none).

    Examples:
        >>> annotator = FaceAttributeAnnotator(FaceAnalyzer(classifier), AttributeStabilizer(seed=7))  # doctest: +SKIP
        >>> detector.annotate(ctx); tracker.annotate(ctx); annotator.annotate(ctx)  # doctest: +SKIP
        >>> ctx.extras["face_attributes"].probs.shape  # doctest: +SKIP
        (1, 40)
    """

    name = "attributes"
    after_tracking = True

    def __init__(self, analyzer: FaceAnalyzer, stabilizer: AttributeStabilizer | None = None) -> None:
        self.analyzer = analyzer
        self.stabilizer = stabilizer or AttributeStabilizer()

    def annotate(self, ctx: FrameContext) -> None:
        faces = ctx.faces if ctx.faces is not None else Faces.empty()
        attrs = self.analyzer.analyze(ctx.frame.image, faces)
        probs, seeds = self.stabilizer.update(faces.track_ids, attrs.observed)
        # A face never classified and without history (held on its first frames) gets neutral values.
        ctx.extras[FACE_ATTRIBUTES_KEY] = replace(attrs, probs=np.where(np.isfinite(probs), probs, 0.5), seeds=seeds)

    def reset(self) -> None:
        self.stabilizer.reset()

    @property
    def calls(self) -> int:
        """Faces classified so far."""
        return int(getattr(self.analyzer.classifier, "calls", 0))
