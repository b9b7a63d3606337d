"""What CAMOUFLaGE-Base, CAMOUFLaGE-Light and train-light share: sampling options and their checks, device and
dtype resolution, the scheduler, the frozen SD 1.5 components, and the video anonymizer base.

``GenerativeAnonymizer`` holds the temporal state of a video (fixed noise, latent reuse, scene cuts), plans
frames and batches keyframes (``process_batch``), guards each generation (a failure invalidates the reused
latent and is counted; out-of-memory also frees the CUDA cache) and ends each one the same way (non-finite
check, latent commit, resize to the source size). A method implements ``_run(group)`` and ``stats()``.
"""

from __future__ import annotations

import inspect
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.scene_cuts import SceneCutAnnotator
from camouflage_video.errors import ConfigError, ProcessingError
from camouflage_video.frame import FrameContext
from camouflage_video.geometry import short_side_size
from camouflage_video.models import ModelSource, load_sd15, load_vae
from camouflage_video.options import GENERATIVE, flag
from camouflage_video.pipelines.acceleration import (
    AUTO,
    AccelerationOptions,
    DeviceMemory,
    attention_processor,
    auto_batch_size,
    batch_size_check,
    batch_size_value,
)
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.sd15 import Denoise
from camouflage_video.pipelines.temporal import FixedNoise, FramePlan, GenerationOutput, LatentReuse, TemporalOptions

DEFAULT_NEGATIVE_PROMPT = (
    "cartoon, painting, illustration, drawing, deformed, disfigured, blurry, low quality, worst quality, "
    "watermark, text"
)
SCHEDULERS = ("dpmpp-sde-karras", "dpmpp-2m-sde-karras")
DTYPES = ("auto", "float16", "bfloat16", "float32")
# The VAE of a generation decodes in float32 whatever --dtype is (frozen_sd15).
VAE_DTYPE = "float32"
REGION_SCALES = (0.5, 3.0)


def resolution_check(resolution: int) -> tuple[bool, str]:
    return resolution >= 64 and resolution % 8 == 0, f"resolution must be a multiple of 8 and >= 64, got {resolution}"


def region_scale_check(region_scale: float) -> tuple[bool, str]:
    low, high = REGION_SCALES
    return low <= region_scale <= high, f"region-scale must be within {low:g}..{high:g}, got {region_scale}"


RESOLUTION_FLAG = flag("short side of the generation size, multiple of 8", group=GENERATIVE)
MODELS_FLAG = flag("a component's hub id[@revision], folder or .safetensors file; repeatable (names: "
                   "camouflage-video models list)", name="model", metavar="NAME=SPEC", group=GENERATIVE)
PROMPT_FLAG = flag("text prompt (base: a caption of each scene when none is given; light and train-light: a "
                   "fixed photo prompt)", default_text="", group=GENERATIVE)
MODELS_DIR_FLAG = flag("look every hub model up as DIR/<repo name> (offline use)", metavar="DIR", group=GENERATIVE)


