"""Temporal consistency: flow-warping error (Lai et al., ECCV 2018) measured with the original's motion.

For neighbouring frames ``t-1, t``, optical flow is computed on the *original* video in both directions.
Frame ``t-1`` of a video ``V`` is warped onto frame ``t`` with that flow, and

    E_warp(V_t) = sum_x M(x) * ||V_t(x) - warp(V_{t-1})(x)||^2 / sum_x M(x)

with RGB in [0, 1] (so the per-pixel error lies in [0, 3]) and ``M`` the pixels that are visible in both
frames: not occluded by the forward-backward consistency test of Sundaram et al. (the one Lai et al. use)
and not warped in from outside the picture. Evaluated for the original and the anonymized video with the
same flow and mask, the difference is the flicker the anonymizer adds; restricted to face boxes, it is the
flicker of the anonymized faces themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from camouflage_video.errors import ConfigError


@dataclass(frozen=True, slots=True)
class WarpSample:
    """Warping errors of one pair of neighbouring frames.

    Attributes:
        frame: Index of the later frame (``t``) in the original.
        original: E_warp of the original over all visible pixels.
        anonymized: E_warp of the anonymized video over the same pixels.
        original_faces: E_warp of the original inside face boxes, ``None`` without faces.
        anonymized_faces: Same for the anonymized video.
        visible: Fraction of pixels that passed the occlusion test.
    """

    frame: int
    original: float
    anonymized: float
    original_faces: float | None
    anonymized_faces: float | None
    visible: float

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def analysis_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(w, h)`` no larger than ``max_side`` on the long side (never enlarged)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class FlowWarpingError:
    """Measure E_warp for pairs of neighbouring frames of an original and its anonymized version.

    Frames are downscaled to ``max_side`` before the flow is computed (DIS optical flow from OpenCV, a
    CPU-friendly stand-in for the FlowNet2 Lai et al. used); both videos are compared at that scale.

    Args:
        max_side: Long side of the analysis frames in pixels.

    Examples:
        >>> warp = FlowWarpingError()
        >>> sample = warp.measure(prev_o, cur_o, prev_a, cur_a, frame=1)  # doctest: +SKIP
        >>> sample.anonymized - sample.original  # doctest: +SKIP
    """

    def __init__(self, max_side: int = 640) -> None:
        if max_side < 32:
            raise ConfigError(f"flow analysis size must be at least 32 pixels, got {max_side}")
        self.max_side = max_side
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The analysis-scale copy of a frame (what :meth:`measure` takes)."""
        w, h = analysis_size(image.shape[1], image.shape[0], self.max_side)
        if (w, h) == (image.shape[1], image.shape[0]):
            return image
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    def measure(
        self,
        prev_original: np.ndarray,
        original: np.ndarray,
        prev_anonymized: np.ndarray,
        anonymized: np.ndarray,
        *,
        frame: int,
        face_mask: np.ndarray | None = None,
    ) -> WarpSample:
        """E_warp of frame ``t`` against ``t-1`` for both videos (analysis-scale RGB uint8 frames).

        Args:
            face_mask: Boolean ``(h, w)`` mask of face boxes at frame ``t`` (analysis scale), or ``None``.
        """
        h, w = original.shape[:2]
        g_prev = cv2.cvtColor(prev_original, cv2.COLOR_RGB2GRAY)
        g_cur = cv2.cvtColor(original, cv2.COLOR_RGB2GRAY)
        backward = self._flow.calc(g_cur, g_prev, None)  # original_t(x) ~ original_{t-1}(x + backward(x))
        forward = self._flow.calc(g_prev, g_cur, None)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        round_trip = ((backward + forward_there) ** 2).sum(-1)
        magnitude = (backward**2).sum(-1) + (forward_there**2).sum(-1)
        visible = inside & (round_trip <= 0.01 * magnitude + 0.5)

        def error(prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> float | None:
            if not mask.any():
                return None
            warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            diff = (cur.astype(np.float32) - warped.astype(np.float32)) / 255.0
            return float((diff**2).sum(-1)[mask].mean())

        faces = visible & face_mask if face_mask is not None else np.zeros_like(visible)
        return WarpSample(
            frame=frame,
            original=error(prev_original, original, visible) or 0.0,
            anonymized=error(prev_anonymized, anonymized, visible) or 0.0,
            original_faces=error(prev_original, original, faces),
            anonymized_faces=error(prev_anonymized, anonymized, faces),
            visible=float(visible.mean()),
        )


def summarize_warping(samples: list[WarpSample]) -> dict:
    """Means over all measured frame pairs (the per-video E_warp of Lai et al.)."""
    if not samples:
        return {"pairs": 0, "original": None, "anonymized": None, "original_faces": None, "anonymized_faces": None}

    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return round(float(np.mean(kept)), 6) if kept else None

    return {
        "pairs": len(samples),
        "original": mean([s.original for s in samples]),
        "anonymized": mean([s.anonymized for s in samples]),
        "original_faces": mean([s.original_faces for s in samples]),
        "anonymized_faces": mean([s.anonymized_faces for s in samples]),
        "visible": mean([s.visible for s in samples]),
    }
