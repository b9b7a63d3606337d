"""The annotator interface: read a frame, add what was found to its context, never touch pixels."""

from __future__ import annotations

from camouflage_video.frame import FrameContext


class Annotator:
    """Base class. ``name`` labels the stage in stats; ``annotate`` fills fields of the context."""

    name: str = "annotator"

    def annotate(self, ctx: FrameContext) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget per-video state (tracks, cached maps) before a new input."""

    def describe(self) -> dict:
        """Settings worth recording in the run's stats (model, runtime, device); empty by default."""
        return {}