@dataclass(frozen=True)
class SamplingOptions:
    """The settings Base and Light share (each method redeclares the defaults that differ).

    Attributes:
        negative_prompt: Negative prompt.
        steps: Denoising steps of a keyframe.
        guidance_scale: Classifier-free guidance ``w``.
        resolution: Short side of the generation size in pixels (multiple of 8; aspect kept).
        seed: Seed of the fixed noise; the same seed gives the same video.
        scheduler: ``dpmpp-sde-karras`` (DPM++ SDE Karras, DPMSolverSDEScheduler, two model evaluations per
            step but the last) or ``dpmpp-2m-sde-karras`` (DPMSolverMultistepScheduler, one per step).
        temporal: Latent reuse, keyframes, scene cuts and flow warping.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``auto`` (float16 on CUDA, float32 on CPU), ``float16``, ``bfloat16`` or ``float32``.
        batch_size: Keyframes generated together (frames that reuse a latent always run one by one); ``auto``
            measures the first keyframe's peak GPU memory and fits the batch to the free memory (1 on the CPU).
            A batch that runs out of memory is split and retried.
        acceleration: Throughput switches, off until measured (``pipelines/acceleration.py``).
        models: Component sources by name (see ``camouflage-video models list``).
        models_dir: Folder where every hub component is looked up as ``<models_dir>/<repo name>``.
        base_config: Diffusers config folder or hub id for a single-file base checkpoint.

    Examples:
        >>> SamplingOptions(steps=20).resolution
        512
    """

    negative_prompt: str = field(default=DEFAULT_NEGATIVE_PROMPT, metadata=flag(
        "negative prompt", default_text="low-quality and cartoon terms", group=GENERATIVE))
    steps: int = field(default=25, metadata=flag("denoising steps of a keyframe", group=GENERATIVE))
    guidance_scale: float = field(default=7.0, metadata=flag("classifier-free guidance", group=GENERATIVE))
    resolution: int = field(default=512, metadata=RESOLUTION_FLAG)
    seed: int = field(default=0, metadata=flag("seed of the fixed noise", group=GENERATIVE))
    scheduler: str = field(default="dpmpp-sde-karras", metadata=flag("sampler", choices=SCHEDULERS, group=GENERATIVE))
    temporal: TemporalOptions = field(default_factory=TemporalOptions)
    device: str = field(default="auto", metadata=flag("auto, cpu, cuda or cuda:N", group=GENERATIVE))
    dtype: str = field(default="auto", metadata=flag(
        "model precision", choices=DTYPES, default_text="float16 on CUDA, float32 on CPU", group=GENERATIVE))
    batch_size: int | str = field(default=1, metadata=flag(
        "keyframes generated together on the GPU; auto: what its free memory holds, measured on the first keyframe",
        metavar="N|auto", type=batch_size_value, group=GENERATIVE))
    acceleration: AccelerationOptions = field(default_factory=AccelerationOptions)
    models: Mapping[str, str] = field(default_factory=dict, metadata=MODELS_FLAG)
    models_dir: str | None = field(default=None, metadata=MODELS_DIR_FLAG)
    base_config: str | None = None

    def __post_init__(self) -> None:
        ConfigError.check(self.sampling_checks())

    def sampling_checks(self) -> list[tuple[bool, str]]:
        return [
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.guidance_scale >= 0, f"guidance-scale must be >= 0, got {self.guidance_scale}"),
            resolution_check(self.resolution),
            (self.scheduler in SCHEDULERS,
             f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"),
            (self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}"),
            batch_size_check(self.batch_size),
        ]


def generation_size(width: int, height: int, short_side: int, multiple: int = 8) -> tuple[int, int]:
    """``(width, height)`` with the short side at ``short_side``, aspect kept, both multiples of ``multiple``."""
    return short_side_size(width, height, short_side, multiple)


def resolve_device(device: str, dtype: str) -> tuple[Any, Any]:
    """``(torch.device, torch.dtype)``; a clear error when CUDA is asked for and absent."""
    torch = require("torch", "diffusion")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: CUDA is not available (no NVIDIA GPU/driver, or a CPU-only torch build); "
            "use --device cpu"
        )
    if dtype == "auto":
        dtype = "float16" if resolved.type == "cuda" else "float32"
    if resolved.type == "cpu" and dtype == "float16":
        raise ConfigError("float16 is for GPUs; on CPU use --dtype float32 (or bfloat16)")
    return resolved, getattr(torch, dtype)


def make_scheduler(name: str, config: Mapping[str, Any]) -> Any:
    """DPM++ SDE Karras (default) or DPM++ 2M SDE Karras from an SD 1.5 scheduler config."""
    diffusers = require("diffusers", "diffusion")
    if name == "dpmpp-sde-karras":
        cls, extra = diffusers.DPMSolverSDEScheduler, {"use_karras_sigmas": True}
    else:
        cls = diffusers.DPMSolverMultistepScheduler
        extra = {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{**{k: v for k, v in config.items() if k in accepted}, **extra})


