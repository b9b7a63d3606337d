"""Stand-ins for a run's parts, shared by test modules: a sink and a source in memory, an annotator that fails."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.frame import Frame, FrameContext
from camouflage_video.sinks.base import Sink


class MemorySink(Sink):
    """Keeps what it is given, to compare written pixels exactly (no codec in between)."""

    def __init__(self):
        self.frames, self.closed, self.aborted = [], False, False

    def write(self, frame, image):
        self.frames.append((frame.index, image.copy()))

    def close(self, *, interrupted=False):
        self.closed = True

    def abort(self):
        self.aborted = True


class FailOn(Annotator):
    name = "fail"

    def __init__(self, indices, exc=RuntimeError):
        self.indices, self.exc = set(indices), exc

    def annotate(self, ctx):
        if ctx.frame.index in self.indices:
            raise self.exc("boom")


def contexts(images, video: bool = True, start: int = 0) -> list[FrameContext]:
    return [
        FrameContext(Frame(np.ascontiguousarray(image), i, pts=i * 100 if video else None,
                           time_base=Fraction(1, 2500) if video else None))
        for i, image in enumerate(images, start)
    ]


class MemorySource:
    """A video source over arrays in memory (frames with pts, 25 fps)."""

    def __init__(self, images) -> None:  # noqa: ANN001
        from camouflage_video.sources.base import SourceInfo

        self.images = images
        self.corrupt_frames = 0
        self.info = SourceInfo(uri="memory", kind="video", width=images[0].shape[1], height=images[0].shape[0],
                               fps=Fraction(25), frame_count=len(images))

    def __iter__(self):
        return iter(contexts(self.images)[i].frame for i in range(len(self.images)))
