"""Face recognizers that play the attacker: identity embeddings and the distance at which two faces match.

The default is dlib's 128-d ResNet (face-recognition-models + dlib-bin, weights inside the PyPI wheel, so it
runs offline). Others plug in through :func:`register_recognizer`; :class:`ArcFaceRecognizer` runs any
ArcFace-style ONNX model (e.g. insightface's ``w600k_r50.onnx``) when its weights are on disk.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError, MissingDependencyError, ModelError
from camouflage_video.evaluation.dlib_resnet import CHIP_PADDING, CHIP_SIZE, ResNetSession
from camouflage_video.frame import Faces

logger = logging.getLogger(__name__)

#: dlib-bin and face-recognition-models are core dependencies (run-time verification uses them).
EXTRA = None
#: What runs dlib's face ResNet (DlibRecognizer's ``network``).
NETWORKS = ("auto", "onnxruntime", "dlib")
#: How far onnxruntime's descriptor may be from dlib's own (measured: 4e-7 on real faces; matches are < 0.6 apart).
DESCRIPTOR_TOLERANCE = 1e-4


class Recognizer:
    """Base class: turn faces into identity embeddings.

    ``prepare`` computes the alignment of faces in the *original* image once; ``embed`` applies the same
    alignment to any image of the same geometry. Aligning the anonymized face with the original face's
    landmarks grants the attacker perfect alignment, so the measured risk is an upper bound for the
    recognizer rather than an artefact of landmarks lost in a blurred face.

    Attributes:
        name: Registry name, shown in reports.
        threshold: Distance below which two faces are taken for the same person.
        metric: ``"euclidean"`` or ``"cosine"`` (1 - cosine similarity), how ``distance`` compares.
        min_face_size: Face height in pixels under which the recognizer cannot be trusted to tell people
            apart; smaller faces are reported apart.
    """

    name: str = "recognizer"
    threshold: float = 0.6
    metric: str = "euclidean"
    min_face_size: int = 20

    def prepare(self, image: np.ndarray, faces: Faces) -> Any:
        """Alignment of every face of ``faces`` in ``image`` (opaque to callers)."""
        raise NotImplementedError

    def embed(self, image: np.ndarray, prepared: Any) -> np.ndarray:
        """``(N, D)`` float32 embeddings of the prepared faces, read from ``image``."""
        raise NotImplementedError

    def embed_pair(self, original: np.ndarray, anonymized: np.ndarray, faces: Faces) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the same faces in the original and the anonymized frame, aligned on the original."""
        embedded = self.embed_versions(original, [anonymized], faces)
        return embedded[0], embedded[1]

    def embed_versions(self, original: np.ndarray, versions: Sequence[np.ndarray], faces: Faces) -> list[np.ndarray]:
        """Embeddings of the same faces in the original and in other versions of the frame (same size).

        Every version is read with the original face's alignment. Returns one ``(N, D)`` array per image,
        the original's first.
        """
        if len(faces) == 0:
            return [self._empty() for _ in range(1 + len(versions))]
        prepared = self.prepare(original, faces)
        return [self.embed(image, prepared) for image in (original, *versions)]

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pairwise ``(len(a), len(b))`` distances between two sets of embeddings."""
        a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
        if self.metric == "cosine":
            a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
            b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
            return np.clip(1.0 - a @ b.T, 0.0, 2.0)
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.maximum(squared, 0.0))

    def rowwise_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance between ``a[i]`` and ``b[i]`` for every row."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if len(a) == 0:
            return np.zeros(0)
        if self.metric == "cosine":
            return np.array([self.distance(x, y)[0, 0] for x, y in zip(a, b, strict=True)])
        return np.linalg.norm(a - b, axis=1)  # direct difference: identical faces give exactly 0

    def recovery(self, original: np.ndarray, anonymized: np.ndarray, null: np.ndarray) -> np.ndarray:
        """How far each anonymized embedding lies from its null towards its original, row by row.

        The projection of ``anonymized - null`` on ``original - null``, divided by the length of the
        latter: 0 when the anonymized face is no closer to the original than its null along that line, 1
        when it is as close as the original itself. Noise in the other 127 directions, which swamps the
        distances of faces a few pixels tall, barely moves it. Where the null embeds exactly like the
        original (the recognizer ignores the face region) nothing can be told apart and the result is 1,
        so the caller falls back on the plain threshold.
        """
        o, a, n = (np.atleast_2d(np.asarray(x, np.float64)) for x in (original, anonymized, null))
        if len(o) == 0:
            return np.zeros(0)
        if self.metric == "cosine":  # compare directions, as the metric does
            o, a, n = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in (o, a, n))
        axis = o - n
        length2 = (axis * axis).sum(axis=1)
        along = ((a - n) * axis).sum(axis=1)
        return np.where(length2 > 1e-12, along / np.maximum(length2, 1e-12), 1.0)

    def describe(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "metric": self.metric}

    def _empty(self) -> np.ndarray:
        return np.zeros((0, 0), np.float32)


def face_recognition_models_dir() -> Path:
    """The ``models`` folder of the installed ``face_recognition_models`` package.

    Found through importlib rather than imported: the package's ``__init__`` needs ``pkg_resources``,
    which setuptools 81 removed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "face-recognition-models is a dependency of camouflage-video but is missing: "
            "pip install --force-reinstall camouflage-video (or pip install face-recognition-models)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibRecognizer(Recognizer):
    """dlib's ResNet face descriptor (128-d, 99.38% on LFW); faces match below 0.6 euclidean distance.

    Faces are aligned with dlib's 5-point shape predictor run inside each detected box.

    Args:
        model_dir: Folder holding ``shape_predictor_5_face_landmarks.dat`` and
            ``dlib_face_recognition_resnet_model_v1.dat``; defaults to the face-recognition-models package.
        threshold: Match distance (dlib's standard is 0.6).
        network: What runs the ResNet: ``"onnxruntime"`` (its weights read from dlib's file, the same
            descriptors to 1e-5, 4 ms a face against 74 ms for the dlib-bin wheel's own code), ``"dlib"``, or
            ``"auto"`` (onnxruntime, or dlib where the file cannot be read that way).
        threads: onnxruntime threads for the network (1: one core, as dlib's own code uses).

    Examples:
        >>> recognizer = DlibRecognizer()  # doctest: +SKIP
        >>> original, anonymized = recognizer.embed_pair(image, anonymized_image, faces)  # doctest: +SKIP
        >>> recognizer.rowwise_distance(original, anonymized) < recognizer.threshold  # doctest: +SKIP
        array([False])
    """

    name = "dlib"
    metric = "euclidean"
    # 96% verification accuracy at 20 px, 91% at 16, 72% at 12 (benchmarks/RESULTS.md, evaluate calibration).
    min_face_size = 20

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        threshold: float = 0.6,
        network: str = "auto",
        threads: int = 1,
    ) -> None:
        if threshold <= 0:
            raise ConfigError(f"recognizer threshold must be > 0, got {threshold}")
        if network not in NETWORKS:
            raise ConfigError(f"unknown dlib network {network!r}; use one of {', '.join(NETWORKS)}")
        if threads < 1:
            raise ConfigError(f"recognizer threads must be at least 1, got {threads}")
        self.threshold = threshold
        dlib = require("dlib", EXTRA, package="dlib-bin")
        folder = Path(model_dir) if model_dir else face_recognition_models_dir()
        predictor = folder / "shape_predictor_5_face_landmarks.dat"
        resnet = folder / "dlib_face_recognition_resnet_model_v1.dat"
        for path in (predictor, resnet):
            if not path.is_file():
                raise ModelError(f"{path}: dlib model file missing (pip install --force-reinstall "
                                 "face-recognition-models)")
        try:
            self._predictor = dlib.shape_predictor(str(predictor))
            self._resnet = dlib.face_recognition_model_v1(str(resnet))
        except RuntimeError as exc:
            raise ModelError(f"{folder}: cannot load dlib's face models ({exc})") from exc
        self._dlib = dlib
        self._session: ResNetSession | None = None
        if network != "dlib":
            try:
                self._session = self._checked(ResNetSession(resnet, threads=threads))
            except ModelError as exc:
                if network == "onnxruntime":
                    raise
                logger.warning("%s; computing descriptors with dlib's own code (slower, same descriptors)", exc)
        self.network = "onnxruntime" if self._session is not None else "dlib"

    def _checked(self, session: ResNetSession) -> ResNetSession:
        """``session`` once it gives dlib's own descriptor for a test face; the verdicts of every check rest on it.

        A network that computed other descriptors would not fail loudly: its distances would just be wrong, and
        a face it took for cleared would go out recognisable. The test goes through the whole path a face takes,
        from the picture and its five landmarks: the chip this class cuts out with ``get_face_chips`` must be
        the one ``compute_face_descriptor`` cuts out itself. It costs dlib's code about 74 ms.
        """
        dlib = self._dlib
        picture = np.random.default_rng(0).integers(0, 256, (240, 240, 3), dtype=np.uint8)
        # A tilted face's five points (eye corners, nose) in a 100 px box: the chip is rotated and scaled.
        points = [(150, 100), (130, 102), (90, 104), (110, 103), (121, 142)]
        shape = dlib.full_object_detection(dlib.rectangle(70, 60, 170, 170), [dlib.point(*p) for p in points])
        want = np.asarray(self._resnet.compute_face_descriptor(picture, shape), np.float32)
        shapes = dlib.full_object_detections()
        shapes.append(shape)
        got = session(self._chips(picture, shapes))[0]
        if not np.allclose(got, want, atol=DESCRIPTOR_TOLERANCE):
            raise ModelError(f"onnxruntime's copy of dlib's face ResNet gives another descriptor (off by "
                             f"{np.abs(got - want).max():.2g})")
        return session

    def prepare(self, image: np.ndarray, faces: Faces) -> Any:
        dlib = self._dlib
        shapes = dlib.full_object_detections()
        for x1, y1, x2, y2 in faces.xyxy:
            box = dlib.rectangle(*(round(float(v)) for v in (x1, y1, x2, y2)))
            shapes.append(self._predictor(image, box))
        return shapes

    def embed(self, image: np.ndarray, prepared: Any) -> np.ndarray:
        if len(prepared) == 0:
            return self._empty()
        if self._session is not None:
            return self._session(self._chips(image, prepared))
        vectors = self._resnet.compute_face_descriptor(np.ascontiguousarray(image), prepared)
        return np.asarray([np.asarray(v) for v in vectors], np.float32)

    def embed_versions(self, original: np.ndarray, versions: Sequence[np.ndarray], faces: Faces) -> list[np.ndarray]:
        if len(faces) == 0:
            return [self._empty() for _ in range(1 + len(versions))]
        shapes = self.prepare(original, faces)
        images = [np.ascontiguousarray(image) for image in (original, *versions)]
        # One batched call for every version: the network runs once over all chips.
        if self._session is not None:
            embedded = self._session(np.concatenate([self._chips(image, shapes) for image in images]))
            return list(embedded.reshape(len(images), len(faces), -1))
        embedded = self._resnet.compute_face_descriptor(images, [shapes] * len(images))
        return [np.asarray([np.asarray(v) for v in part], np.float32) for part in embedded]

    def _chips(self, image: np.ndarray, shapes: Any) -> np.ndarray:
        """The aligned chips dlib's compute_face_descriptor takes from ``image`` (same size and padding)."""
        chips = self._dlib.get_face_chips(np.ascontiguousarray(image), shapes, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.stack(chips)

    def describe(self) -> dict:
        return {**super().describe(), "network": self.network}

    def _empty(self) -> np.ndarray:
        return np.zeros((0, 128), np.float32)


# ArcFace's 112x112 template for (left eye, right eye, nose, left mouth corner, right mouth corner):
# the same five points, in the same order, that CenterFace predicts.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)


class ArcFaceRecognizer(Recognizer):
    """An ArcFace-style ONNX model (112x112 RGB input, embedding output) run through OpenCV DNN.

    Faces are aligned to the standard ArcFace template with a similarity transform of the detector's five
    landmarks; the input is normalised as ``(pixel - 127.5) / 127.5``. Nothing is downloaded: pass the
    ``.onnx`` file (insightface's ``w600k_r50.onnx`` from its buffalo_l pack is the usual choice).

    Args:
        model_path: The ONNX file.
        threshold: Cosine distance (1 - similarity) below which faces match. ArcFace has no single
            standard; 0.6 (similarity 0.4) is a common operating point for w600k_r50.

    Examples:
        >>> recognizer = ArcFaceRecognizer("~/.insightface/models/buffalo_l/w600k_r50.onnx")  # doctest: +SKIP
    """

    name = "arcface"
    metric = "cosine"

    def __init__(self, model_path: str | os.PathLike[str] | None = None, threshold: float = 0.6) -> None:
        if model_path is None:
            raise ConfigError("the arcface recognizer needs its ONNX file: pass --recognizer-model PATH")
        if not 0 < threshold < 2:
            raise ConfigError(f"arcface threshold is a cosine distance within (0, 2), got {threshold}")
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: ArcFace ONNX file not found")
        try:
            self._net = cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as exc:
            raise ModelError(f"{self.model_path}: cannot load as an ONNX model") from exc
        self.threshold = threshold

    def prepare(self, image: np.ndarray, faces: Faces) -> Any:
        matrices = []
        for box, points in zip(faces.xyxy, faces.landmarks, strict=True):
            if np.isnan(points).any():  # no landmarks: fall back to the box, centred on the template
                x1, y1, x2, y2 = box
                points = ARCFACE_TEMPLATE / 112.0 * [x2 - x1, y2 - y1] + [x1, y1]
            matrix, _ = cv2.estimateAffinePartial2D(points.astype(np.float32), ARCFACE_TEMPLATE, method=cv2.LMEDS)
            if matrix is None:
                raise ModelError("cannot align a face to the ArcFace template (degenerate landmarks)")
            matrices.append(matrix)
        return matrices

    def embed(self, image: np.ndarray, prepared: Any) -> np.ndarray:
        if not prepared:
            return self._empty()
        chips = [cv2.warpAffine(image, m, (112, 112), borderValue=0) for m in prepared]
        blob = cv2.dnn.blobFromImages(chips, 1.0 / 127.5, (112, 112), (127.5, 127.5, 127.5), swapRB=False)
        self._net.setInput(blob)
        try:
            out = self._net.forward()
        except cv2.error as exc:
            raise ModelError(f"{self.model_path}: inference failed ({str(exc).splitlines()[0]})") from exc
        out = out.reshape(len(chips), -1).astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


RecognizerFactory = Callable[..., Recognizer]
RECOGNIZERS: dict[str, RecognizerFactory] = {"dlib": DlibRecognizer, "arcface": ArcFaceRecognizer}


def register_recognizer(name: str, factory: RecognizerFactory) -> None:
    """Make another recognizer available by name (to ``evaluate`` and ``--recognizer``).

    ``factory`` is called as ``factory(model_path_or_None, threshold=..., **options)``, the threshold and
    the options (such as ``network=``) only where :func:`load_recognizer` is given them. An option the
    factory's signature does not name is refused there with a :class:`ConfigError`.
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"recognizer names are alphanumeric, got {name!r}")
    RECOGNIZERS[name] = factory


def load_recognizer(
    name: str = "dlib", model: str | os.PathLike[str] | None = None, threshold: float | None = None, **options: Any
) -> Recognizer:
    """Build a registered recognizer.

    Args:
        name: Registry name (``dlib``, ``arcface`` or one added with :func:`register_recognizer`).
        model: Model file or folder, where the recognizer takes one.
        threshold: Match distance; ``None`` keeps the recognizer's standard.
        **options: Passed on to the recognizer's factory (``network="dlib"`` for :class:`DlibRecognizer`).

    Raises:
        ConfigError: Unknown name, bad threshold, or an option the recognizer does not take.
        MissingDependencyError, ModelError: The recognizer cannot be built here.

    Examples:
        >>> recognizer = load_recognizer("dlib", network="dlib")  # doctest: +SKIP
        >>> recognizer.describe()["network"]  # doctest: +SKIP
        'dlib'
    """
    if name not in RECOGNIZERS:
        raise ConfigError(f"unknown recognizer {name!r}; choose one of {', '.join(sorted(RECOGNIZERS))}")
    factory = RECOGNIZERS[name]
    if threshold is not None:
        options = {"threshold": threshold, **options}
    _check_options(name, factory, options)
    return factory(model, **options)


def _check_options(name: str, factory: RecognizerFactory, options: dict[str, Any]) -> None:
    """Refuse the options ``factory`` does not name, so that a typo reads as a config error, not a TypeError."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): the call itself will tell
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    # The first positional parameter receives the model; the keyword-capable ones after it are the options.
    keywords = [p.name for p in parameters[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [option for option in options if option not in keywords]
    if unknown:
        takes = f"it takes {', '.join(keywords)}" if keywords else "it takes none"
        raise ConfigError(f"the {name} recognizer has no option {', '.join(map(repr, unknown))} ({takes})")
