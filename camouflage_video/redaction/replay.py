"""Re-render from a reviewed ``tracks.json``: its boxes replace detection, tracking and look-ahead."""

from __future__ import annotations

import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.errors import ProcessingError
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.redaction.decide import REVIEWED
from camouflage_video.redaction.files import TracksFile


class TracksReplay(Annotator):
    """Set each frame's faces (and the file's kept/removed decisions) from a tracks file.

    A frame the file does not describe, or one it records as the whole-frame fallback, raises: the runner
    then writes the fallback for it again (fail closed: no frame goes out with faces nobody located).
    """

    name = "replay"

    def __init__(self, tracks: TracksFile) -> None:
        self.tracks = tracks
        self.seen_ids: set[int] = set()

    def reset(self) -> None:
        self.seen_ids = set()

    def describe(self) -> dict:
        return {"tracks_file": self.tracks.path, "frames": len(self.tracks.frames)}

    def annotate(self, ctx: FrameContext) -> None:
        index = ctx.frame.index
        if index not in self.tracks.frames:
            raise ProcessingError(f"frame {index} is not in {self.tracks.path}")
        entries = self.tracks.frames[index]
        if entries is None:
            raise ProcessingError(f"frame {index} was the whole-frame fallback in {self.tracks.path}")
        n = len(entries)
        landmarks = np.full((n, 5, 2), np.nan, np.float32)
        for k, entry in enumerate(entries):
            if entry.landmarks is not None:
                landmarks[k] = entry.landmarks
        ctx.faces = Faces.from_boxes(
            [e.box for e in entries], scores=[1.0 if e.state == "detected" else 0.0 for e in entries],
            track_ids=[e.track for e in entries], held=[e.state != "detected" for e in entries], landmarks=landmarks,
        )
        self.seen_ids.update(e.track for e in entries if e.track >= 0)
        ctx.extras[REVIEWED] = [e.decision == "kept" for e in entries]
