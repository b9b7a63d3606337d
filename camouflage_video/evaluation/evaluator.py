"""The evaluation run: stream paired frames, find and pair faces, embed them, and add up every measure.

One pass over the inputs; memory holds the current and previous pair of frames, one small record per
analysed face (its distances, not its pixels), the embeddings for the gallery search, and a bounded number
of thumbnails for the report.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video import __version__
from camouflage_video.annotators.faces import CenterFaceDetector
from camouflage_video.annotators.tracking import FaceTracker
from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.evaluation.attack import Candidates, Labels, attack_summary, tool_anonymizer
from camouflage_video.evaluation.attributes import AttributeAgreement, AttributeModel
from camouflage_video.evaluation.metrics import (
    distance_summary,
    face_boxes_mask,
    identity_ranks,
    masked_psnr,
    masked_ssim,
    outside_faces_mask,
    rate,
)
from camouflage_video.evaluation.pairing import FramePair, PairedInputs, box_iou, match_faces
from camouflage_video.evaluation.recognizers import Recognizer, load_recognizer
from camouflage_video.evaluation.temporal import FlowWarpingError, WarpSample, summarize_warping
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.sources.images import list_images, read_image

logger = logging.getLogger(__name__)

LEAK_RULES = ("null", "threshold")
SIZE_BUCKETS = (0, 20, 30, 40, 60, 100)  # face heights (px) of the by-size table; the last bucket is open


@dataclass(frozen=True)
class EvaluationConfig:
    """Options of an evaluation.

    Attributes:
        step: Analyse every ``step``-th frame of a video (faces, embeddings, fidelity, flow); 1 audits
            every frame. Images and folders are always analysed whole.
        thresh: CenterFace threshold for faces in the original. Higher than the anonymizer's default:
            here a false detection would be counted as a face to protect.
        det_size: Long side of the detection input (0: full resolution).
        nms: Box overlap above which detections merge.
        recognizer: Registered recognizer name (``dlib``, ``arcface``).
        recognizer_model: Model file or folder for the recognizer, where it takes one.
        threshold: Match distance; ``None`` keeps the recognizer's standard (0.6 for dlib).
        pair_by: ``time`` or ``index`` for video pairs.
        mask_scale: Growth of original face boxes excluded from the fidelity measures.
        analysis_size: Long side of the frames used for SSIM and optical flow.
        match_iou: Minimum overlap for an anonymized detection to count as the same face.
        leak_rule: ``null``: a face leaks when it matches (distance below the threshold) *and* its face
            region recovers at least ``min_recovery`` of the identity, measured against its null version
            (the anonymized frame with the face region filled black), so a match that context alone explains
            is no leak. ``threshold``: every match is a leak (no null embedding is computed).
        null_scale: Growth of the face box filled in the null version; match the anonymizer's ``mask_scale``.
        min_recovery: Share of the way from its null to the original (in embedding space) a matching face
            must cover to leak: 0 counts every match closer than its null, 1 only faces as close as the
            original itself.
        min_face_size: Face height in pixels under which the recognizer is reported unreliable (counted
            and shown apart, never dropped); ``None`` keeps the recognizer's (20 for dlib).
        gallery: Folder of extra face photos (one identity each) added as distractors to the gallery.
        attribute_model: Local weights of facer's FaRL CelebA attribute classifier (safetensors).
        attack_gallery: Folder of candidate photos of known people for the tool-aware attack (see
            :mod:`.attack`): each is anonymized like the footage and every labelled face of the footage
            is searched among them; identities from its ``identities.csv`` or the file names.
        attack_method: Classic method the candidates are anonymized with (the tool's default, ``blur``).
        attack_mask_scale: Mask scale of that anonymization; ``None`` takes ``null_scale``.
        attack_anonymized: Folder of the candidates already anonymized (same relative paths), by any method
            or tool; replaces ``attack_method``.
        attack_identities: CSV (``file``, ``identity``) naming the candidates; default: the gallery's own
            ``identities.csv``, else the file names.
        identities: CSV (``file``, ``identity``, optional ``source``) naming who the largest face of each
            original image is; default: the original folder's ``identities.csv``, else the file names.
        thumbnails: Put face crops in the report (disable to share a report without any face pixels).
        max_thumbnails: Leak thumbnails kept (one per track, the closest matches first).
        worst_cases: Faces shown side by side as the worst cases.

    Examples:
        >>> EvaluationConfig(step=5, threshold=0.55).step
        5
    """

    step: int = 1
    thresh: float = 0.5
    det_size: int = 960
    nms: float = 0.3
    recognizer: str = "dlib"
    recognizer_model: str | None = None
    threshold: float | None = None
    pair_by: str = "time"
    mask_scale: float = 1.5
    analysis_size: int = 640
    match_iou: float = 0.3
    leak_rule: str = "null"
    null_scale: float = 1.3
    min_recovery: float = 0.5
    min_face_size: int | None = None
    gallery: str | None = None
    attribute_model: str | None = None
    attack_gallery: str | None = None
    attack_method: str = "blur"
    attack_mask_scale: float | None = None
    attack_anonymized: str | None = None
    attack_identities: str | None = None
    identities: str | None = None
    thumbnails: bool = True
    max_thumbnails: int = 48
    worst_cases: int = 8

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ConfigError(f"step must be >= 1, got {self.step}")
        if not 0 < self.match_iou <= 1:
            raise ConfigError(f"match_iou must be within (0, 1], got {self.match_iou}")
        if not 1.0 <= self.mask_scale <= 5.0:
            raise ConfigError(f"mask_scale must be within 1..5, got {self.mask_scale}")
        if self.max_thumbnails < 0 or self.worst_cases < 0:
            raise ConfigError("max_thumbnails and worst_cases must be >= 0")
        if self.analysis_size < 32:
            raise ConfigError(f"analysis_size must be at least 32, got {self.analysis_size}")
        if self.leak_rule not in LEAK_RULES:
            raise ConfigError(f"leak_rule must be one of {', '.join(LEAK_RULES)}, got {self.leak_rule!r}")
        if not 1.0 <= self.null_scale <= 5.0:
            raise ConfigError(f"null_scale must be within 1..5, got {self.null_scale}")
        if not 0 <= self.min_recovery <= 1:
            raise ConfigError(f"min_recovery must be within [0, 1], got {self.min_recovery}")
        if self.min_face_size is not None and self.min_face_size < 0:
            raise ConfigError(f"min_face_size must be >= 0, got {self.min_face_size}")
        if self.attack_mask_scale is not None and not 0.5 <= self.attack_mask_scale <= 5:
            raise ConfigError(f"attack_mask_scale must be within 0.5..5, got {self.attack_mask_scale}")
        if (self.attack_anonymized or self.identities or self.attack_identities) and not self.attack_gallery:
            raise ConfigError("attack_anonymized, attack_identities and identities need attack_gallery")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One face of the original and its anonymized counterpart at one frame.

    Attributes:
        frame: Pair index (frame of a video, image of a folder).
        time: Seconds into the video, ``None`` for images.
        key: Relative path of the image, ``None`` for videos.
        identity: Track id in a video; a unique number per face for images.
        box: Face box in the original, ``x1, y1, x2, y2`` pixels.
        score: Detector confidence in the original.
        distance: Recognizer distance between the original and the anonymized face.
        leak: The anonymized face is re-identified: it matches the original and, under the ``null`` rule,
            its ``recovery`` reaches ``min_recovery`` (see :class:`EvaluationConfig`).
        detected: A face was detected at the same place in the anonymized frame.
        match: The distance is below the recognizer's threshold (the plain threshold verdict).
        null_distance: Distance between the original face and its null version, the anonymized frame with
            the face region filled: what context alone (hair, contour, background) gives the recognizer.
            ``None`` under the ``threshold`` rule.
        recovery: How far the anonymized face lies from its null towards the original, as a share of the
            way (projection in embedding space): about 0 when the face region adds nothing to the context,
            about 1 for an unchanged face. ``None`` under the ``threshold`` rule.
        small: The face is smaller than the recognizer's reliable size (``min_face_size``).
        step_original: Distance to the same track's previous analysed face, in the original.
        step_anonymized: Same in the anonymized video (identity stability of the fake identity).
        rank: Rank of the true identity when this anonymized face is searched in the gallery.
    """

    frame: int
    time: float | None
    key: str | None
    identity: int
    box: tuple[float, float, float, float]
    score: float
    distance: float
    leak: bool
    detected: bool
    match: bool = False
    null_distance: float | None = None
    recovery: float | None = None
    small: bool = False
    step_original: float | None = None
    step_anonymized: float | None = None
    rank: int | None = None

    def __post_init__(self) -> None:
        if self.distance < 0:
            raise ValueError(f"distance must be >= 0, got {self.distance}")
        if self.leak and not self.match:
            raise ValueError("a leak must be a match (distance below the threshold)")

    @property
    def size(self) -> float:
        """Face height in pixels (the long side of a detector's face box)."""
        return float(self.box[3] - self.box[1])

    def to_dict(self) -> dict:
        out = asdict(self)
        out["box"] = [round(float(v), 1) for v in self.box]
        out["size"] = round(self.size, 1)
        for name in ("distance", "null_distance", "recovery", "step_original", "step_anonymized", "score", "time"):
            if out[name] is not None:
                out[name] = round(float(out[name]), 4)
        return out


@dataclass(frozen=True, slots=True)
class FaceCase:
    """A face shown in the report: its record and JPEG thumbnails of both versions (empty when disabled)."""

    record: FaceRecord
    original_jpeg: bytes = b""
    anonymized_jpeg: bytes = b""


@dataclass
class EvaluationResult:
    """Everything an evaluation measured. ``to_dict()`` is the JSON; :mod:`.report` renders the HTML."""

    original: dict
    anonymized: dict
    config: dict
    recognizer: dict
    frames: dict
    calibration: dict = field(default_factory=dict)
    faces: list[FaceRecord] = field(default_factory=list)
    warping: list[WarpSample] = field(default_factory=list)
    fidelity: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)
    gallery: dict = field(default_factory=dict)
    leak_cases: list[FaceCase] = field(default_factory=list)
    worst_cases: list[FaceCase] = field(default_factory=list)
    extra_faces: int = 0
    interrupted: bool = False
    attack: dict | None = None
    run: dict | None = None  # what the anonymizing run did, from its --stats (see evaluate(run_stats=...))

    @property
    def leaks(self) -> list[FaceRecord]:
        """Every analysed face whose anonymized version is re-identified (see :attr:`FaceRecord.leak`)."""
        return [f for f in self.faces if f.leak]

    @property
    def threshold(self) -> float:
        return float(self.recognizer["threshold"])

    def verdict(self) -> str:
        """``leak`` (some face re-identified), ``pass`` or ``no-faces`` (nothing to judge)."""
        if not self.faces:
            return "no-faces"
        return "leak" if any(f.leak for f in self.faces) else "pass"

    def tracks(self) -> list[dict]:
        """Per-identity summary: faces, frames, re-identification and identity stability."""
        by_identity: dict[int, list[FaceRecord]] = {}
        for face in self.faces:
            by_identity.setdefault(face.identity, []).append(face)
        out = []
        for identity, faces in sorted(by_identity.items()):
            steps_a = [f.step_anonymized for f in faces if f.step_anonymized is not None]
            steps_o = [f.step_original for f in faces if f.step_original is not None]
            out.append(
                {
                    "identity": identity,
                    "faces": len(faces),
                    "first_frame": faces[0].frame,
                    "last_frame": faces[-1].frame,
                    "key": faces[0].key,
                    "leaks": sum(f.leak for f in faces),
                    "leak_frames": [f.frame for f in faces if f.leak],
                    "reidentification_rate": rate([f.leak for f in faces]),
                    "threshold_reidentification_rate": rate([f.match for f in faces]),
                    "distance": distance_summary([f.distance for f in faces]),
                    "null_distance": distance_summary([f.null_distance for f in faces if f.null_distance is not None]),
                    "recovery": distance_summary([f.recovery for f in faces if f.recovery is not None]),
                    "small_faces": sum(f.small for f in faces),
                    "detected_rate": rate([f.detected for f in faces]),
                    "stability_anonymized": distance_summary(steps_a)["mean"],
                    "stable_rate_anonymized": rate([s < self.threshold for s in steps_a]),
                    "stability_original": distance_summary(steps_o)["mean"],
                }
            )
        return out

    def summary(self) -> dict:
        faces = self.faces
        distances = [f.distance for f in faces]
        ranks = [f.rank for f in faces if f.rank is not None]
        steps_a = [f.step_anonymized for f in faces if f.step_anonymized is not None]
        steps_o = [f.step_original for f in faces if f.step_original is not None]
        identities = len({f.identity for f in faces})
        gallery_identities = identities + int(self.gallery.get("distractors", 0))
        leak_identities = sorted({f.identity for f in faces if f.leak})
        nulls = [f.null_distance for f in faces if f.null_distance is not None]
        small = [f for f in faces if f.small]
        return {
            "verdict": self.verdict(),
            "faces": len(faces),
            "identities": identities,
            "reidentification_rate": rate([f.leak for f in faces]),
            "threshold_reidentification_rate": rate([f.match for f in faces]),
            "distance": distance_summary(distances),
            "null_distance": distance_summary(nulls),
            "recovery": distance_summary([f.recovery for f in faces if f.recovery is not None]),
            "context_matches": sum(d < self.threshold for d in nulls),
            "calibration": self.calibration,
            "small_faces": {
                "min_face_size": self.calibration.get("min_face_size"),
                "faces": len(small),
                "matches": sum(f.match for f in small),
                "leaks": sum(f.leak for f in small),
            },
            "by_size": size_table(faces),
            "rank1_rate": rate([r == 1 for r in ranks]),
            "mean_rank": round(float(np.mean(ranks)), 3) if ranks else None,
            "gallery_identities": gallery_identities,
            "rank1_chance": round(1.0 / gallery_identities, 4) if gallery_identities else None,
            "leaks": len(self.leaks),
            "leak_identities": leak_identities,
            "leak_frames": sorted({f.frame for f in faces if f.leak}),
            "detected_rate": rate([f.detected for f in faces]),
            "extra_faces_in_anonymized": self.extra_faces,
            "identity_stability": {
                "anonymized_mean_step_distance": distance_summary(steps_a)["mean"],
                "anonymized_same_identity_rate": rate([s < self.threshold for s in steps_a]),
                "original_mean_step_distance": distance_summary(steps_o)["mean"],
                "original_same_identity_rate": rate([s < self.threshold for s in steps_o]),
                "steps": len(steps_a),
            },
            "warping_error": summarize_warping(self.warping),
            "fidelity_outside_faces": self.fidelity,
            "attributes": self.attributes,
            "attack": self.attack,
            "run": self.run,
        }

    def to_dict(self) -> dict:
        """The ``--json`` document."""
        return {
            "tool": f"camouflage-video {__version__}",
            "original": self.original,
            "anonymized": self.anonymized,
            "config": self.config,
            "recognizer": self.recognizer,
            "frames": self.frames,
            "interrupted": self.interrupted,
            "summary": self.summary(),
            "tracks": self.tracks(),
            "leaks": [f.to_dict() for f in self.leaks],
            "faces": [f.to_dict() for f in self.faces],
            "warping": [w.to_dict() for w in self.warping],
            "gallery": self.gallery,
        }


