"""Counts of model evaluations, taken where they happen (forward hooks), not inferred from settings, and
seconds per stage of a generation call.

Shared by the generative pipelines: ``--stats`` reports these counts, and the benchmarks compare them.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from camouflage_video._deps import require


class CallCounter:
    """Counts forward passes of named torch modules, per sample.

    A call on a batch of ``n`` latents counts ``n`` evaluations: a classifier-free-guidance step of the UNet
    on ``[uncond, cond]`` counts 2, as in the paper's cost accounting.

    Examples:
        >>> counter = CallCounter()
        >>> counter.watch("unet", pipe.unet)  # doctest: +SKIP
        >>> counter.counts["unet"]  # doctest: +SKIP
        50
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._handles: list[Any] = []

    def watch(self, name: str, module: Any) -> None:
        """Count every forward call of ``module`` under ``name``."""

        def hook(_module: Any, args: tuple, kwargs: dict) -> None:
            self.counts[name] += _batch_size(args, kwargs)

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    @classmethod
    def for_stock_pipeline(cls, sd: Any, extra: dict[str, Any]) -> CallCounter:
        """Count a stock SD pipeline's UNet, the ``extra`` modules (``None`` skipped), VAE and text encoder."""
        calls = cls()
        calls.watch("unet", sd.unet)
        for name, module in extra.items():
            if module is not None:
                calls.watch(name, module)
        calls.watch("vae_decode", sd.vae.decoder)
        calls.watch("vae_encode", sd.vae.encoder)
        calls.watch("text_encoder", sd.text_encoder)
        return calls

    def add(self, name: str, n: int = 1) -> None:
        """Count calls that are not torch forwards (an annotator run, a caption)."""
        self.counts[name] += n

    def detach(self) -> None:
        """Remove the hooks (the modules are then exactly as they were)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def _batch_size(args: tuple, kwargs: dict) -> int:
    for value in (*args, *kwargs.values()):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


class StageClock:
    """Seconds per stage; waits for the GPU at each lap so the time lands in the stage that spent it."""

    def __init__(self, device: Any) -> None:
        self.device, self.seconds = device, {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        torch = require("torch", "diffusion")
        if getattr(self.device, "type", str(self.device)) == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now
