"""CAMOUFLaGE-Light's 41-channel condition: facial attributes written where each person is, plus keypoints.

Channels 0-39 hold the 40 CelebA attribute probabilities (FaRL's classifier, in ``ATTRIBUTE_NAMES`` order)
at the pixels of one face's region and 0 elsewhere; channel 40 holds the keypoints of every face. Regions are
a label map (one owner per pixel), so the attributes of two people never mix, even where their faces overlap.

In video, ``AttributeStabilizer`` aggregates each track's probabilities over its history and gives each track a
seed of its own: a person keeps one encoding and one fake identity while the classifier's per-frame output
jitters. Faces that are not a confirmed track yet keep their per-frame values: they are still encoded.

Pure NumPy/OpenCV: nothing here needs torch or pyfacer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from camouflage_video.errors import ConfigError

# FaRL's CelebA classifier (pyfacer "farl/celeba/224") outputs these, in this order (CelebA's list_attr order).
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)
KEYPOINT_CHANNEL = NUM_ATTRIBUTES
MAP_CHANNELS = NUM_ATTRIBUTES + 1
FACE_ATTRIBUTES_KEY = "face_attributes"
MAX_FACES = 255  # region labels are uint8; 0 means "nobody"
STABILIZE_MODES = ("mean", "ema", "off")

# Five landmarks (eyes, nose, mouth corners) of an average frontal face, relative to its box: a stand-in for
# boxes that come without landmarks (held by tracking over a missed detection).
_TEMPLATE = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.58], [0.35, 0.76], [0.65, 0.76]], np.float32)


@dataclass(frozen=True)
class FaceAttributes:
    """Attributes of the faces of one frame, row for row with ``ctx.faces``.

    Attributes:
        xyxy: ``(N, 4)`` face boxes in frame pixels.
        probs: ``(N, 40)`` attribute probabilities the map is built from (stabilized per track in video).
        observed: ``(N, 40)`` this frame's own classifier output; NaN rows for faces not classified (held).
        keypoints: ``(N, K, 2)`` keypoints in frame pixels (5 landmarks, or 68 with an aligner); NaN unknown.
        regions: ``(h, w)`` uint8 label map over the frame, possibly at reduced size: ``i + 1`` where face
            ``i`` owns the pixel, 0 where no face does.
        seeds: ``(N,)`` per-face seeds: the track's seed, or -1 for faces that are not a confirmed track.
        frame_size: ``(width, height)`` of the frame the coordinates refer to.

    Examples:
        >>> attrs = FaceAttributes.empty((64, 48))
        >>> build_attribute_map(attrs, 32, 24).shape
        (41, 24, 32)
    """

    xyxy: np.ndarray
    probs: np.ndarray
    observed: np.ndarray
    keypoints: np.ndarray
    regions: np.ndarray
    seeds: np.ndarray
    frame_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"FaceAttributes.xyxy must be (N, 4), got {self.xyxy.shape}")
        for name in ("probs", "observed"):
            if getattr(self, name).shape != (n, NUM_ATTRIBUTES):
                shape = getattr(self, name).shape
                raise ValueError(f"FaceAttributes.{name} must be ({n}, {NUM_ATTRIBUTES}), got {shape}")
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 2:
            raise ValueError(f"FaceAttributes.keypoints must be ({n}, K, 2), got {self.keypoints.shape}")
        if self.seeds.shape != (n,):
            raise ValueError(f"FaceAttributes.seeds must be ({n},), got {self.seeds.shape}")
        if self.regions.ndim != 2 or self.regions.dtype != np.uint8:
            raise ValueError(
                f"FaceAttributes.regions must be a 2-D uint8 label map, got {self.regions.shape} {self.regions.dtype}"
            )
        if n > MAX_FACES:
            raise ValueError(f"at most {MAX_FACES} faces per frame, got {n}")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls, frame_size: tuple[int, int]) -> FaceAttributes:
        width, height = frame_size
        return cls(
            xyxy=np.zeros((0, 4), np.float32), probs=np.zeros((0, NUM_ATTRIBUTES), np.float32),
            observed=np.zeros((0, NUM_ATTRIBUTES), np.float32), keypoints=np.zeros((0, 5, 2), np.float32),
            regions=np.zeros((max(1, height), max(1, width)), np.uint8), seeds=np.zeros(0, np.int64),
            frame_size=(width, height),
        )


def landmarks_from_boxes(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 5, 2)`` average-face landmarks placed in each box (for boxes without detected landmarks)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    size = (xyxy[:, 2:] - xyxy[:, :2])[:, None, :]
    return xyxy[:, None, :2] + _TEMPLATE[None] * size


def face_regions(
    xyxy: np.ndarray,
    frame_size: tuple[int, int],
    region_size: tuple[int, int] | None = None,
    scale: float = 1.2,
    masks: list[np.ndarray | None] | None = None,
) -> np.ndarray:
    """A label map giving every pixel to at most one face.

    Each face claims the ellipse inscribed in its box grown by ``scale`` (intersected with its parsing mask when
    one is given); a pixel claimed by several faces goes to the face whose ellipse centre is nearest relative
    to that ellipse's size, so overlapping faces split the overlap instead of mixing.

    Args:
        xyxy: ``(N, 4)`` boxes in frame pixels.
        frame_size: ``(width, height)`` of the frame.
        region_size: ``(width, height)`` of the label map (default: the frame size).
        scale: Growth of the boxes (faces with hair and chin).
        masks: Optional per-face boolean masks at ``region_size`` (face parsing), ``None`` entries allowed.

    Returns:
        ``(h, w)`` uint8 labels: ``i + 1`` for face ``i``, 0 for nobody.
    """
    frame_w, frame_h = frame_size
    width, height = region_size or frame_size
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if len(boxes) > MAX_FACES:
        raise ValueError(f"at most {MAX_FACES} faces per frame, got {len(boxes)}")
    labels = np.zeros((height, width), np.uint8)
    best = np.full((height, width), np.inf, np.float32)
    sx, sy = width / frame_w, height / frame_h
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy
        rx, ry = max((x2 - x1) * sx * scale / 2, 0.5), max((y2 - y1) * sy * scale / 2, 0.5)
        left, right = max(0, int(np.floor(cx - rx))), min(width, int(np.ceil(cx + rx)) + 1)
        top, bottom = max(0, int(np.floor(cy - ry))), min(height, int(np.ceil(cy + ry)) + 1)
        if right <= left or bottom <= top:
            continue
        ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
        # Pixel centres; a face smaller than a pixel still owns the pixel under its centre.
        distance = ((xs + 0.5 - cx) / rx) ** 2 + ((ys + 0.5 - cy) / ry) ** 2
        inside = distance <= 1.0
        inside[min(max(int(cy), top), bottom - 1) - top, min(max(int(cx), left), right - 1) - left] = True
        if masks is not None and masks[i] is not None:
            inside &= masks[i][top:bottom, left:right]
        window = best[top:bottom, left:right]
        wins = inside & (distance < window)
        window[wins] = distance[wins]
        labels[top:bottom, left:right][wins] = i + 1
    return labels


def build_attribute_map(
    attributes: FaceAttributes,
    width: int,
    height: int,
    keypoint_radius: float = 0.03,
) -> np.ndarray:
    """The ``(41, height, width)`` float32 condition of the T2I-Adapter.

    Args:
        attributes: The faces of one frame (probabilities, keypoints, regions).
        width, height: Map size: the generation size (the UNet input resolution in pixels).
        keypoint_radius: Radius of a keypoint dot relative to its face's box diagonal (at least one pixel).
    """
    condition = np.zeros((MAP_CHANNELS, height, width), np.float32)
    if len(attributes) == 0:
        return condition
    # Nearest-neighbour resizing keeps one owner per pixel: no attribute is ever averaged across people.
    labels = cv2.resize(attributes.regions, (width, height), interpolation=cv2.INTER_NEAREST)
    table = np.zeros((len(attributes) + 1, NUM_ATTRIBUTES), np.float32)
    table[1:] = np.clip(np.nan_to_num(attributes.probs, nan=0.5), 0.0, 1.0)
    condition[:NUM_ATTRIBUTES] = np.moveaxis(table[labels], -1, 0)
    frame_w, frame_h = attributes.frame_size
    sx, sy = width / frame_w, height / frame_h
    dots = np.zeros((height, width), np.uint8)
    for box, points in zip(attributes.xyxy, attributes.keypoints, strict=True):
        diagonal = float(np.hypot((box[2] - box[0]) * sx, (box[3] - box[1]) * sy))
        radius = max(1, round(keypoint_radius * diagonal))
        for x, y in points:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(dots, (round(float(x) * sx), round(float(y) * sy)), radius, 1, -1)
    condition[KEYPOINT_CHANNEL] = dots
    return condition


class AttributeStabilizer:
    """Per-track attribute probabilities aggregated over the track's history, and per-track seeds.

    Args:
        mode: ``mean`` (average over the last ``window`` observations, or all of them with ``window=0``),
            ``ema`` (exponential moving average with ``momentum``) or ``off`` (per-frame values).
        window: Observations ``mean`` averages over; 0 for the whole track.
        momentum: Weight of the past in ``ema``.
        seed: Video seed; a track's seed is derived from it and the track id.
        forget_after: Frames after which a track that has not been seen is dropped (memory stays bounded).

    Examples:
        >>> stabilizer = AttributeStabilizer(mode="mean", seed=7)
        >>> probs, seeds = stabilizer.update(np.array([3]), np.full((1, 40), 0.8, np.float32))
        >>> float(probs[0, 0]), int(seeds[0]) == track_seed(7, 3)
        (0.8, True)
    """

    def __init__(
        self, mode: str = "mean", window: int = 0, momentum: float = 0.9, seed: int = 0, forget_after: int = 900
    ) -> None:
        if mode not in STABILIZE_MODES:
            raise ConfigError(f"attribute stabilization must be one of {', '.join(STABILIZE_MODES)}, got {mode!r}")
        if window < 0:
            raise ConfigError(f"attribute window must be >= 0, got {window}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"attribute momentum must be in [0, 1), got {momentum}")
        if forget_after < 1:
            raise ConfigError(f"forget_after must be >= 1, got {forget_after}")
        self.mode, self.window, self.momentum, self.seed, self.forget_after = mode, window, momentum, seed, forget_after
        self.reset()

    def reset(self) -> None:
        self._sum: dict[int, np.ndarray] = {}
        self._count: dict[int, int] = {}
        self._recent: dict[int, deque] = {}
        self._ema: dict[int, np.ndarray] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0

    def update(self, track_ids: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add this frame's observations and return the probabilities to encode and the seeds.

        Args:
            track_ids: ``(N,)`` track ids, -1 for faces that are not a confirmed track.
            observed: ``(N, 40)`` this frame's probabilities; NaN rows where a face was not classified.

        Returns:
            ``(probs, seeds)``: ``(N, 40)`` float32 (NaN only for an unobserved face with no history) and
            ``(N,)`` int64 seeds (-1 for faces without a track).
        """
        self._frame += 1
        observed = np.asarray(observed, np.float32).reshape(len(track_ids), NUM_ATTRIBUTES)
        probs = observed.copy()
        seeds = np.full(len(track_ids), -1, np.int64)
        for row, track in enumerate(np.asarray(track_ids).tolist()):
            if track < 0:
                continue  # not confirmed: its own per-frame values, and the video's noise
            seeds[row] = track_seed(self.seed, track)
            self._last_seen[track] = self._frame
            seen = bool(np.isfinite(observed[row]).all())
            if seen:
                self._observe(track, observed[row])
            if self.mode != "off" or not seen:
                value = self._value(track)
                if value is not None:
                    probs[row] = value
        self._forget()
        return probs, seeds

    def _observe(self, track: int, value: np.ndarray) -> None:
        if self.mode == "ema":
            previous = self._ema.get(track)
            m = self.momentum
            self._ema[track] = value.copy() if previous is None else m * previous + (1 - m) * value
        elif self.mode == "off":
            self._ema[track] = value.copy()  # only for frames where the face is held, not seen
        elif self.window:
            self._recent.setdefault(track, deque(maxlen=self.window)).append(value.copy())
        else:
            self._sum[track] = self._sum.get(track, 0.0) + value.astype(np.float64)
            self._count[track] = self._count.get(track, 0) + 1

    def _value(self, track: int) -> np.ndarray | None:
        if self.mode in ("ema", "off"):
            return self._ema.get(track)
        if self.window:
            recent = self._recent.get(track)
            return np.mean(recent, axis=0).astype(np.float32) if recent else None
        count = self._count.get(track)
        return (self._sum[track] / count).astype(np.float32) if count else None

    def _forget(self) -> None:
        stale = [t for t, seen in self._last_seen.items() if self._frame - seen > self.forget_after]
        for track in stale:
            for table in (self._sum, self._count, self._recent, self._ema, self._last_seen):
                table.pop(track, None)

    @property
    def tracks(self) -> int:
        """Tracks currently remembered."""
        return len(self._last_seen)


def track_seed(video_seed: int, track_id: int) -> int:
    """A seed for one track of one video: stable, and different for every track id."""
    return int(np.random.SeedSequence([int(video_seed) & 0xFFFFFFFF, int(track_id)]).generate_state(1)[0])
