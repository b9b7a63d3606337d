"""Flow-warping error: small for real motion, large for flicker, restricted to faces when asked."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.evaluation.temporal import FlowWarpingError, summarize_warping


def textured(shift: int) -> np.ndarray:
    """A smooth random texture moved ``shift`` pixels to the right (real, occlusion-free motion)."""
    rng = np.random.default_rng(7)
    base = cv2.GaussianBlur(rng.integers(0, 255, (180, 280, 3), dtype=np.uint8), (0, 0), 3)
    return np.ascontiguousarray(base[10:170, 20 - shift : 260 - shift])


def test_motion_warps_away_and_flicker_does_not():
    warp = FlowWarpingError()
    prev, cur = textured(0), textured(3)
    flicker = cur.copy()
    flicker[40:100, 80:160] //= 3  # a patch that darkens from one frame to the next
    mask = np.zeros(cur.shape[:2], bool)
    mask[40:100, 80:160] = True
    sample = warp.measure(prev, cur, prev, flicker, frame=1, face_mask=mask)
    assert sample.original < 0.01  # the flow explains the motion
    assert sample.anonymized > 10 * sample.original
    assert sample.anonymized_faces > sample.anonymized  # the flicker sits inside the "face"
    assert 0.8 < sample.visible <= 1.0  # the strip entering from the left is not visible in t-1
    summary = summarize_warping([sample, sample])
    assert summary["pairs"] == 2 and summary["anonymized_faces"] > 10 * summary["original_faces"] + 0.01


def test_analysis_frames_are_downscaled_never_enlarged():
    warp = FlowWarpingError(max_side=100)
    assert warp.prepare(np.zeros((400, 200, 3), np.uint8)).shape == (100, 50, 3)
    assert warp.prepare(np.zeros((40, 20, 3), np.uint8)).shape == (40, 20, 3)
    with pytest.raises(ConfigError):
        FlowWarpingError(max_side=8)
