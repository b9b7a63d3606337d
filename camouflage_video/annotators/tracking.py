"""Face tracking: stable ids, and boxes held over frames where the detector misses a face.

A face that slips through a single frame is the most common complaint about frame-by-frame tools.
Every detection is obfuscated whether or not it belongs to a confirmed track; a confirmed track that
loses its detection keeps its predicted box (grown a little each missed frame) for ``hold_frames``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from camouflage_video._deps import require
from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.faces import DETECTION_SKIPPED
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.geometry import grow_box


class FaceTracker(Annotator):
    """ByteTrack (from the ``trackers`` package) over ``ctx.faces``; adds held boxes and track ids.

    Args:
        fps: Source frame rate, used to scale ByteTrack's buffers.
        hold_frames: How many frames a lost confirmed track keeps its predicted box.
        growth: Relative growth of a held box per missed frame (motion is uncertain), capped at 1.5x.
        min_hits: Consecutive detections before a track is confirmed and gets an id.

    Examples:
        >>> tracker = FaceTracker(fps=Fraction(30), hold_frames=15)
        >>> detector.annotate(ctx); tracker.annotate(ctx)  # doctest: +SKIP
    """

    name = "track"

    def __init__(
        self,
        fps: Fraction | float | None = None,
        hold_frames: int = 10,
        growth: float = 0.05,
        min_hits: int = 2,
        activation: float = 0.4,
    ) -> None:
        if hold_frames < 0:
            raise ConfigError(f"hold_frames must be >= 0, got {hold_frames}")
        self.fps = float(fps or 30)
        self.hold_frames, self.growth, self.min_hits, self.activation = hold_frames, growth, min_hits, activation
        self.seen_ids: set[int] = set()
        self.held_boxes = 0
        self.reset()

    def reset(self) -> None:
        trackers = require("trackers", None, package="trackers")
        # ByteTrack counts its buffer in 30 fps frames; keep lost tracks at least as long as we hold them.
        buffer = math.ceil((self.hold_frames + 1) * 30 / self.fps)
        self._tracker = trackers.ByteTrackTracker(
            lost_track_buffer=buffer,
            frame_rate=self.fps,
            track_activation_threshold=self.activation,
            minimum_consecutive_frames=self.min_hits,
            minimum_iou_threshold=0.1,
            high_conf_det_threshold=max(self.activation, 0.5),
        )
        self.seen_ids = set()
        self.held_boxes = 0

    def describe(self) -> dict:
        return {"tracker": "ByteTrack (trackers)", "hold_frames": self.hold_frames, "min_hits": self.min_hits,
                "held_boxes": self.held_boxes}

    def annotate(self, ctx: FrameContext) -> None:
        sv = require("supervision", None, package="supervision")
        faces = ctx.faces if ctx.faces is not None else Faces.empty()
        h, w = ctx.frame.image.shape[:2]
        if ctx.extras.get(DETECTION_SKIPPED):
            # Nothing was detected here: the tracks stay where they are (not a miss), each held at its
            # last place one frame further grown; the back-fill interpolates them once the next is detected.
            ctx.faces = Faces.concat([faces, self._held(w, h, set(), skipped=True)])
            return
        detections = sv.Detections(
            xyxy=faces.xyxy.astype(np.float32),
            confidence=faces.scores.astype(np.float32),
            data={"index": np.arange(len(faces))},
        )
        tracked = self._tracker.update(detections)
        # ByteTrack returns every detection (unconfirmed ones with id -1), possibly reordered.
        ids = np.full(len(faces), -1, np.int64)
        if len(tracked):
            ids[tracked.data["index"]] = tracked.tracker_id
        self.seen_ids.update(int(i) for i in ids if i >= 0)
        held = self._held(w, h, set(ids.tolist()))
        ctx.faces = Faces.concat([Faces(faces.xyxy, faces.scores, ids, faces.held, faces.landmarks), held])

    def _held(self, width: int, height: int, present: set[int], skipped: bool = False) -> Faces:
        boxes, ids = [], []
        for track in self._tracker.tracks:
            missed = track.time_since_update + skipped  # a skipped frame is one more frame since the last box
            if track.tracker_id < 0 or track.tracker_id in present or not 0 < missed <= self.hold_frames:
                continue
            box = grow_box(np.asarray(track.get_state_bbox(), np.float64), min(1.5, 1.0 + self.growth * missed),
                           width, height)
            if box is not None:
                boxes.append(box)
                ids.append(track.tracker_id)
        self.held_boxes += len(boxes)
        n = len(boxes)
        return Faces.from_boxes(np.reshape(boxes, (n, 4)), scores=np.zeros(n), track_ids=ids, held=np.ones(n, bool))