def size_table(faces: Sequence[FaceRecord]) -> list[dict]:
    """Re-identification per face-height bucket (only buckets that hold faces)."""
    out = []
    for lo, hi in zip(SIZE_BUCKETS, (*SIZE_BUCKETS[1:], None), strict=True):
        group = [f for f in faces if f.size >= lo and (hi is None or f.size < hi)]
        if not group:
            continue
        nulls = [f.null_distance for f in group if f.null_distance is not None]
        out.append(
            {
                "size": f"{lo}-{hi - 1}" if hi is not None else f"{lo}+",
                "faces": len(group),
                "reidentification_rate": rate([f.leak for f in group]),
                "threshold_reidentification_rate": rate([f.match for f in group]),
                "distance_median": distance_summary([f.distance for f in group])["median"],
                "null_distance_median": distance_summary(nulls)["median"],
            }
        )
    return out


class _CaseKeeper:
    """The ``capacity`` faces with the smallest distances, at most one per identity when ``per_identity``."""

    def __init__(self, capacity: int, per_identity: bool) -> None:
        self.capacity, self.per_identity = capacity, per_identity
        self._heap: list[tuple[float, int, FaceCase]] = []  # max-heap on distance via negation
        self._by_identity: dict[int, float] = {}
        self._counter = 0

    def wants(self, record: FaceRecord) -> bool:
        if self.capacity == 0:
            return False
        if self.per_identity and record.identity in self._by_identity:
            return record.distance < self._by_identity[record.identity]
        return len(self._heap) < self.capacity or record.distance < -self._heap[0][0]

    def add(self, case: FaceCase) -> None:
        record = case.record
        if self.per_identity and record.identity in self._by_identity:
            self._heap = [item for item in self._heap if item[2].record.identity != record.identity]
            heapq.heapify(self._heap)
        self._counter += 1
        heapq.heappush(self._heap, (-record.distance, self._counter, case))
        self._by_identity[record.identity] = record.distance
        while len(self._heap) > self.capacity:
            _, _, dropped = heapq.heappop(self._heap)
            self._by_identity.pop(dropped.record.identity, None)

    def cases(self) -> list[FaceCase]:
        return [case for _, _, case in sorted(self._heap, key=lambda item: (-item[0], item[1]))]


