"""Automatic prompts: a caption of the first frame of each scene, from a transformers captioning model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from camouflage_video._deps import require
from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.scene_cuts import SCENE_CUT_KEY
from camouflage_video.frame import FrameContext

CAPTION_KEY = "caption"


class CaptionAnnotator(Annotator):
    """Writes ``ctx.extras["caption"]``: one caption per scene, recomputed at cuts and for every still image.

    The model loads on first use, so a run with a user prompt never loads it.

    Args:
        load: Returns ``(model, processor)``, e.g. ``lambda: load_transformers_model(
            "AutoModelForImageTextToText", source)`` for BLIP.
        device: Where the model runs.
        max_new_tokens: Caption length limit.

    Examples:
        >>> load = lambda: load_transformers_model("AutoModelForImageTextToText", src)  # doctest: +SKIP
        >>> captions = CaptionAnnotator(load)  # doctest: +SKIP
        >>> captions.annotate(ctx); ctx.extras["caption"]  # doctest: +SKIP
        'a woman in a space suit'
    """

    name = "caption"

    def __init__(self, load: Callable[[], tuple[Any, Any]], device: Any = "cpu", max_new_tokens: int = 30) -> None:
        self._load, self.device, self.max_new_tokens = load, device, max_new_tokens
        self._model: Any = None
        self._processor: Any = None
        self._caption: str | None = None
        self.calls = 0

    def reset(self) -> None:
        self._caption = None

    def annotate(self, ctx: FrameContext) -> None:
        if self._caption is None or ctx.frame.pts is None or ctx.extras.get(SCENE_CUT_KEY):
            self._caption = self.caption(ctx.frame.image)
        ctx.extras[CAPTION_KEY] = self._caption

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first caption)."""
        if self._model is None:
            model, self._processor = self._load()
            self._model = model.to(self.device)

    def caption(self, image: np.ndarray) -> str:
        torch = require("torch", "annotators")
        pil = require("PIL.Image", "annotators", package="pillow")
        self.load()
        inputs = self._processor(images=pil.fromarray(image), return_tensors="pt").to(self.device)
        with torch.no_grad():
            tokens = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        self.calls += 1
        return self._processor.decode(tokens[0], skip_special_tokens=True).strip()
