"""The guided ControlNet pipeline against diffusers' stock StableDiffusionControlNetPipeline (tiny models, CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from camouflage_video.pipelines.controlnet_guidance import AnonymizationGuidancePipeline  # noqa: E402
from camouflage_video.pipelines.sd15 import Denoise  # noqa: E402
from camouflage_video.pipelines.temporal import FixedNoise  # noqa: E402
from tests.tiny_models import CONTROL_KINDS, tiny_components  # noqa: E402

SIZE, STEPS, SEED = 64, 4, 7
SCALES = {"depth": 1.0, "normalbae": 0.8, "seg": 0.6, "openpose": 1.0, "lineart": 0.5}
ENDS = {"lineart": 0.5}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return tiny_components(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def maps():
    from PIL import Image

    rng = np.random.default_rng(0)
    return {k: [Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))] for k in CONTROL_KINDS}


def scheduler(name: str):
    if name == "dpmpp-sde-karras":  # DPM++ SDE Karras: Brownian-tree noise seeded by noise_sampler_seed
        return diffusers.DPMSolverSDEScheduler(use_karras_sigmas=True, noise_sampler_seed=SEED)
    return diffusers.DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", use_karras_sigmas=True)


def guided(components, name: str) -> AnonymizationGuidancePipeline:
    return AnonymizationGuidancePipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"],
        unet=components["unet"], scheduler=scheduler(name),
        controlnets={k: components["controlnets"][k] for k in CONTROL_KINDS},
        identity_controlnet=components["controlnets"]["identity"],
    )


def run(pipe, maps, batch=1, **kwargs):
    noise = FixedNoise(SEED)
    latents = noise.draw(pipe.latent_shape(1, SIZE, SIZE), "cpu", torch.float32)
    denoise = dict(prompt_embeds=pipe.encode_prompt("a person", "blurry"), height=SIZE, width=SIZE,
                   noise=latents.repeat(batch, 1, 1, 1), generators=noise.generators(batch),
                   num_inference_steps=STEPS, guidance_scale=7.0, noise_seed=SEED)
    options = dict(conditioning_scales=SCALES, guidance_end=ENDS, identity_images=[maps["depth"][0]] * batch)
    shared = {f.name for f in dataclasses.fields(Denoise)}
    for key, value in kwargs.items():
        (denoise if key in shared else options)[key] = value
    batched = {k: v * batch for k, v in maps.items()}
    return pipe(batched, Denoise(**denoise), **options)


@pytest.mark.parametrize("name", ["dpmpp-sde-karras", "dpmpp-2m-sde-karras"])
def test_zero_anonymization_scale_equals_the_stock_pipeline_bit_for_bit(components, maps, name):
    stock = diffusers.StableDiffusionControlNetPipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"],
        unet=components["unet"], controlnet=[components["controlnets"][k] for k in CONTROL_KINDS],
        scheduler=scheduler(name), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    stock.set_progress_bar_config(disable=True)
    expected = stock(
        prompt="a person", negative_prompt="blurry", image=[maps[k][0] for k in CONTROL_KINDS], height=SIZE,
        width=SIZE, num_inference_steps=STEPS, guidance_scale=7.0, generator=torch.Generator().manual_seed(SEED),
        controlnet_conditioning_scale=[SCALES[k] for k in CONTROL_KINDS],
        control_guidance_end=[ENDS.get(k, 1.0) for k in CONTROL_KINDS], output_type="np",
    ).images
    ours = run(guided(components, name), maps, anonymization_scale=0.0).images
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    assert np.array_equal(ours, expected)


def test_anonymization_guidance_changes_the_output_deterministically(components, maps):
    pipe = guided(components, "dpmpp-2m-sde-karras")
    plain = run(pipe, maps, anonymization_scale=0.0).images
    pushed = run(pipe, maps, anonymization_scale=1.25).images
    again = run(pipe, maps, anonymization_scale=1.25).images
    assert np.array_equal(pushed, again)
    assert np.abs(pushed - plain).mean() > 0.01
    # The identity ControlNet runs only on the conditional rows, and only when a_s != 0.
    before = pipe.calls.counts["controlnet.identity"]
    run(pipe, maps, anonymization_scale=0.0)
    assert pipe.calls.counts["controlnet.identity"] == before


def test_lineart_stops_guiding_after_half_of_the_steps(components, maps):
    pipe = guided(components, "dpmpp-2m-sde-karras")
    run(pipe, maps, anonymization_scale=1.0)
    calls = pipe.calls.counts
    # 4 steps with classifier-free guidance: 8 evaluations per ControlNet, lineart only in steps 1-2.
    assert calls["controlnet.depth"] == 2 * STEPS
    assert calls["controlnet.lineart"] == STEPS
    assert calls["controlnet.identity"] == STEPS  # conditional branch only
    assert calls["unet"] == 3 * STEPS  # uncond, cond and identity rows in one call per step


def test_reusing_a_latent_runs_only_the_configured_share_of_the_steps(components, maps):
    pipe = guided(components, "dpmpp-2m-sde-karras")
    first = run(pipe, maps)
    before = pipe.calls.counts["unet"]
    second = run(pipe, maps, init_latents=first.latents, strength=0.5)
    assert second.steps_run == STEPS // 2
    assert pipe.calls.counts["unet"] - before == 2 * (STEPS // 2)  # [uncond, cond] per step


def test_frames_batched_together_match_frames_run_alone(components, maps):
    pipe = guided(components, "dpmpp-sde-karras")
    alone = run(pipe, maps, anonymization_scale=1.0).images
    together = run(pipe, maps, batch=3, anonymization_scale=1.0).images
    # Same noise, seeds and inputs per frame; only batched float kernels may differ in the last bits.
    for image in together:
        np.testing.assert_allclose(image, alone[0], atol=1e-5)