def thumbnail(image: np.ndarray, box: tuple[float, float, float, float], height: int = 112) -> bytes:
    """A JPEG crop of a face with some context, ``height`` pixels tall."""
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 0.65
    h, w = image.shape[:2]
    crop = image[max(0, int(cy - half)) : min(h, int(cy + half)), max(0, int(cx - half)) : min(w, int(cx + half))]
    if crop.size == 0:
        return b""
    scale = height / crop.shape[0]
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else b""


class Evaluator:
    """Compare an original with its anonymized version. Build once, then :meth:`run` on a pair of inputs.

    Args:
        config: Options.
        recognizer: A ready recognizer (default: built from ``config``).
        attribute_model: A ready attribute model (default: facer's when ``config.attribute_model`` is set).

    Examples:
        >>> evaluator = Evaluator(EvaluationConfig(step=5))  # doctest: +SKIP
        >>> result = evaluator.run("clip.mp4", "clip_anonymized.mp4")  # doctest: +SKIP
        >>> result.summary()["reidentification_rate"]  # doctest: +SKIP
        0.0
    """

    def __init__(
        self,
        config: EvaluationConfig | None = None,
        *,
        recognizer: Recognizer | None = None,
        attribute_model: AttributeModel | None = None,
    ) -> None:
        self.config = config = config or EvaluationConfig()
        # The measuring instrument stays the float model whatever the runtime (INT8 finds a face more or less).
        self.detector = CenterFaceDetector(thresh=config.thresh, det_size=config.det_size, nms=config.nms,
                                           precision="fp32")
        self.recognizer = recognizer or load_recognizer(config.recognizer, config.recognizer_model, config.threshold)
        if attribute_model is None and config.attribute_model:
            from camouflage_video.evaluation.attributes import FacerAttributeModel

            attribute_model = FacerAttributeModel(config.attribute_model)
        self.attribute_model = attribute_model
        self.warping = FlowWarpingError(config.analysis_size)
        self._gallery: tuple[np.ndarray, int, list[str]] | None = None
        self._candidates: Candidates | None = None

    def run(
        self,
        original: str | os.PathLike[str],
        anonymized: str | os.PathLike[str],
        *,
        progress: bool | None = False,
    ) -> EvaluationResult:
        """Evaluate one pair of inputs.

        On Ctrl-C the result covers what was analysed and has ``interrupted`` set; it is returned, and
        the caller decides whether to re-raise (the ``evaluate`` function does, after writing reports).

        Raises:
            InputError, ConfigError: Inputs that cannot be paired.
        """
        with PairedInputs(original, anonymized, self.config.pair_by) as pairs:
            self.gallery_distractors()  # a bad gallery fails now, not after the whole input
            self.attack_candidates()
            run = _Run(self, pairs, _probe_labels(self.config, original))
            run.original_name = Path(original).name
            try:
                run.consume(progress)
            except KeyboardInterrupt:
                run.interrupted = True
            return run.finish()

    def gallery_distractors(self) -> tuple[np.ndarray, int, list[str]]:
        """Embeddings of the largest face in each image of ``config.gallery`` (one identity each), cached."""
        if self._gallery is None:
            self._gallery = self._load_gallery()
        return self._gallery

    def attack_candidates(self) -> Candidates | None:
        """The tool-aware attacker's candidates (``config.attack_gallery``), anonymized and embedded once."""
        config = self.config
        if config.attack_gallery and self._candidates is None:
            scale = config.null_scale if config.attack_mask_scale is None else config.attack_mask_scale
            self._candidates = Candidates.build(
                config.attack_gallery,
                self.recognizer,
                self.detector,
                None if config.attack_anonymized else tool_anonymizer(config.attack_method, mask_scale=scale),
                anonymized_folder=config.attack_anonymized,
                null_scale=config.null_scale,
                identities_csv=config.attack_identities,
            )
        return self._candidates

    def _load_gallery(self) -> tuple[np.ndarray, int, list[str]]:
        folder = self.config.gallery
        if not folder:
            return np.zeros((0, 0), np.float32), 0, []
        root = Path(folder)
        if not root.is_dir():
            raise InputNotFoundError(f"{root}: gallery folder not found")
        embeddings, used = [], []
        for path in list_images(root):
            image = read_image(path)
            if image is None:
                continue
            faces = self.detector.detect(image)
            if not len(faces):
                continue
            areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
            largest = faces[int(np.argmax(areas))]
            embeddings.append(self.recognizer.embed(image, self.recognizer.prepare(image, largest))[0])
            used.append(path.relative_to(root).as_posix())
        if not embeddings:
            raise InputError(f"{root}: no face found in any gallery image")
        return np.stack(embeddings), len(embeddings), used


