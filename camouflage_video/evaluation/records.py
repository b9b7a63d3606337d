"""What an evaluation finds: its options, one record per analysed face, the cases the report shows, the result.

Records hold distances and decisions, never face pixels (the report's thumbnails are separate, bounded and
optional); ``evaluator`` computes them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from camouflage_video import __version__
from camouflage_video.errors import ConfigError
from camouflage_video.evaluation.metrics import (
    distance_summary,
    rate,
)
from camouflage_video.evaluation.temporal import WarpSample, summarize_warping

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
    extra_face_frames: int = 0
    #: Pairs whose anonymized picture was the original's turned or mirrored (judged turned back), by how.
    turned_frames: dict[str, int] = field(default_factory=dict)
    #: Frames where a face of the anonymized version away from every original face is an original's person.
    displaced_frames: list[int] = field(default_factory=list)
    #: What the anonymized file holds besides its video that may be a picture (sniff.pictures_beside_the_video).
    carried: list[str] = field(default_factory=list)
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
        """``leak`` (some face re-identified, at its place or elsewhere in the frame), ``pass`` or ``no-faces``
        (nothing to judge)."""
        if self.carried:
            return "leak"  # a picture beside the video: no player shows it, the file holds it
        if not self.faces:
            return "no-faces"
        return "leak" if self.displaced_frames or any(f.leak for f in self.faces) else "pass"

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
            "frames_with_extra_faces": self.extra_face_frames,
            "turned_frames": self.turned_frames,
            "displaced_leak_frames": self.displaced_frames[:200],
            "pictures_beside_the_video": self.carried,
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
