"""The annotator interface: read a frame, add what was found to its context, never touch pixels."""

from __future__ import annotations

from collections.abc import Iterable

from camouflage_video.frame import FrameContext


class Annotator:
    """Base class. ``name`` labels the stage in stats; ``annotate`` fills fields of the context."""

    name: str = "annotator"
    #: Reads track ids (``ctx.faces.track_ids``): ``ordered_stages`` puts it after every stage that does not.
    after_tracking: bool = False

    def annotate(self, ctx: FrameContext) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget per-video state (tracks, cached maps) before a new input."""

    def describe(self) -> dict:
        """Settings worth recording in the run's stats (model, runtime, device); empty by default."""
        return {}


def ordered_stages(stages: Iterable[Annotator]) -> list[Annotator]:
    """``stages`` in the order they must run: those that read tracks after all others, each group in the
    order given (detection, tracking and look-ahead first, as the run lists them)."""
    return sorted(stages, key=lambda stage: stage.after_tracking)
