"""Stable Diffusion 1.5 + an IP-Adapter (image prompt) + a T2I-Adapter (CAMOUFLaGE-Light's attribute map).

diffusers' ``StableDiffusionAdapterPipeline`` takes a T2I-Adapter but no IP-Adapter, and has no step callback
to reuse a latent, so the loop is written here over the stock ``StableDiffusionPipeline``'s own helpers
(``encode_prompt``, ``encode_image``, ``prepare_latents``, ``prepare_extra_step_kwargs``, ``image_processor``)
and the temporal helpers Base uses (``reuse_timesteps``, ``start_latents``). The T2I-Adapter runs once per
call, not once per step: its features are added inside the UNet's down blocks at every step, as
``StableDiffusionAdapterPipeline`` does. The IP-Adapter's layers are attached from a state dict in the
published layout (``image_proj.*`` / ``ip_adapter.*``), so nothing is fetched at load time.
"""

from __future__ import annotations

import warnings
from itertools import pairwise
from typing import Any

import numpy as np

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError
from camouflage_video.pipelines.model_calls import CallCounter, StageClock
from camouflage_video.pipelines.sd15 import Denoise, StableDiffusionBase
from camouflage_video.pipelines.temporal import (
    GenerationOutput,
    guidance_embeds,
    sampling,
)


def adapter_config_for(unet: Any, in_channels: int) -> dict[str, Any]:
    """The ``T2IAdapter`` config whose features fit ``unet``'s down blocks (SD 1.5: 320/640/1280/1280, x8).

    A full adapter emits features at its input scale halved at each level; the UNet adds them inside
    cross-attention down blocks before their downsampler and after plain ones. The longest run of blocks
    whose residual scales halve one after the other gets a feature.
    """
    config = unet.config
    scales, scale = [], 1
    for block_type, channels in zip(config.down_block_types, config.block_out_channels, strict=True):
        plain = "CrossAttn" not in block_type
        is_last = len(scales) == len(config.block_out_channels) - 1
        after = scale * (2 if plain and not is_last else 1)
        scales.append((after if plain else scale, channels))
        scale *= 1 if is_last else 2
    channels = [scales[0][1]]
    for (previous, _), (current, width) in pairwise(scales):
        if current != previous * 2:
            break
        channels.append(width)
    return {"in_channels": in_channels, "channels": channels, "num_res_blocks": 2,
            "downscale_factor": 8 * scales[0][0], "adapter_type": "full_adapter"}


