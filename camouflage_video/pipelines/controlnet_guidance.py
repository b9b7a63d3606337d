"""Stable Diffusion 1.5 + a ControlNet ensemble + CAMOUFLaGE's anonymization guidance.

The pipeline wraps diffusers components passed to its constructor and writes its denoising loop over the
stock ``StableDiffusionControlNetPipeline``'s own helpers (``encode_prompt``, ``prepare_image``,
``prepare_latents``, ``prepare_extra_step_kwargs``, ``image_processor``). It adds what the stock pipeline
cannot take through a callback, because it acts inside a step before ``scheduler.step``:

* the anonymization guidance: an identity ControlNet conditioned on the original frame gives ``eps_id``,
  and the noise prediction becomes ``eps_u + w (eps_c - eps_u) - a_s (eps_id - eps_c)``. ``eps_id`` is the
  conditional prediction with the identity ControlNet's residuals added to the ensemble's, so
  ``eps_id - eps_c`` is the pull towards the original appearance, and ``a_s`` pushes away from it;
* a start from a given latent re-noised to a fraction of the schedule (latent reuse across video frames);
* ControlNets skipped, not multiplied by zero, outside their guidance window (lineart stops at 50%).

With ``anonymization_scale == 0`` and full denoising the result equals the stock pipeline's bit for bit
(tests/pipelines/test_controlnet_guidance.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError
from camouflage_video.pipelines.model_calls import CallCounter, StageClock
from camouflage_video.pipelines.sd15 import Denoise, StableDiffusionBase
from camouflage_video.pipelines.temporal import (
    GenerationOutput,
    guidance_embeds,
    sampling,
)


class AnonymizationGuidancePipeline(StableDiffusionBase):
    """SD 1.5 guided by named ControlNets, pushed away from the original by an identity ControlNet.

    Args:
        vae, text_encoder, tokenizer, unet, scheduler: Stable Diffusion 1.5 components.
        controlnets: ControlNets by name, in the order their residuals are summed.
        identity_controlnet: The identity ControlNet, fed the original frame; ``None`` disables the guidance.

    Examples:
        >>> pipe = AnonymizationGuidancePipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
        ...     scheduler=scheduler, controlnets={"depth": depth_net},
        ...     identity_controlnet=identity_net)  # doctest: +SKIP
        >>> embeds = pipe.encode_prompt("a person", "blurry")  # doctest: +SKIP
        >>> out = pipe({"depth": [depth_map]}, Denoise(embeds, 512, 512, noise, [g]), identity_images=[frame],
        ...     anonymization_scale=1.0)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        vae: Any,
        text_encoder: Any,
        tokenizer: Any,
        unet: Any,
        scheduler: Any,
        controlnets: Mapping[str, Any],
        identity_controlnet: Any = None,
    ) -> None:
        diffusers = require("diffusers", "diffusion")
        if not controlnets:
            raise ConfigError("at least one ControlNet is needed")
        self.names = tuple(controlnets)
        self.controlnets = dict(controlnets)
        self.identity = identity_controlnet
        # The stock pipeline holds the components and lends us its helpers; its __call__ is never used.
        self.sd = diffusers.StableDiffusionControlNetPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            controlnet=diffusers.MultiControlNetModel(list(self.controlnets.values())),
            scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        self.sd.set_progress_bar_config(disable=True)
        nets = {f"controlnet.{name}": net for name, net in self.controlnets.items()}
        self.calls = CallCounter.for_stock_pipeline(self.sd, {**nets, "controlnet.identity": identity_controlnet})

    def __call__(
        self,
        control_images: Mapping[str, Sequence[Any]],
        denoise: Denoise,
        *,
        identity_images: Sequence[Any] | None = None,
        anonymization_scale: float = 0.0,
        conditioning_scales: Mapping[str, float] | None = None,
        guidance_end: Mapping[str, float] | None = None,
        identity_scale: float = 1.0,
    ) -> GenerationOutput:
        """Generate a batch of frames that share one plan (all full denoising, or all reuse at ``strength``).

        Args:
            control_images: Per ControlNet name, one control map per frame (PIL images or float arrays).
            denoise: The batch's noise, prompt and schedule.
            identity_images: The original frames, for the identity ControlNet.
            anonymization_scale: ``a_s``; 0 skips the identity branch entirely.
            conditioning_scales: Per ControlNet strength (default 1.0).
            guidance_end: Per ControlNet, the fraction of steps after which it stops guiding (default 1.0).
            identity_scale: Conditioning strength of the identity ControlNet.
        """
        prompt_embeds, height, width, noise, generators = (
            denoise.prompt_embeds, denoise.height, denoise.width, denoise.noise, denoise.generators)
        num_inference_steps, guidance_scale, init_latents = (
            denoise.num_inference_steps, denoise.guidance_scale, denoise.init_latents)
        strength, noise_seed, output_type = denoise.strength, denoise.noise_seed, denoise.output_type
        torch = require("torch", "diffusion")
        sd = self.sd
        batch = noise.shape[0]
        scales = {name: 1.0 for name in self.names} | dict(conditioning_scales or {})
        ends = {name: 1.0 for name in self.names} | dict(guidance_end or {})

        # 1. Check inputs
        if set(control_images) != set(self.names):
            raise ConfigError(f"control images for {sorted(control_images)}, ControlNets are {sorted(self.names)}")
        if any(len(images) != batch for images in control_images.values()) or len(generators) != batch:
            raise ConfigError("one control map per ControlNet and one generator per frame are needed")
        use_identity = anonymization_scale != 0.0
        if use_identity and (self.identity is None or identity_images is None or len(identity_images) != batch):
            raise ConfigError("anonymization guidance needs the identity ControlNet and one original frame per frame")
        self.check_reuse(init_latents, strength)
        do_cfg = guidance_scale > 1.0
        device = self.device
        clock = StageClock(device)
        with sampling(torch):
            # 2. Prompt embeddings: [uncond, cond] for classifier-free guidance, one row per frame
            cond, embeds = guidance_embeds(torch, prompt_embeds, batch, do_cfg)

            # 3. Control maps, resized and batched the stock way ([uncond, cond] halves share them)
            controls = {
                name: sd.prepare_image(
                    image=list(control_images[name]), width=width, height=height, batch_size=batch,
                    num_images_per_prompt=1, device=device, dtype=sd.controlnet.dtype,
                    do_classifier_free_guidance=do_cfg, guess_mode=False,
                )
                for name in self.names
            }
            identity_cond = None
            if use_identity:
                identity_cond = sd.prepare_image(
                    image=list(identity_images), width=width, height=height, batch_size=batch,
                    num_images_per_prompt=1, device=device, dtype=self.identity.dtype,
                    do_classifier_free_guidance=False, guess_mode=False,
                )

            # 4. Timesteps, initial latents and scheduler step arguments (latent reuse: the last `strength`)
            timesteps, latents, extra_step_kwargs = self.start(
                noise, init_latents, generators, num_inference_steps, strength, noise_seed, (height, width),
                self.latent_dtype,
            )
            timestep_cond = None
            if sd.unet.config.time_cond_proj_dim is not None:
                w = torch.tensor(guidance_scale - 1).repeat(batch)
                timestep_cond = sd.get_guidance_scale_embedding(
                    w, embedding_dim=sd.unet.config.time_cond_proj_dim
                ).to(device=device, dtype=sd.unet.dtype)

            # 5. Which ControlNets guide at each step (window over the whole schedule, as the stock pipeline)
            total = len(sd.scheduler.timesteps)
            offset = total - len(timesteps)
            active = [
                [name for name in self.names if (offset + i + 1) / total <= ends[name] and scales[name] != 0.0]
                for i in range(len(timesteps))
            ]

            clock.lap("prepare")
            # 6. Denoising loop: one UNet batch of [uncond, cond] rows (+ identity rows when a_s != 0). The
            # networks run in the model dtype; latents, guidance arithmetic and scheduler steps stay in float32.
            n_guided = batch * (2 if do_cfg else 1)
            copies = (2 if do_cfg else 1) + (1 if use_identity else 0)
            for i, t in enumerate(timesteps):
                latent_model_input = sd.scheduler.scale_model_input(torch.cat([latents] * copies), t)
                latent_model_input = latent_model_input.to(sd.unet.dtype)
                guided_input = latent_model_input[:n_guided]
                down, mid = self._ensemble_residuals(guided_input, t, embeds, controls, active[i], scales)
                unet_embeds = embeds
                if use_identity:
                    id_down, id_mid = self.identity(
                        guided_input[-batch:], t, encoder_hidden_states=cond, controlnet_cond=identity_cond,
                        conditioning_scale=identity_scale, guess_mode=False, return_dict=False,
                    )
                    ensemble = down or [None] * len(id_down)
                    down = [self._with_identity(r, r_id, n_guided) for r, r_id in zip(ensemble, id_down, strict=True)]
                    mid = self._with_identity(mid, id_mid, n_guided)
                    unet_embeds = torch.cat([embeds, cond])
                noise_pred = sd.unet(
                    latent_model_input, t, encoder_hidden_states=unet_embeds, timestep_cond=timestep_cond,
                    cross_attention_kwargs=None, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid, added_cond_kwargs=None, return_dict=False,
                )[0].to(latents.dtype)
                if use_identity:
                    noise_pred, noise_pred_identity = noise_pred[:n_guided], noise_pred[n_guided:]
                if do_cfg:
                    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
                else:
                    noise_pred_text = noise_pred
                if use_identity:
                    noise_pred = noise_pred - anonymization_scale * (noise_pred_identity - noise_pred_text)
                latents = sd.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]

            # 7. Decode
            return self.finish(latents, timesteps, clock, output_type)

    def _ensemble_residuals(self, sample: Any, t: Any, embeds: Any, controls: dict, active: list[str], scales: dict):
        """Sum the active ControlNets' residuals in a fixed order, as MultiControlNetModel does."""
        down, mid = None, None
        for name in active:
            d, m = self.controlnets[name](
                sample, t, encoder_hidden_states=embeds, controlnet_cond=controls[name],
                conditioning_scale=scales[name], guess_mode=False, return_dict=False,
            )
            if down is None:
                down, mid = d, m
            else:
                down = [prev + cur for prev, cur in zip(down, d, strict=True)]
                mid = mid + m
        return down, mid

    @staticmethod
    def _with_identity(residual: Any, identity_residual: Any, n_guided: int) -> Any:
        """Append the identity rows: the conditional rows' ensemble residuals plus the identity ControlNet's."""
        torch = require("torch", "diffusion")
        if residual is None:  # no ensemble ControlNet guides at this step
            zeros = identity_residual.new_zeros((n_guided, *identity_residual.shape[1:]))
            return torch.cat([zeros, identity_residual])
        batch = identity_residual.shape[0]
        return torch.cat([residual, residual[-batch:] + identity_residual])