def frozen_sd15(
    sources: Mapping[str, ModelSource], base_config: str | None, device: Any, dtype: Any, load_dtype: Any = None,
    vae_dtype: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """SD 1.5's VAE, text encoder, tokenizer and UNet on ``device`` at ``dtype`` (loaded at ``load_dtype``,
    by default ``dtype``), as pipeline keyword arguments, and the base's scheduler config.

    The VAE runs at ``vae_dtype`` (default ``dtype``); the generators pass float32, since a half-precision
    decode is where fp16 overflows and banding show, and it costs one decode per frame.
    """
    torch = require("torch", "diffusion")
    load_dtype = dtype if load_dtype is None else load_dtype
    vae_dtype = getattr(torch, vae_dtype) if isinstance(vae_dtype, str) else vae_dtype
    vae = load_vae(sources["vae"], load_dtype).to(device, dtype if vae_dtype is None else vae_dtype)
    sd = load_sd15(sources["base"], load_dtype, config=base_config, vae=vae)
    parts = {"vae": vae, "text_encoder": sd["text_encoder"].to(device, dtype),
             "tokenizer": sd["tokenizer"], "unet": sd["unet"].to(device, dtype)}
    return parts, sd["scheduler_config"]


class GenerativeAnonymizer(Anonymizer):
    """Base of the video anonymizers that regenerate whole frames with a diffusion ``pipeline``.

    Args:
        pipeline: Has ``latent_shape``, ``device``, ``dtype`` and ``calls`` (a ``CallCounter``).
        options: A ``SamplingOptions``.

    Attributes:
        counts: ``frames``, ``failed_frames`` and ``out_of_memory_frames``.
        seconds: Seconds per stage over the run.

    Examples:
        >>> anonymizer = build_base_anonymizer({"batch_size": 4})  # doctest: +SKIP
        >>> images = anonymizer.process_batch(ctxs)  # doctest: +SKIP
    """

    multiple = 8  # the generation size divides by it

    def __init__(self, pipeline: Any, options: Any, memory: DeviceMemory | None = None) -> None:
        self.pipeline, self.options = pipeline, options
        self.memory = memory or DeviceMemory(pipeline.device)
        # "auto" starts at 1: the first keyframe runs alone and its peak memory sets the batch (_generate).
        self.batch_size = 1 if options.batch_size == AUTO else options.batch_size
        self._measure_batch = options.batch_size == AUTO and self.memory.is_gpu
        self.peak_memory = 0
        self.scene_cuts = SceneCutAnnotator(options.temporal.scene_cut_threshold)
        self.noise = FixedNoise(options.seed)
        self.reuse = LatentReuse(options.temporal)
        self.counts: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def annotators(self) -> list[Annotator]:
        return [self.scene_cuts]

    def reset(self) -> None:
        self.noise.reset()
        self.reuse.reset()
        for annotator in self.annotators():
            annotator.reset()

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        return self.process_batch([ctx])[0]

    def process_batch(self, ctxs: Sequence[FrameContext]) -> list[np.ndarray]:
        """Anonymize consecutive frames; keyframes run together up to ``batch_size``, reuse frames alone.

        Frames are planned in order and each frame's latent is committed before a later frame reuses it,
        so the plan, seeds and inputs of every frame are the same for any batching.
        """
        images: list[np.ndarray] = []
        pending: list[tuple[FrameContext, FramePlan]] = []
        for ctx in ctxs:
            plan = self.reuse.plan(ctx, self.latent_shape(ctx))
            if pending and (not plan.keyframe or len(pending) == self.batch_size
                            or ctx.frame.image.shape != pending[0][0].frame.image.shape):
                images += self._generate(pending)
                pending = []
            if plan.keyframe:
                pending.append((ctx, plan))
            else:
                images += self._generate([(ctx, plan)])
        if pending:
            images += self._generate(pending)
        return images

    def size(self, image: np.ndarray) -> tuple[int, int]:
        """The generation ``(width, height)`` of a source image."""
        return generation_size(image.shape[1], image.shape[0], self.options.resolution, self.multiple)

    def latent_shape(self, ctx: FrameContext) -> tuple[int, int, int, int]:
        width, height = self.size(ctx.frame.image)
        return self.pipeline.latent_shape(1, height, width)

    def _generate(self, group: list[tuple[FrameContext, FramePlan]]) -> list[np.ndarray]:
        torch = require("torch", "diffusion")
        ctxs = [ctx for ctx, _ in group]
        width, height = self.size(ctxs[0].frame.image)
        measure = self._measure_batch and len(group) == 1 and group[0][1].keyframe
        if measure:
            self.peak_memory = max(self.peak_memory, self.memory.peak())
            before = self.memory.allocated()
            self.memory.reset_peak()
        images = None
        try:
            images = self._run(ctxs, group[0][1], width, height)
        except BaseException as exc:
            out_of_memory = isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError))
            if not (out_of_memory and len(group) > 1):
                # A failed frame leaves no latent to reuse: the next frame starts afresh from the fixed noise.
                self.reuse.invalidate()
                if isinstance(exc, Exception):
                    self.counts["failed_frames"] += len(group)
                if out_of_memory:
                    self.counts["out_of_memory_frames"] += len(group)
                    self.memory.empty_cache()
                raise
        if images is None:
            # Out of memory on a batch. Keyframes of one batch do not depend on each other: run the halves, and
            # keep the smaller batch for the rest of the video; a single frame that still fails gets the
            # fallback. Retried outside the except block, whose traceback would keep the failed call's
            # tensors alive.
            self.memory.empty_cache()
            self.counts["batch_reductions"] += 1
            half = len(group) // 2
            self.batch_size = max(1, half)
            return self._generate(group[:half]) + self._generate(group[half:])
        frame_peak = self.memory.peak()
        self.peak_memory = max(self.peak_memory, frame_peak)
        if measure:
            self._measure_batch = False
            self.batch_size = auto_batch_size(self.memory.free(), frame_peak - before)
        return images

    def _run(self, ctxs: list[FrameContext], plan: FramePlan, width: int, height: int) -> list[np.ndarray]:
        """Generate frames that share ``plan`` (keyframes, or one reuse frame) at ``width`` x ``height``."""
        raise NotImplementedError

    def _denoise(self, embeds: tuple, height: int, width: int, noise: Any, ctxs: Sequence[FrameContext],
                 plan: FramePlan) -> Denoise:
        """The pipeline call's noise, prompt and schedule for ``ctxs`` under ``plan`` (reuse: from the last latent)."""
        options = self.options
        return Denoise(
            prompt_embeds=embeds, height=height, width=width, noise=noise,
            generators=self.noise.generators(len(ctxs)), num_inference_steps=options.steps,
            guidance_scale=options.guidance_scale,
            init_latents=None if plan.keyframe else self.reuse.init_latents(ctxs[0].frame.image),
            strength=plan.strength, noise_seed=options.seed,
        )

    def _finish(self, out: GenerationOutput, ctxs: Sequence[FrameContext], width: int) -> list[np.ndarray]:
        """The end of a generation: account its stages, refuse non-finite images, keep the last latent for the
        next frame, count the frames and return each image at its source size."""
        for stage, seconds in out.seconds.items():
            self.seconds[stage] += seconds
        if not np.isfinite(out.images).all():
            raise ProcessingError("the generated image has non-finite values (fp16 overflow?)")
        last = ctxs[-1]
        if last.frame.pts is not None:
            self.reuse.commit(out.latents[-1:], last.frame.image)
        self.counts["frames"] += len(ctxs)
        source_h, source_w = ctxs[0].frame.image.shape[:2]
        interpolation = cv2.INTER_AREA if width >= source_w else cv2.INTER_CUBIC
        pixels = (out.images * 255).round().clip(0, 255).astype(np.uint8)  # as diffusers' numpy_to_pil
        return [cv2.resize(image, (source_w, source_h), interpolation=interpolation) for image in pixels]

    def generation_stats(self, calls: dict[str, int], *, extra: dict | None = None, **settings: Any) -> dict:
        """The ``model`` section of the stats: frames, reuse, failures, model calls, settings.

        Args:
            calls: Model evaluations by component.
            extra: Method-specific counters, listed before the model evaluations.
            settings: Method-specific settings, added to the shared ones.
        """
        frames, options = self.counts["frames"], self.options
        return {
            "frames_generated": frames,
            **self.reuse.counts,
            "scene_cuts": self.scene_cuts.cuts,
            "failed_frames": self.counts["failed_frames"],
            "out_of_memory_frames": self.counts["out_of_memory_frames"],
            "batch_reductions": self.counts["batch_reductions"],
            **(extra or {}),
            "model_evaluations": calls,
            "model_evaluations_per_frame": {name: round(n / frames, 3) for name, n in calls.items()} if frames else {},
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "settings": {
                "steps": options.steps, "scheduler": options.scheduler,
                "reuse_strength": options.temporal.reuse_strength, "keyframe_every": options.temporal.keyframe_every,
                "resolution": options.resolution, **settings,
                "device": str(self.pipeline.device), "dtype": str(self.pipeline.dtype).removeprefix("torch."),
                "batch_size_auto": options.batch_size == AUTO, **self._runtime_settings(),
            },
            # CUDA: the allocator's high-water mark; CPU: the process's peak resident memory.
            "memory_peak_mib": round(max(self.peak_memory, self.memory.peak()) / 2**20, 1),
            "memory_measure": "cuda max_memory_allocated" if self.memory.is_gpu else "process peak RSS",
        }

    def _runtime_settings(self) -> dict:
        """How the networks actually run: the VAE's dtype, the attention processor, the switches turned on."""
        sd = getattr(self.pipeline, "sd", None)
        if sd is None:
            return {}
        return {"vae_dtype": str(sd.vae.dtype).removeprefix("torch."), "attention": attention_processor(sd.unet),
                "acceleration": self.options.acceleration.enabled()}