class AdapterPipeline(StableDiffusionBase):
    """SD 1.5 conditioned by an IP-Adapter on an image and a T2I-Adapter on a condition map.

    Args:
        vae, text_encoder, tokenizer, unet, scheduler: Stable Diffusion 1.5 components.
        adapter: A ``T2IAdapter`` (41 input channels for CAMOUFLaGE-Light).
        image_encoder: CLIP vision model with projection (the IP-Adapter's image encoder); ``None`` without one.
        feature_extractor: Its ``CLIPImageProcessor`` (default: 224 px CLIP preprocessing).
        ip_adapter_state: IP-Adapter weights, ``{"image_proj": ..., "ip_adapter": ...}``; ``None`` without one.

    Examples:
        >>> pipe = AdapterPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler,
        ...     adapter=adapter, image_encoder=encoder, ip_adapter_state=state)  # doctest: +SKIP
        >>> denoise = Denoise(pipe.encode_prompt("a photo", "blurry"), 512, 512, noise, [g])  # doctest: +SKIP
        >>> out = pipe(maps, denoise, ip_images=[frame])  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        vae: Any,
        text_encoder: Any,
        tokenizer: Any,
        unet: Any,
        scheduler: Any,
        adapter: Any,
        image_encoder: Any = None,
        feature_extractor: Any = None,
        ip_adapter_state: dict[str, Any] | None = None,
    ) -> None:
        diffusers = require("diffusers", "light")
        transformers = require("transformers", "light")
        if (image_encoder is None) != (ip_adapter_state is None):
            raise ConfigError("the IP-Adapter needs both its weights and its image encoder")
        if feature_extractor is None and image_encoder is not None:
            size = image_encoder.config.image_size
            feature_extractor = transformers.CLIPImageProcessor(size=size, crop_size=size)
        # The stock pipeline holds the components and lends us its helpers; its __call__ is never used.
        self.sd = diffusers.StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            safety_checker=None, feature_extractor=feature_extractor, image_encoder=image_encoder,
            requires_safety_checker=False,
        )
        self.sd.set_progress_bar_config(disable=True)
        self.adapter = adapter
        self.has_ip_adapter = ip_adapter_state is not None
        if ip_adapter_state is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # diffusers warns about low_cpu_mem_usage paths
                self.sd.load_ip_adapter(ip_adapter_state, subfolder=None, weight_name=None, image_encoder_folder=None)
        self.calls = CallCounter.for_stock_pipeline(self.sd, {"t2i_adapter": adapter, "image_encoder": image_encoder})

    def encode_images(self, images: list[Any]) -> Any:
        """IP-Adapter image embeddings ``(B, 1, D)``, one per image (PIL images or uint8 arrays)."""
        torch = require("torch", "light")
        if not self.has_ip_adapter:
            raise ConfigError("this pipeline has no IP-Adapter")
        with torch.no_grad():
            embeds, _ = self.sd.encode_image(list(images), self.device, 1)
        return embeds[:, None]

    def set_ip_adapter_scale(self, scale: float) -> None:
        if self.has_ip_adapter:
            self.sd.set_ip_adapter_scale(scale)

    def __call__(
        self,
        condition_maps: Any,
        denoise: Denoise,
        *,
        ip_images: list[Any] | None = None,
        ip_embeds: Any = None,
        adapter_scale: float = 1.0,
    ) -> GenerationOutput:
        """Generate a batch of frames that share one plan (all full denoising, or all reuse at ``strength``).

        Args:
            condition_maps: ``(B, C, height, width)`` T2I-Adapter input (array or tensor), already at the
                generation size.
            denoise: The batch's noise, prompt and schedule.
            ip_images: Images for the IP-Adapter (one per frame), or precomputed ``ip_embeds`` ``(B, 1, D)``.
            adapter_scale: Weight of the T2I-Adapter's features; 0 skips the adapter.
        """
        prompt_embeds, height, width, noise, generators = (
            denoise.prompt_embeds, denoise.height, denoise.width, denoise.noise, denoise.generators)
        num_inference_steps, guidance_scale, init_latents = (
            denoise.num_inference_steps, denoise.guidance_scale, denoise.init_latents)
        strength, noise_seed, output_type = denoise.strength, denoise.noise_seed, denoise.output_type
        torch = require("torch", "light")
        sd = self.sd
        batch = noise.shape[0]

        # 1. Check inputs
        if tuple(condition_maps.shape) != (batch, self.adapter.config.in_channels, height, width):
            raise ConfigError(
                f"condition maps must be {(batch, self.adapter.config.in_channels, height, width)}, "
                f"got {tuple(condition_maps.shape)}"
            )
        if len(generators) != batch:
            raise ConfigError("one generator per frame is needed")
        if self.has_ip_adapter and ip_embeds is None and (ip_images is None or len(ip_images) != batch):
            raise ConfigError("the IP-Adapter needs one image (or embedding) per frame")
        self.check_reuse(init_latents, strength)
        do_cfg = guidance_scale > 1.0
        device = self.device
        clock = StageClock(device)
        with sampling(torch):
            # 2. Prompt embeddings: [uncond, cond] for classifier-free guidance, one row per frame
            cond, embeds = guidance_embeds(torch, prompt_embeds, batch, do_cfg)

            # 3. IP-Adapter image embeddings; the unconditional half sees a zero embedding, as diffusers does
            added_cond_kwargs = None
            if self.has_ip_adapter:
                image_embeds = self.encode_images(ip_images) if ip_embeds is None else ip_embeds.to(device)
                image_embeds = image_embeds.to(dtype=embeds.dtype)
                if do_cfg:
                    image_embeds = torch.cat([torch.zeros_like(image_embeds), image_embeds])
                added_cond_kwargs = {"image_embeds": [image_embeds]}

            # 4. T2I-Adapter features, once for all steps (both CFG halves share them)
            adapter_state = None
            if adapter_scale != 0.0:
                maps = condition_maps
                if not torch.is_tensor(maps):
                    maps = torch.from_numpy(np.asarray(maps))
                features = self.adapter(maps.to(device=device, dtype=self.adapter.dtype))
                adapter_state = [s * adapter_scale for s in features]
                if do_cfg:
                    adapter_state = [s.repeat(2, 1, 1, 1) for s in adapter_state]

            # 5. Timesteps, initial latents and scheduler step arguments (latent reuse: the last `strength`)
            timesteps, latents, extra_step_kwargs = self.start(
                noise, init_latents, generators, num_inference_steps, strength, noise_seed, (height, width),
                self.latent_dtype,
            )
            clock.lap("prepare")
            # 6. Denoising loop: the UNet runs in the model dtype; latents, guidance and steps in float32
            for t in timesteps:
                latent_model_input = torch.cat([latents] * 2) if do_cfg else latents
                latent_model_input = sd.scheduler.scale_model_input(latent_model_input, t).to(sd.unet.dtype)
                noise_pred = sd.unet(
                    latent_model_input, t, encoder_hidden_states=embeds, added_cond_kwargs=added_cond_kwargs,
                    # The UNet pops these as it goes: every step gets its own list.
                    down_intrablock_additional_residuals=(
                        None if adapter_state is None else [s.clone() for s in adapter_state]
                    ),
                    return_dict=False,
                )[0].to(latents.dtype)
                if do_cfg:
                    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
                latents = sd.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]

            # 7. Decode
            return self.finish(latents, timesteps, clock, output_type)
