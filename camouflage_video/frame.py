"""The records that travel between the stages: frames, face detections and the per-frame context."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture and where it sits on its source's timeline.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB pixels, already rotated upright.
        index: Position in the source, counting from 0 (decoded frames only).
        pts: Presentation timestamp in ``time_base`` units; ``None`` for still images.
        time_base: Unit of ``pts`` in seconds.
        key: Relative path for frames that come from an image folder, used to mirror it.
        damaged: Decoded from damaged data (see ``sources.base.DamageWatch``): the decoder filled in what was
            missing from earlier pictures, so it may show a face where there is none now, or half of one. It
            is pixelated whole, never given to the anonymizer.

    Examples:
        >>> import numpy as np
        >>> from fractions import Fraction
        >>> f = Frame(np.zeros((8, 8, 3), np.uint8), index=0, pts=3003, time_base=Fraction(1, 30000))
        >>> float(f.time)
        0.1001
    """

    image: np.ndarray
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    key: str | None = None
    damaged: bool = False

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Frame.image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")
        if self.pts is not None and self.time_base is None:
            raise ValueError("Frame.pts needs a time_base")

    @property
    def time(self) -> Fraction | None:
        """Presentation time in seconds, or ``None`` for still images."""
        if self.pts is None or self.time_base is None:
            return None
        return self.pts * self.time_base

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.image.shape[1], self.image.shape[0]


@dataclass(frozen=True, slots=True)
class Faces:
    """Face boxes of one frame, in frame pixel coordinates.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes ``x1, y1, x2, y2``.
        scores: ``(N,)`` detector confidences; boxes that tracking holds over a missed detection carry 0.
        track_ids: ``(N,)`` int track ids, ``-1`` for faces that are not (yet) a confirmed track.
        held: ``(N,)`` bool, True for boxes predicted by tracking where the detector missed the face.
        landmarks: ``(N, 5, 2)`` float32 eye/nose/mouth points, NaN where unknown.

    Examples:
        >>> faces = Faces.from_boxes([[10, 10, 50, 60]], scores=[0.9])
        >>> len(faces), faces.track_ids.tolist()
        (1, [-1])
    """

    xyxy: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    held: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"Faces.xyxy must be (N, 4), got {self.xyxy.shape}")
        for name in ("scores", "track_ids", "held"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Faces.{name} must have shape ({n},), got {getattr(self, name).shape}")
        if self.landmarks.shape != (n, 5, 2):
            raise ValueError(f"Faces.landmarks must be ({n}, 5, 2), got {self.landmarks.shape}")

    @classmethod
    def empty(cls) -> Faces:
        return cls.from_boxes(np.zeros((0, 4), np.float32))

    @classmethod
    def from_boxes(
        cls,
        xyxy: Any,
        scores: Any = None,
        track_ids: Any = None,
        held: Any = None,
        landmarks: Any = None,
    ) -> Faces:
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(boxes)
        return cls(
            xyxy=boxes,
            scores=np.ones(n, np.float32) if scores is None else np.asarray(scores, np.float32).reshape(n),
            track_ids=np.full(n, -1, np.int64) if track_ids is None else np.asarray(track_ids, np.int64).reshape(n),
            held=np.zeros(n, bool) if held is None else np.asarray(held, bool).reshape(n),
            landmarks=(
                np.full((n, 5, 2), np.nan, np.float32)
                if landmarks is None
                else np.asarray(landmarks, np.float32).reshape(n, 5, 2)
            ),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Faces:
        return Faces(
            self.xyxy[index].reshape(-1, 4),
            self.scores[index].reshape(-1),
            self.track_ids[index].reshape(-1),
            self.held[index].reshape(-1),
            self.landmarks[index].reshape(-1, 5, 2),
        )

    @staticmethod
    def concat(parts: list[Faces]) -> Faces:
        if not parts:
            return Faces.empty()
        return Faces(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.track_ids for p in parts]),
            np.concatenate([p.held for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
        )


@dataclass(slots=True)
class FrameContext:
    """A frame plus what the annotators found in it.

    Annotators add entries (``faces``, control maps, attributes) and never change ``frame.image``;
    only the pipeline writes pixels, into a new array.
    """

    frame: Frame
    faces: Faces | None = None
    extras: dict[str, Any] = field(default_factory=dict)
