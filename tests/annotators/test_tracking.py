from __future__ import annotations

from fractions import Fraction

import numpy as np

from camouflage_video.annotators import FaceTracker
from camouflage_video.frame import Faces, Frame, FrameContext

BLANK = np.zeros((360, 640, 3), np.uint8)


def step(tracker, index, boxes):
    ctx = FrameContext(Frame(BLANK, index=index, pts=index, time_base=Fraction(1, 25)))
    ctx.faces = Faces.from_boxes(boxes, scores=[0.9] * len(boxes))
    tracker.annotate(ctx)
    return ctx.faces


def test_unconfirmed_detections_are_kept():
    faces = step(FaceTracker(fps=25, hold_frames=5), 0, [[100, 100, 160, 170]])
    assert len(faces) == 1 and faces.track_ids[0] == -1 and not faces.held[0]


def test_a_missed_detection_is_bridged_by_the_track():
    tracker = FaceTracker(fps=25, hold_frames=5)
    for i in range(6):  # a face moving right by 4 px per frame
        faces = step(tracker, i, [[100 + 4 * i, 100, 160 + 4 * i, 170]])
    track_id = faces.track_ids[0]
    assert track_id >= 0
    missed = step(tracker, 6, [])  # the detector misses the face for one frame
    assert len(missed) == 1 and missed.held[0] and missed.track_ids[0] == track_id
    x1, y1, x2, y2 = missed.xyxy[0]
    assert x1 <= 100 + 4 * 6 and x2 >= 160 + 4 * 6  # the predicted box still covers where the face went
    back = step(tracker, 7, [[128, 100, 188, 170]])
    assert back.track_ids[0] == track_id and not back.held.any()
    assert tracker.seen_ids == {track_id}


def test_held_boxes_expire_after_hold_frames():
    tracker = FaceTracker(fps=25, hold_frames=3)
    for i in range(4):
        step(tracker, i, [[100, 100, 160, 170]])
    held = [len(step(tracker, 4 + i, [])) for i in range(6)]
    assert held == [1, 1, 1, 0, 0, 0]


def test_two_people_keep_distinct_ids():
    tracker = FaceTracker(fps=Fraction(30000, 1001))
    for i in range(5):
        faces = step(tracker, i, [[50, 50, 110, 120], [400, 60, 460, 130]])
    assert len(set(faces.track_ids.tolist())) == 2 and (faces.track_ids >= 0).all()
