"""The anonymizer interface: the only stage that writes pixels."""

from __future__ import annotations

import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.frame import FrameContext


class Anonymizer:
    """Base class of every anonymization method.

    ``annotators()`` lists what must run on a frame before ``__call__`` (faces for the classic methods,
    control maps for the generative ones); ``__call__`` returns a new image and never modifies
    ``ctx.frame.image``.
    """

    name: str = "anonymizer"
    batch_size: int = 1  # frames the runner may hand to process_batch at once

    def process_batch(self, ctxs: list[FrameContext]) -> list[np.ndarray]:
        """Anonymize consecutive frames in order; methods that batch on a GPU override this."""
        return [self(ctx) for ctx in ctxs]

    def annotators(self) -> list[Annotator]:
        return []

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget per-video state (latents, seeds) before a new input."""

    def stats(self) -> dict:
        """Counters for ``--stats`` (model calls and the like)."""
        return {}
