"""The GPU side of the generative methods: throughput switches, the memory probe behind ``batch_size = "auto"``,
and the memory high-water mark the stats report.

Every switch is off by default: none has been measured on a GPU yet (benchmarks/generative_gpu.py measures
them; benchmarks/RESULTS.md says what was measured where). Attention already runs through PyTorch's
``scaled_dot_product_attention``: diffusers' default processors (``AttnProcessor2_0``, and the IP-Adapter's
``IPAdapterAttnProcessor2_0``) use it on torch >= 2, so there is no switch for it; the stats name the processor.

``batch_size = "auto"`` is measured, not guessed: the first keyframe runs alone while the device's peak memory
is recorded, and the batch is then what the free memory holds at that cost per frame (with a margin). A batch
that still runs out of memory is split in two and retried (``GenerativeAnonymizer``); a single frame that does
gets the counted fallback, as before.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Any

from camouflage_video._deps import require
from camouflage_video.options import GENERATIVE, flag

AUTO = "auto"
MAX_AUTO_BATCH = 16
MEMORY_MARGIN = 0.8  # share of the free memory an automatic batch may plan to use


@dataclass(frozen=True)
class AccelerationOptions:
    """Throughput switches of the diffusion models (all off until measured on the GPU they run on).

    Attributes:
        channels_last: The UNet, ControlNets and T2I-Adapter in channels-last memory format.
        compile: ``torch.compile`` the UNet and ControlNets (the first frames pay the compilation).
        vae_tiling: Decode large frames tile by tile (less memory, seams are blended).
        vae_slicing: Decode a batch one frame at a time (less memory at large batches).

    Examples:
        >>> AccelerationOptions(channels_last=True).compile
        False
    """

    channels_last: bool = field(default=False, metadata=flag(
        "UNet and ControlNets in channels-last memory format (GPU throughput switch)", group=GENERATIVE))
    compile: bool = field(default=False, metadata=flag(
        "torch.compile the UNet and ControlNets; the first frames pay the compilation", group=GENERATIVE))
    vae_tiling: bool = field(default=False, metadata=flag(
        "decode large frames tile by tile to save GPU memory", group=GENERATIVE))
    vae_slicing: bool = field(default=False, metadata=flag(
        "decode a batch one frame at a time to save GPU memory", group=GENERATIVE))

    def enabled(self) -> list[str]:
        return [name for name in ("channels_last", "compile", "vae_tiling", "vae_slicing") if getattr(self, name)]


def batch_size_value(text: str) -> int | str:
    """The ``--batch-size`` value: a positive number or ``auto``."""
    return AUTO if str(text).strip().lower() == AUTO else int(text)


def batch_size_check(batch_size: Any) -> tuple[bool, str]:
    ok = batch_size == AUTO or (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1)
    return ok, f"batch-size must be >= 1 or auto, got {batch_size!r}"


def apply_acceleration(pipeline: Any, options: AccelerationOptions) -> None:
    """Turn the switches on for a Base or Light pipeline (``pipeline.sd`` holds the stock components)."""
    torch = require("torch", "diffusion")
    sd = pipeline.sd
    # The networks of every denoising step; the T2I-Adapter runs once per call, so it is not compiled.
    stepped = [sd.unet, *getattr(pipeline, "controlnets", {}).values()]
    if getattr(pipeline, "identity", None) is not None:
        stepped.append(pipeline.identity)
    adapter = [pipeline.adapter] if getattr(pipeline, "adapter", None) is not None else []
    if options.channels_last:
        for network in stepped + adapter:
            network.to(memory_format=torch.channels_last)
    if options.compile:
        for network in stepped:
            network.compile()  # in place: the forward hooks that count model calls keep working
    if options.vae_tiling:
        sd.vae.enable_tiling()
    if options.vae_slicing:
        sd.vae.enable_slicing()


def attention_processor(unet: Any) -> str:
    """The class name of the UNet's cross-attention processor (``AttnProcessor2_0`` is SDPA)."""
    names = sorted({type(p).__name__ for p in unet.attn_processors.values()})
    return "+".join(names)


class DeviceMemory:
    """Memory queries of one device: CUDA's allocator, or the process's peak RSS on the CPU.

    The anonymizer asks through this object so that a test can stand in a GPU's answers where none exists.
    """

    def __init__(self, device: Any) -> None:
        self.device = device

    @property
    def is_gpu(self) -> bool:
        return getattr(self.device, "type", str(self.device)) == "cuda"

    def free(self) -> int:
        """Bytes the device can still allocate (CUDA: free memory plus what the allocator caches)."""
        torch = require("torch", "diffusion")
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device))

    def allocated(self) -> int:
        return int(require("torch", "diffusion").cuda.memory_allocated(self.device))

    def reset_peak(self) -> None:
        require("torch", "diffusion").cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        """The high-water mark in bytes: CUDA's peak allocation since the last reset, or the process's RSS."""
        if self.is_gpu:
            return int(require("torch", "diffusion").cuda.max_memory_allocated(self.device))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def empty_cache(self) -> None:
        if self.is_gpu:
            require("torch", "diffusion").cuda.empty_cache()


def auto_batch_size(free_bytes: int, frame_bytes: int, cap: int = MAX_AUTO_BATCH) -> int:
    """Keyframes that fit in ``MEMORY_MARGIN`` of ``free_bytes`` at ``frame_bytes`` each (1 to ``cap``)."""
    if frame_bytes <= 0:
        return cap
    return max(1, min(cap, int(free_bytes * MEMORY_MARGIN) // frame_bytes))
