"""Who is who: reference photos of chosen people, and a per-face verdict against them in every frame.

``--keep-person PHOTO`` leaves visible only faces that match a reference confidently; ``--only-person PHOTO``
anonymizes only faces that match (everyone else stays visible). Both decide per face and per frame with the
project's recognizer (dlib's ResNet, :class:`~camouflage_video.evaluation.recognizers.DlibRecognizer`) and a
margin on each side of its match threshold:

- ``match``: distance below ``threshold - margin`` (0.45 by default; on the shared same-person photo pairs
  95% of pairs fall below it, and the closest two different people measured 0.65);
- ``nonmatch``: distance above ``threshold + margin`` (0.75);
- ``uncertain``: everything else, and every face the recognizer cannot be trusted on: shorter than
  ``MIN_FACE`` px, turned away (the detector's nose landmark outside the middle of the eyes, or the eyes close
  together), in a box of an odd shape (two merged faces), without landmarks, or one the recognizer failed on.

Only faces the detector found in that frame get a verdict. A box the tracker holds over a miss, or one carried
back or interpolated by the look-ahead, holds no face the recognizer has seen in that frame: the decision
(``decide``) always anonymizes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.pipelines.verify import recognizer_network

logger = logging.getLogger(__name__)

#: FrameContext.extras key: the verdicts of the faces the detector found, ``{index: FaceVerdict}``.
VERDICTS = "redaction.verdicts"
#: Smallest face (px tall) judged at all: twice the recognizer's own floor (dlib verifies 96% at 20 px).
MIN_FACE = 40
#: A frontal face has its nose between the eyes: this share of the eye distance from either eye, at least.
FRONTAL = 0.2
#: Height over width of a face box that is judged, and the eye distance over the box width of a frontal face
#: (on the shared photos: 95% of faces at 0.33 and above, median 0.46; the lower ones are turned away).
ASPECT = (1.0, 2.2)
EYE_SPAN = 0.3
#: Reference photos are read at most this large (long side), like a frame.
REFERENCE_SIDE = 1280
#: A detection counts as a face of a reference photo from this score (the run's threshold is lower, for recall).
REFERENCE_SCORE = 0.5


@dataclass(frozen=True)
class FaceVerdict:
    """What the recognizer said about one detected face.

    Attributes:
        box: The face box it was computed on (the decision checks it is the same face).
        verdict: ``match``, ``nonmatch`` or ``uncertain``.
        distance: Distance to the closest reference, ``None`` where none was computed.
        reference: Index of the closest reference photo, ``-1`` where none.
        person: The person that photo shows (photos the recognizer finds alike count as one person), ``-1``
            where none: two faces of one frame that match one person are both anonymized.
        reason: Why a face is uncertain (``small``, ``profile``, ``no landmarks``, ``recognizer failed``,
            ``between margins``), empty otherwise.
    """

    box: tuple[float, float, float, float]
    verdict: str
    distance: float | None = None
    reference: int = -1
    reason: str = ""
    person: int = -1


@dataclass(frozen=True)
class Reference:
    path: str
    embedding: np.ndarray
    box: tuple[float, float, float, float]


class ReferencePeople:
    """The reference photos of a run, each embedded once.

    Args:
        photos: Paths of photos that each show exactly one clearly visible, frontal face.
        detector: The run's face detector (``detect(image) -> Faces``).
        recognizer: The recognizer (``embed_versions``, ``distance``, ``threshold``).
        margin: Distance kept on each side of the recognizer's threshold (see the module docstring).

    Raises:
        ConfigError: A photo is unreadable, shows no face, several faces, or a face too small or turned away.

    Examples:
        >>> people = ReferencePeople(["me.jpg"], CenterFaceDetector(), DlibRecognizer())  # doctest: +SKIP
    """

    def __init__(self, photos: Sequence[str | os.PathLike[str]], detector: Any, recognizer: Any,
                 margin: float = 0.15) -> None:
        if not photos:
            raise ConfigError("no reference photo given")
        if not 0 < margin < recognizer.threshold:
            raise ConfigError(f"person margin must be within (0, {recognizer.threshold}), got {margin}")
        self.recognizer, self.margin = recognizer, margin
        self.references = [self._load(Path(photo), detector) for photo in photos]
        self._embeddings = np.stack([r.embedding for r in self.references])
        self.person_of = self._people()

    def _people(self) -> list[int]:
        """The person of each photo: photos closer than the recognizer's threshold show one person (several
        photos of one person are given; counting them apart would keep that person twice in one frame)."""
        n = len(self.references)
        group = list(range(n))
        if n > 1:
            distances = np.asarray(self.recognizer.distance(self._embeddings, self._embeddings), np.float64)
            for i in range(n):
                for j in range(i + 1, n):
                    if not distances[i, j] >= self.recognizer.threshold:  # alike, or unknown (NaN): one person
                        old, new = group[j], group[i]
                        group = [new if g == old else g for g in group]
        return group

    @property
    def match_below(self) -> float:
        return self.recognizer.threshold - self.margin

    @property
    def nonmatch_above(self) -> float:
        return self.recognizer.threshold + self.margin

    def _load(self, path: Path, detector: Any) -> Reference:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"{path}: reference photo cannot be read as an image")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        scale = REFERENCE_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = detector.detect(image)
        faces = found[found.scores >= REFERENCE_SCORE]
        if len(faces) == 0:
            raise ConfigError(f"{path}: no face found in the reference photo")
        if len(faces) > 1:
            raise ConfigError(f"{path}: the reference photo shows {len(faces)} faces; crop it to the one person")
        problem = _unjudgeable(faces, 0)
        if problem:
            raise ConfigError(f"{path}: the face in the reference photo cannot be judged ({problem}); use a "
                              f"frontal photo with the face at least {MIN_FACE} px tall")
        try:
            embedding = self.recognizer.embed_versions(image, [], faces)[0][0]
        except Exception as exc:  # noqa: BLE001 - the recognizer's own error types
            raise ConfigError(f"{path}: the recognizer cannot read the face in the reference photo ({exc})") from exc
        return Reference(str(path), np.asarray(embedding, np.float32), tuple(float(v) for v in faces.xyxy[0]))

    def judge(self, image: np.ndarray, faces: Faces, i: int) -> FaceVerdict:
        """The verdict on face ``i`` of ``faces`` in ``image``; any doubt is ``uncertain``."""
        return self.judge_all(image, faces, [i])[0]

    def judge_all(self, image: np.ndarray, faces: Faces, indices: Sequence[int]) -> list[FaceVerdict]:
        """The verdicts on the faces ``indices`` of ``faces``, embedded in one recognizer call."""
        boxes = [tuple(float(v) for v in faces.xyxy[i]) for i in indices]
        problems = [_unjudgeable(faces, i) for i in indices]
        judged = [k for k, problem in enumerate(problems) if not problem]
        verdicts = [FaceVerdict(box, "uncertain", reason=problem) for box, problem in zip(boxes, problems,
                                                                                           strict=True)]
        if not judged:
            return verdicts
        try:
            embeddings = self.recognizer.embed_versions(image, [], faces[[indices[k] for k in judged]])[0]
            distances = np.asarray(self.recognizer.distance(embeddings, self._embeddings), np.float64)
            if distances.shape != (len(judged), len(self.references)):
                raise ValueError(f"distances of shape {distances.shape}")
        except Exception as exc:  # noqa: BLE001 - a recognizer failure makes every face of the call uncertain
            logger.warning("recognizer failed on a frame's faces (%s); they are anonymized", type(exc).__name__)
            for k in judged:
                verdicts[k] = FaceVerdict(boxes[k], "uncertain", reason="recognizer failed")
            return verdicts
        for row, k in zip(distances, judged, strict=True):
            verdicts[k] = self._verdict(boxes[k], row)
        return verdicts

    def _verdict(self, box: tuple[float, float, float, float], distances: np.ndarray) -> FaceVerdict:
        best = int(np.argmin(distances))
        distance = float(distances[best])
        if not np.isfinite(distance):
            return FaceVerdict(box, "uncertain", reason="recognizer failed")
        if distance < self.match_below:
            return FaceVerdict(box, "match", distance, best, person=self.person_of[best])
        if distance > self.nonmatch_above:
            return FaceVerdict(box, "nonmatch", distance, best)
        return FaceVerdict(box, "uncertain", distance, best, reason="between margins")

    def describe(self) -> dict:
        return {"references": len(self.references), "recognizer": getattr(self.recognizer, "name", "?"),
                **recognizer_network(self.recognizer),
                "match_below": round(self.match_below, 4), "nonmatch_above": round(self.nonmatch_above, 4),
                "min_face": MIN_FACE}


def _unjudgeable(faces: Faces, i: int) -> str:
    """Why face ``i`` cannot be judged (too small, turned away, no landmarks), or ``""``."""
    x1, y1, x2, y2 = (float(v) for v in faces.xyxy[i])
    if y2 - y1 < MIN_FACE or x2 - x1 < MIN_FACE / 2:
        return "small"
    # A face box is taller than wide (median 1.3 on the shared photos); a wide one may be two faces the
    # detector merged, a very tall one a face cut by something: neither is kept on one face's verdict.
    if not ASPECT[0] <= (y2 - y1) / (x2 - x1) <= ASPECT[1]:
        return "odd box shape"
    points = faces.landmarks[i]
    if not np.isfinite(points).all():
        return "no landmarks"
    lx, rx, nx = points[0, 0], points[1, 0], points[2, 0]
    span = rx - lx
    if span < EYE_SPAN * (x2 - x1):  # eyes close together in the box: turned away, or the points are wrong
        return "profile"
    share = (nx - lx) / span
    if not FRONTAL <= share <= 1 - FRONTAL:
        return "profile"
    return ""


class PersonMatcher(Annotator):
    """Give every face the detector found in a frame its verdict (``ctx.extras[VERDICTS]``).

    It runs after tracking, on the faces as the tracker left them; boxes added later (look-ahead) get none.
    In ``only`` mode it also looks back: a track that matches has its earlier, held-back frames marked, so it
    is anonymized from its start (``ctx.extras[MATCHED_LATER]``).

    Args:
        people: The reference photos.
        look_ahead: Frames the runner holds back (``only`` mode; 0 otherwise).
    """

    name = "match-person"
    after_tracking = True

    def __init__(self, people: ReferencePeople, look_ahead: int = 0) -> None:
        self.people, self.look_ahead = people, look_ahead
        self.reset()

    def reset(self) -> None:
        self.judged = 0
        self.counts: dict[str, int] = {}

    def describe(self) -> dict:
        return {**self.people.describe(), "judged": self.judged, "verdicts": dict(sorted(self.counts.items()))}

    def annotate(self, ctx: FrameContext) -> None:
        faces = ctx.faces if ctx.faces is not None else Faces.empty()
        detected = [int(i) for i in np.flatnonzero(~faces.held)]
        verdicts = dict(zip(detected, self.people.judge_all(ctx.frame.image, faces, detected), strict=True))
        for verdict in verdicts.values():
            self.judged += 1
            key = verdict.verdict if not verdict.reason else f"uncertain ({verdict.reason})"
            self.counts[key] = self.counts.get(key, 0) + 1
        ctx.extras[VERDICTS] = verdicts

    def revise(self, ctx: FrameContext, held: Sequence[FrameContext]) -> None:
        """``only`` mode: tracks that match in ``ctx`` are marked in the frames held back before it."""
        faces = ctx.faces
        verdicts = ctx.extras.get(VERDICTS, {})
        matched = {int(faces.track_ids[i]) for i, v in verdicts.items()
                   if v.verdict == "match" and faces is not None and i < len(faces) and faces.track_ids[i] >= 0}
        if not matched:
            return
        for older in held:
            older.extras.setdefault(MATCHED_LATER, set()).update(matched)


#: FrameContext.extras key (``only`` mode): track ids that match in a later frame.
MATCHED_LATER = "redaction.matched_later"