class _Run:
    """State of one evaluation pass (kept apart from the reusable :class:`Evaluator`)."""

    def __init__(self, evaluator: Evaluator, pairs: PairedInputs, labels: Labels | None = None) -> None:
        config = evaluator.config
        self.evaluator, self.pairs, self.config = evaluator, pairs, config
        self.recognizer = recognizer = evaluator.recognizer
        self.is_video = pairs.kind == "video"
        self.calibration = {
            "leak_rule": config.leak_rule,
            "null_scale": config.null_scale if config.leak_rule == "null" else None,
            "min_recovery": config.min_recovery if config.leak_rule == "null" else None,
            "min_face_size": recognizer.min_face_size if config.min_face_size is None else config.min_face_size,
        }
        # The null version: the anonymized frame with every face region filled black, as a solid anonymizer
        # with the same mask would leave it. It holds no facial information, only the context around it.
        self.null_fill = (
            ClassicObfuscator("solid", mask_scale=config.null_scale)
            if config.leak_rule == "null" or config.attack_gallery
            else None
        )
        # The tool-aware attack's probes: the largest face of each labelled image or frame.
        self.labels = labels
        self.probes: list[tuple[str, str | None, np.ndarray, np.ndarray, np.ndarray]] = []
        self.original_name: str | None = None  # the key of a video's frames (or of a single image)
        self.step = config.step if self.is_video else 1
        self.tracker = None
        if self.is_video:
            rate = (pairs.original_info.fps or 25) / self.step  # the tracker sees the analysed frames only
            # Tracks only give identities here. A track survives about a second without its face, so a
            # brief miss does not split one person in two; the boxes it holds meanwhile are not faces
            # to measure and are dropped.
            self.tracker = FaceTracker(fps=rate, hold_frames=max(1, round(float(rate))), min_hits=1)
        self.faces: list[FaceRecord] = []
        self.warp_samples: list[WarpSample] = []
        self.embeddings_original: list[np.ndarray] = []
        self.embeddings_anonymized: list[np.ndarray] = []
        self.last_embedding: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.extra_faces = 0
        self.analysed = 0
        self.next_identity = 0
        self.interrupted = False
        self.leak_cases = _CaseKeeper(config.max_thumbnails, per_identity=True)
        self.worst = _CaseKeeper(config.worst_cases, per_identity=False)
        self.attributes = (
            AttributeAgreement(evaluator.attribute_model.labels) if evaluator.attribute_model is not None else None
        )
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.known_tracks: set[int] = set()
        self.pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    def consume(self, progress: bool | None) -> None:
        from tqdm import tqdm

        bar = tqdm(
            total=self.pairs.total,
            unit="frame",
            disable=None if progress is None else not progress,
            dynamic_ncols=True,
            desc="evaluate",
        )
        try:
            for pair in self.pairs:
                self.add(pair)
                bar.update(1)
        finally:
            bar.close()

    def add(self, pair: FramePair) -> None:
        warp = self.evaluator.warping
        small_original = warp.prepare(pair.original.image)
        small_anonymized = warp.prepare(pair.anonymized.image)
        previous = self._previous if pair.consecutive else None
        self._previous = (small_original, small_anonymized) if self.is_video else None
        if pair.index % self.step:
            return
        self.analysed += 1
        faces = self._original_faces(pair)
        self._faces(pair, faces)
        self._fidelity(pair, faces, small_original, small_anonymized)
        if previous is not None:
            h, w = small_original.shape[:2]
            sx, sy = w / pair.original.image.shape[1], h / pair.original.image.shape[0]
            boxes = faces.xyxy * np.array([sx, sy, sx, sy], np.float32)
            mask = face_boxes_mask(h, w, boxes) if len(faces) else None
            self.warp_samples.append(
                warp.measure(
                    previous[0],
                    small_original,
                    previous[1],
                    small_anonymized,
                    frame=pair.original.index,
                    face_mask=mask,
                )
            )

    def _original_faces(self, pair: FramePair) -> Faces:
        faces = self.evaluator.detector.detect(pair.original.image)
        if self.tracker is not None:
            ctx = FrameContext(pair.original, faces=faces)
            self.tracker.annotate(ctx)
            faces = ctx.faces[~ctx.faces.held]
        return faces

    def _identity(self, track_id: int) -> int:
        if self.is_video and track_id >= 0:
            return int(track_id)
        # Faces without a track (and every face of an image) are their own identity; negative numbers
        # keep them apart from track ids.
        self.next_identity -= 1
        return self.next_identity

    def _faces(self, pair: FramePair, faces: Faces) -> None:
        config, recognizer = self.config, self.recognizer
        detected = self.evaluator.detector.detect(pair.anonymized.image)
        detected_at = match_faces(faces, detected, config.match_iou)
        self.extra_faces += len(detected) - int((detected_at >= 0).sum())
        if not len(faces):
            return
        original, anonymized = pair.original.image, pair.anonymized.image
        versions = [anonymized]
        if self.null_fill is not None:
            null = anonymized.copy()
            self.null_fill.obfuscate(null, faces.xyxy)
            versions.append(null)
        emb_o, emb_a, *emb_n = recognizer.embed_versions(original, versions, faces)
        distances = recognizer.rowwise_distance(emb_o, emb_a)
        calibrated = config.leak_rule == "null"
        nulls = recognizer.rowwise_distance(emb_o, emb_n[0]) if calibrated else None
        recoveries = recognizer.recovery(emb_o, emb_a, emb_n[0]) if calibrated else None
        if self.labels is not None:
            key = pair.key if pair.key in self.labels.identity else self.original_name
            if key in self.labels.identity:
                areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
                i = int(np.argmax(areas))
                self.probes.append(
                    (self.labels.identity[key], self.labels.source.get(key), emb_o[i], emb_a[i], emb_n[0][i])
                )
        min_size = self.calibration["min_face_size"]
        if self.attributes is not None:
            model = self.evaluator.attribute_model
            self.attributes.add(model.predict(original, faces), model.predict(anonymized, faces))
        pending, self.pending = self.pending, []
        for i in range(len(faces)):
            track_id = int(faces.track_ids[i])
            identity = self._identity(track_id)
            if self.is_video and identity >= 0 and identity not in self.known_tracks:
                self.known_tracks.add(identity)
                self._adopt(identity, faces.xyxy[i], pending)
            step_o = step_a = None
            if identity in self.last_embedding:
                last_o, last_a = self.last_embedding[identity]
                step_o, step_a = recognizer.rowwise_distance(np.stack([last_o, last_a]), np.stack([emb_o[i], emb_a[i]]))
            if self.is_video and identity >= 0:
                self.last_embedding[identity] = (emb_o[i], emb_a[i])
            distance = float(distances[i])
            match = distance < recognizer.threshold
            null_distance = None if nulls is None else float(nulls[i])
            recovery = None if recoveries is None else float(recoveries[i])
            # Under the null rule a match leaks only if the face region itself carries the anonymized face
            # a good part of the way from no face at all to the original: context alone is no face leak.
            leak = match if recovery is None else match and recovery >= config.min_recovery
            record = FaceRecord(
                frame=pair.index if not self.is_video else pair.original.index,
                time=pair.time,
                key=pair.key,
                identity=identity,
                box=tuple(float(v) for v in faces.xyxy[i]),  # type: ignore[arg-type]
                score=float(faces.scores[i]),
                distance=distance,
                leak=leak,
                detected=bool(detected_at[i] >= 0),
                match=match,
                null_distance=null_distance,
                recovery=recovery,
                small=float(faces.xyxy[i, 3] - faces.xyxy[i, 1]) < min_size,
                step_original=None if step_o is None else float(step_o),
                step_anonymized=None if step_a is None else float(step_a),
            )
            if self.is_video and track_id < 0:
                self.pending.append((len(self.faces), faces.xyxy[i], emb_o[i], emb_a[i]))
            self.faces.append(record)
            self.embeddings_original.append(emb_o[i])
            self.embeddings_anonymized.append(emb_a[i])
            for keeper in ((self.leak_cases,) if record.leak else ()) + (self.worst,):
                if keeper.wants(record):
                    keeper.add(self._case(record, original, anonymized))

    def _adopt(self, identity: int, box: np.ndarray, pending: list) -> None:
        """Give a new track the unconfirmed face it grew from, at the previous analysed frame.

        ByteTrack returns a new face without an id on its first frame and allocates the id on the next
        match; without this, every track would leave a one-face identity behind in the gallery.
        """
        if not pending:
            return
        overlaps = box_iou(np.array([p[1] for p in pending]), box[None])[:, 0]
        best = int(np.argmax(overlaps))
        if overlaps[best] < 0.1:
            return
        position, _, emb_o, emb_a = pending.pop(best)
        old = self.faces[position]
        self.faces[position] = replace(old, identity=identity)
        self.last_embedding[identity] = (emb_o, emb_a)

    def _case(self, record: FaceRecord, original: np.ndarray, anonymized: np.ndarray) -> FaceCase:
        if not self.config.thumbnails:
            return FaceCase(record)
        return FaceCase(record, thumbnail(original, record.box), thumbnail(anonymized, record.box))

    def _fidelity(
        self, pair: FramePair, faces: Faces, small_original: np.ndarray, small_anonymized: np.ndarray
    ) -> None:
        original, anonymized = pair.original.image, pair.anonymized.image
        h, w = original.shape[:2]
        mask = outside_faces_mask(h, w, faces.xyxy, self.config.mask_scale)
        psnr = masked_psnr(original, anonymized, mask)
        if psnr is None:
            return
        self.psnr.append(psnr)
        sh, sw = small_original.shape[:2]
        small_mask = cv2.resize(mask.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        ssim = masked_ssim(small_original, small_anonymized, small_mask)
        if ssim is not None:
            self.ssim.append(ssim)

    def finish(self) -> EvaluationResult:
        config, pairs = self.config, self.pairs
        faces = self.faces
        gallery_info: dict[str, Any] = {"distractors": 0}
        if faces:
            distractors, count, names = self.evaluator.gallery_distractors()
            queries = np.stack(self.embeddings_anonymized)
            originals = np.stack(self.embeddings_original)
            ids = np.array([f.identity for f in faces], np.int64)
            gallery, gallery_ids = originals, ids
            if count:
                distractor_ids = np.arange(count, dtype=np.int64) + (ids.max() + 1)
                gallery = np.concatenate([originals, distractors])
                gallery_ids = np.concatenate([ids, distractor_ids])
                gallery_info = {"distractors": count, "folder": config.gallery, "images": names[:200]}
            ranks = identity_ranks(self.recognizer, queries, ids, gallery, gallery_ids)
            faces = [replace(f, rank=int(r)) for f, r in zip(faces, ranks, strict=True)]
        final = {(f.frame, f.box): f for f in faces}

        def current(cases: list[FaceCase]) -> list[FaceCase]:
            # The kept cases hold the records as they were when kept: give them their final identity and rank.
            return [replace(c, record=final.get((c.record.frame, c.record.box), c.record)) for c in cases]

        leak_cases, seen = [], set()
        for case in current(self.leak_cases.cases()):  # closest first; one per (final) identity
            if case.record.identity not in seen:
                seen.add(case.record.identity)
                leak_cases.append(case)
        worst_cases = current(self.worst.cases())
        fidelity = {
            "frames": len(self.psnr),
            "psnr_db": round(float(np.mean(self.psnr)), 3) if self.psnr else None,
            "psnr_db_min": round(float(np.min(self.psnr)), 3) if self.psnr else None,
            "ssim": round(float(np.mean(self.ssim)), 5) if self.ssim else None,
            "ssim_min": round(float(np.min(self.ssim)), 5) if self.ssim else None,
            "mask_scale": config.mask_scale,
        }
        if self.attributes is not None:
            attributes = {"model": self.evaluator.attribute_model.name, **self.attributes.summary()}
        else:
            attributes = {"available": False, "reason": "no attribute model given (--attribute-model)"}
        return EvaluationResult(
            original=pairs.original_info.to_dict(),
            anonymized=pairs.anonymized_info.to_dict(),
            config=config.to_dict(),
            recognizer=self.recognizer.describe(),
            calibration=self.calibration,
            frames={
                "kind": pairs.kind,
                "original": pairs.frames_original,
                "anonymized": pairs.frames_anonymized,
                "paired": pairs.pairs,
                "analysed": self.analysed,
                "step": self.step,
                "unpaired_original": pairs.unpaired_original,
                "unpaired_anonymized": pairs.unpaired_anonymized,
                "unpaired_keys": pairs.unpaired_keys[:200],
                "corrupt": pairs.corrupt_frames,
            },
            faces=faces,
            warping=self.warp_samples,
            fidelity=fidelity,
            attributes=attributes,
            gallery=gallery_info,
            leak_cases=leak_cases,
            worst_cases=worst_cases,
            extra_faces=self.extra_faces,
            interrupted=self.interrupted,
            attack=self._attack(),
        )

    def _attack(self) -> dict | None:
        candidates = self.evaluator.attack_candidates()
        if candidates is None:
            return None
        config = self.config
        method = f"given ({config.attack_anonymized})" if config.attack_anonymized else config.attack_method
        return attack_summary(self.recognizer, candidates, self.probes, method)


def _probe_labels(config: EvaluationConfig, original: str | os.PathLike[str]) -> Labels | None:
    """Who the largest face of each original image (or of a video's frames) is, for the attack."""
    if not config.attack_gallery:
        return None
    path = Path(original)
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in list_images(path)]
        return Labels.read(path, names, config.identities)
    return Labels.read(path.parent, [path.name], config.identities)
