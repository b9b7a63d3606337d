"""Cover each face from the first frame it is visible in, not from its first detection.

A tracker covers a face from the frame the detector first found it in. Before that (a face entering the
picture, turning towards the camera, coming out from behind someone) the detector missed it and the frames
went out with the face in them. For files the runner can wait: it holds the last ``look_ahead`` annotated
frames before anonymizing them, and :class:`Backfill` revises those frames as later ones arrive:

- a face that appears (a new track, or an untracked detection with nothing near it in the frame before) is
  carried backwards through the held frames, moving as it moved in its first two frames and growing a
  little each frame further back, until it would leave the picture;
- a track re-found after a gap is interpolated across the gap from both sides (the tracker's forward
  prediction stays as well: covering twice costs little, missing once leaks);
- frames the detector skipped (``CenterFaceDetector.every``) are filled in once the next frame is detected:
  every face found there is interpolated from where it was in the last detected frame (tracked or not), and
  one that was not there is carried back as a face that appeared.

Memory stays bounded: the runner holds at most ``look_ahead`` frames (and at most 256 MiB of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.faces import DETECTION_SKIPPED
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.geometry import box_iou, grow_box

#: Growth of a box per frame it is carried back (the tracker grows held boxes the same way), and its cap.
GROWTH, MAX_GROWTH = 0.05, 1.5


@dataclass
class _Seen:
    box: np.ndarray
    index: int


class Backfill(Annotator):
    """Revise held-back frames with what later frames show (see the module docstring).

    Place it after the detector and the tracker. The runner calls :meth:`revise` with every new frame and
    the frames it still holds, oldest first.

    Args:
        look_ahead: Frames the runner holds back before anonymizing them; 0 disables back-filling.

    Examples:
        >>> backfill = Backfill(look_ahead=25)
        >>> backfill.look_ahead
        25
    """

    name = "backfill"

    def __init__(self, look_ahead: int = 25) -> None:
        if look_ahead < 0:
            raise ConfigError(f"look_ahead must be >= 0 frames, got {look_ahead}")
        self.look_ahead = look_ahead
        self.reset()

    def reset(self) -> None:
        self._last: dict[int, _Seen] = {}  # each track's last detected (not held) box
        self._new: list[_Seen] = []  # faces that appeared in the newest detected frame
        self._detected: list[_Seen] = []  # the faces of the last detected frame
        self.backfilled_boxes = 0
        self.interpolated_boxes = 0

    def describe(self) -> dict:
        return {"look_ahead": self.look_ahead, "backfilled_boxes": self.backfilled_boxes,
                "interpolated_boxes": self.interpolated_boxes}

    def annotate(self, ctx: FrameContext) -> None:
        """Nothing to add to the frame itself; the work is in :meth:`revise`."""

    def revise(self, ctx: FrameContext, held: Sequence[FrameContext]) -> None:
        """Carry what ``ctx`` shows back into ``held`` (the frames before it, oldest first)."""
        if ctx.extras.get(DETECTION_SKIPPED):
            return  # nothing was detected here: the next detected frame fills it in
        faces = ctx.faces if ctx.faces is not None else Faces.empty()
        index = ctx.frame.index
        detected = np.flatnonzero(~faces.held)
        boxes = faces.xyxy[detected].astype(np.float64)
        # Faces that appeared in the last detected frame went back still; now their motion is known, carry
        # them back along it too (both copies stay: covering twice costs little, missing once leaks).
        for new in self._new:
            moved = _nearest(new.box, boxes)
            gap = index - new.index
            if moved is not None and held:
                self._carry_back(new.box, (moved - new.box) / gap, [h for h in held if h.frame.index < new.index])
        self._new = []
        skipped = bool(held) and bool(held[-1].extras.get(DETECTION_SKIPPED))
        previous = held[-1].faces if held and held[-1].faces is not None else Faces.empty()
        for i, box in zip(detected, boxes, strict=True):
            track_id = int(faces.track_ids[i])
            last = self._last.get(track_id) if track_id >= 0 else None
            if last is not None:
                if index - last.index > 1:
                    self._interpolate(last, box, index, held)
                continue
            if skipped:  # an untracked face (or a new track) from where it was in the last detected frame
                before = _nearest_seen(box, self._detected)
                if before is not None:
                    self._interpolate(before, box, index, held)
                    continue
            elif any(box_iou(box, other) >= 0.3 for other in previous.xyxy):
                continue  # seen in the frame before (an untracked detection now confirmed): covered from there
            self._carry_back(box, np.zeros(4), held)
            self._new.append(_Seen(box, index))
        self._detected = [_Seen(box, index) for box in boxes]
        self._remember(ctx)

    def _remember(self, ctx: FrameContext) -> None:
        faces = ctx.faces
        if faces is None:
            return
        for i in np.flatnonzero(~faces.held & (faces.track_ids >= 0)):
            self._last[int(faces.track_ids[i])] = _Seen(faces.xyxy[i].astype(np.float64), ctx.frame.index)

    def _carry_back(self, box: np.ndarray, velocity: np.ndarray, held: Sequence[FrameContext]) -> None:
        for steps, older in enumerate(reversed(held), start=1):
            h, w = older.frame.image.shape[:2]
            grown = grow_box(box - velocity * steps, min(MAX_GROWTH, 1.0 + GROWTH * steps), w, h)
            if grown is None:
                return  # it would be outside the picture: it entered from there
            _add(older, grown)
            self.backfilled_boxes += 1

    def _interpolate(self, last: _Seen, box: np.ndarray, index: int, held: Sequence[FrameContext]) -> None:
        for older in held:
            f = older.frame.index
            if not last.index < f < index:
                continue
            t = (f - last.index) / (index - last.index)
            h, w = older.frame.image.shape[:2]
            between = grow_box(last.box * (1 - t) + box * t, 1.0 + GROWTH, w, h)
            if between is not None:
                _add(older, between)
                self.interpolated_boxes += 1




def _add(ctx: FrameContext, box: np.ndarray) -> None:
    """A held box (no track id: the verifier follows it by overlap) added to a frame's faces."""
    extra = Faces.from_boxes(box[None].astype(np.float32), scores=np.zeros(1), held=np.ones(1, bool))
    ctx.faces = extra if ctx.faces is None else Faces.concat([ctx.faces, extra])


def _nearest_seen(box: np.ndarray, seen: Sequence[_Seen]) -> _Seen | None:
    """The face of the last detected frame that ``box`` most likely is (see ``_nearest``)."""
    if not seen:
        return None
    found = _nearest(box, np.array([s.box for s in seen]))
    return None if found is None else next(s for s in seen if s.box is found or np.array_equal(s.box, found))


def _nearest(box: np.ndarray, candidates: np.ndarray) -> np.ndarray | None:
    """The candidate that is most likely ``box`` one frame later: of a similar size, its centre within one
    box size (a fast face overlaps its last position little, so overlap alone would lose it)."""
    size = max(box[2] - box[0], box[3] - box[1])
    best, best_distance = None, size
    for other in candidates:
        other_size = max(other[2] - other[0], other[3] - other[1])
        distance = float(np.hypot(*((other[:2] + other[2:]) / 2 - (box[:2] + box[2:]) / 2)))
        if 0.5 <= other_size / max(size, 1e-6) <= 2 and distance < best_distance:
            best, best_distance = other, distance
    return best


