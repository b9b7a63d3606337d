"""Measures over paired faces and frames: re-identification, gallery rank, fidelity outside faces."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.evaluation.recognizers import Recognizer
from camouflage_video.geometry import scale_boxes

PSNR_CAP_DB = 100.0  # identical pixels give an infinite PSNR, which JSON cannot hold
SSIM_WINDOW = 7


def distance_summary(distances: Sequence[float]) -> dict:
    """Count, mean and quantiles of a list of distances (``None`` values when it is empty)."""
    values = np.asarray(distances, np.float64)
    if values.size == 0:
        return {"count": 0, "mean": None, "median": None, "min": None, "p05": None, "p95": None, "max": None}
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), 4),
        "median": round(float(np.median(values)), 4),
        "min": round(float(values.min()), 4),
        "p05": round(float(np.percentile(values, 5)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(float(values.max()), 4),
    }


def rate(flags: Sequence[bool]) -> float | None:
    """Fraction of true values, ``None`` for an empty list."""
    return round(float(np.mean(flags)), 4) if len(flags) else None


def identity_ranks(
    recognizer: Recognizer,
    queries: np.ndarray,
    query_ids: np.ndarray,
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    chunk: int = 512,
) -> np.ndarray:
    """Rank of each query's true identity when the gallery's identities are sorted by distance.

    An identity's distance is that of its closest gallery face. Ties count in the true identity's
    favour (the attacker's), so rank 1 means no other identity is strictly closer.

    Args:
        queries: ``(Q, D)`` embeddings of anonymized faces.
        query_ids: ``(Q,)`` identity of each query (must occur in ``gallery_ids``).
        gallery: ``(G, D)`` embeddings of original faces (and distractors).
        gallery_ids: ``(G,)`` identity of each gallery face.
    """
    if len(queries) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(gallery_ids, kind="stable")
    gallery, gallery_ids = gallery[order], gallery_ids[order]
    identities, starts = np.unique(gallery_ids, return_index=True)
    column = {int(identity): i for i, identity in enumerate(identities)}
    ranks = np.empty(len(queries), np.int64)
    for lo in range(0, len(queries), chunk):
        d = recognizer.distance(queries[lo : lo + chunk], gallery)
        per_identity = np.minimum.reduceat(d, starts, axis=1)
        truth = per_identity[np.arange(len(d)), [column[int(i)] for i in query_ids[lo : lo + chunk]]]
        ranks[lo : lo + chunk] = 1 + (per_identity < truth[:, None]).sum(axis=1)
    return ranks


def outside_faces_mask(height: int, width: int, xyxy: np.ndarray, mask_scale: float) -> np.ndarray:
    """True where a pixel lies outside every face box grown by ``mask_scale``."""
    mask = np.ones((height, width), bool)
    for x1, y1, x2, y2 in scale_boxes(np.asarray(xyxy, np.float32).reshape(-1, 4), mask_scale, width, height):
        mask[y1:y2, x1:x2] = False
    return mask


def face_boxes_mask(height: int, width: int, xyxy: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """True inside any of the boxes (grown by ``scale``)."""
    return ~outside_faces_mask(height, width, xyxy, scale)


def masked_psnr(original: np.ndarray, anonymized: np.ndarray, mask: np.ndarray) -> float | None:
    """PSNR in dB over the masked pixels (RGB, 8 bit), capped at 100 dB; ``None`` for an empty mask."""
    if not mask.any():
        return None
    diff = original[mask].astype(np.float64) - anonymized[mask].astype(np.float64)
    mse = float((diff**2).mean())
    if mse <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def masked_ssim(original: np.ndarray, anonymized: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean SSIM (luma, 7x7 window) over masked pixels whose whole window lies inside the mask."""
    metrics = require("skimage.metrics", "evaluation", package="scikit-image")
    inner = cv2.erode(mask.astype(np.uint8), np.ones((SSIM_WINDOW, SSIM_WINDOW), np.uint8)).astype(bool)
    if not inner.any() or min(mask.shape) < SSIM_WINDOW:
        return None
    y_original = cv2.cvtColor(original, cv2.COLOR_RGB2GRAY)
    y_anonymized = cv2.cvtColor(anonymized, cv2.COLOR_RGB2GRAY)
    _, ssim_map = metrics.structural_similarity(
        y_original, y_anonymized, win_size=SSIM_WINDOW, data_range=255, full=True
    )
    return float(ssim_map[inner].mean())
