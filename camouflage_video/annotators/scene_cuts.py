"""Scene cuts: content change between consecutive original frames (mean absolute HSV difference on a
thumbnail, as PySceneDetect's content detector). A cut forces a keyframe, fresh control maps and a fresh
caption; every stage reads it from ``ctx.extras["scene_cut"]``."""

from __future__ import annotations

import cv2
import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.frame import FrameContext

SCENE_CUT_KEY = "scene_cut"


class SceneCutDetector:
    """Detects hard cuts from the content change between consecutive frames.

    Args:
        threshold: Mean absolute HSV difference (0-255) above which a frame starts a new scene; 0 disables.
        size: Thumbnail size the comparison runs at.

    Examples:
        >>> detect = SceneCutDetector(27.0)
        >>> detect(np.zeros((36, 64, 3), np.uint8)), detect(np.full((36, 64, 3), 255, np.uint8))
        (False, True)
    """

    def __init__(self, threshold: float = 27.0, size: tuple[int, int] = (64, 36)) -> None:
        self.threshold, self.size = threshold, size
        self._previous: np.ndarray | None = None
        self.last_score = 0.0

    def __call__(self, image: np.ndarray) -> bool:
        """True if ``image`` starts a new scene (the first frame of a video does not count as a cut)."""
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.int16)
        previous, self._previous = self._previous, hsv
        if previous is None or self.threshold <= 0:
            self.last_score = 0.0
            return False
        self.last_score = float(np.abs(hsv - previous).mean())
        return self.last_score > self.threshold

    def reset(self) -> None:
        self._previous = None


class SceneCutAnnotator(Annotator):
    """Marks ``ctx.extras["scene_cut"]`` for frames that start a new scene (stills never reuse anything)."""

    name = "scene_cuts"

    def __init__(self, threshold: float = 27.0) -> None:
        self.detector = SceneCutDetector(threshold)
        self.cuts = 0

    def annotate(self, ctx: FrameContext) -> None:
        cut = self.detector(ctx.frame.image)
        self.cuts += cut
        ctx.extras[SCENE_CUT_KEY] = cut

    def reset(self) -> None:
        self.detector.reset()
