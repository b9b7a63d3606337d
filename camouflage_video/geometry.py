"""Box and frame-size arithmetic, in one place: growing boxes, their overlap, and short-side scaling.

Boxes are ``x1, y1, x2, y2`` in frame pixels. A box that covers a face is grown about its centre and clipped
to the frame; how much it grows is the caller's decision (mask scale, uncertainty of a held box).
"""

from __future__ import annotations

import numpy as np


def grow_box(box: np.ndarray, factor: float, width: int, height: int) -> np.ndarray | None:
    """One box grown about its centre by ``factor`` and clipped to the frame; ``None`` if nothing is left.

    Examples:
        >>> grow_box(np.array([10.0, 10.0, 30.0, 50.0]), 1.5, 100, 100).tolist()
        [5.0, 0.0, 35.0, 60.0]
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    clipped = np.clip([cx - hw, cy - hh, cx + hw, cy + hh], 0, [width, height, width, height])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None
    return clipped


def scale_boxes(xyxy: np.ndarray, factor: float, width: int, height: int) -> np.ndarray:
    """Boxes grown about their centres by ``factor`` and clipped to the frame, as whole pixels (outwards).

    Examples:
        >>> scale_boxes(np.array([[10.2, 10.0, 30.0, 50.0]]), 1.0, 100, 100).tolist()
        [[10, 10, 30, 50]]
    """
    if len(xyxy) == 0:
        return np.zeros((0, 4), np.int64)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * factor / 2
    boxes = np.concatenate([np.floor(centre - half), np.ceil(centre + half)], axis=1)
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` intersection over union of two sets of boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def short_side_size(width: int, height: int, short_side: int, multiple: int = 1) -> tuple[int, int]:
    """``(width, height)`` scaled so the short side is ``short_side``, aspect kept, both multiples of ``multiple``.

    Examples:
        >>> short_side_size(1920, 1080, 512, multiple=8)
        (912, 512)
    """
    scale = short_side / min(width, height)
    return (max(multiple, round(width * scale / multiple) * multiple),
            max(multiple, round(height * scale / multiple) * multiple))
