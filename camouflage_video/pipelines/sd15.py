"""The base of Base's and Light's diffusion pipelines: a stock diffusers SD 1.5 pipeline (``self.sd``) that
holds the components and lends its helpers, and the steps every call shares (timesteps, first latents,
scheduler arguments, decoding)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError
from camouflage_video.pipelines.temporal import GenerationOutput, decode_images, reuse_timesteps, start_latents


@dataclass(frozen=True)
class Denoise:
    """What every generation call of Base and Light takes: the batch's noise, prompt and schedule.

    Attributes:
        prompt_embeds: ``(cond, uncond)`` embeddings, batch 1 or one row per frame.
        height, width: Generation size, multiples of the VAE factor.
        noise: The fixed initial noise, ``(B, 4, height/8, width/8)``.
        generators: One generator per frame, in the state right after drawing ``noise`` (stochastic
            schedulers draw their step noise from them).
        num_inference_steps: Steps of the full schedule.
        guidance_scale: Classifier-free guidance ``w`` (1 or less: no unconditional half).
        init_latents: Latents to start from (latent reuse); ``None`` starts from pure noise.
        strength: Share of the schedule re-run from ``init_latents``.
        noise_seed: Seed of a Brownian-tree scheduler's noise (DPMSolverSDEScheduler), one tree per frame.
        output_type: ``np`` (arrays in 0..1) or ``latent``.
    """

    prompt_embeds: tuple
    height: int
    width: int
    noise: Any
    generators: list[Any]
    num_inference_steps: int = 25
    guidance_scale: float = 7.0
    init_latents: Any = None
    strength: float = 1.0
    noise_seed: int | None = None
    output_type: str = "np"


class StableDiffusionBase:
    """What ``AnonymizationGuidancePipeline`` and ``AdapterPipeline`` share; they set ``self.sd``.

    Examples:
        >>> pipe.latent_shape(1, 512, 768)  # doctest: +SKIP
        (1, 4, 64, 96)
    """

    sd: Any

    @property
    def device(self) -> Any:
        return self.sd.unet.device

    @property
    def dtype(self) -> Any:
        return self.sd.unet.dtype

    @property
    def latent_dtype(self) -> Any:
        """Latents, guidance arithmetic and scheduler steps run in float32 whatever the networks' dtype: fp16
        differences of noise predictions scaled by the guidance weights lose the detail they carry."""
        return require("torch", "diffusion").float32

    @property
    def vae_scale_factor(self) -> int:
        return self.sd.vae_scale_factor

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        f = self.vae_scale_factor
        return (batch, self.sd.unet.config.in_channels, height // f, width // f)

    def encode_prompt(self, prompt: str, negative_prompt: str | None, guidance_scale: float = 7.0) -> tuple:
        """``(prompt_embeds, negative_prompt_embeds)`` for one prompt; the latter is ``None`` without CFG."""
        torch = require("torch", "diffusion")
        with torch.no_grad():
            return self.sd.encode_prompt(prompt, self.device, 1, guidance_scale > 1.0, negative_prompt)

    @staticmethod
    def check_reuse(init_latents: Any, strength: float) -> None:
        """Latent reuse takes a latent and a strength in (0, 1); a full denoising neither."""
        if not 0.0 < strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {strength}")
        if (init_latents is None) != (strength == 1.0):
            raise ConfigError("init_latents and strength < 1 go together")

    def start(self, noise: Any, init_latents: Any, generators: list[Any], steps: int, strength: float,
              noise_seed: int | None, size: tuple[int, int], dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
        """``(timesteps, latents, step_kwargs)``: latent reuse runs only the last ``strength`` of the schedule
        (as img2img does), from the fixed noise or the previous result re-noised to the first timestep; the
        per-frame generators feed the scheduler's SDE noise."""
        sd, batch = self.sd, noise.shape[0]
        height, width = size
        timesteps = reuse_timesteps(sd.scheduler, steps, strength, self.device, noise_seed, batch)
        latents = start_latents(sd, noise, init_latents, timesteps, generators, height, width, dtype)
        return timesteps, latents, sd.prepare_extra_step_kwargs(generators, 0.0)

    def finish(self, latents: Any, timesteps: Any, clock: Any, output_type: str) -> GenerationOutput:
        """Decode through the pipeline's VAE and post-processor, as the stock pipelines end."""
        clock.lap("denoise")
        images = decode_images(self.sd, latents, output_type)
        clock.lap("decode")
        return GenerationOutput(images=images, latents=latents, steps_run=len(timesteps), seconds=clock.seconds)
