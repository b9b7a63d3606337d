"""CAMOUFLaGE-Base over video frames: fixed noise, latent reuse, keyframes, batching, fail-closed generation.

The diffusion components are tiny and real (built in code); the control-map annotators here are weightless
stand-ins (tests.tiny_models.stand_in_builder), since these tests are about the generation, not the maps.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from camouflage_video.errors import ConfigError  # noqa: E402
from camouflage_video.frame import FrameContext  # noqa: E402
from camouflage_video.pipelines.camouflage_base import BaseOptions  # noqa: E402
from camouflage_video.pipelines.classic import fallback_image  # noqa: E402
from camouflage_video.pipelines.generative import generation_size, resolve_device  # noqa: E402
from camouflage_video.samples import sample_frames  # noqa: E402
from tests.fakes import MemorySink, MemorySource, contexts  # noqa: E402
from tests.tiny_models import annotate, tiny_base_anonymizer, tiny_components  # noqa: E402

STEPS = 4


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return tiny_components(tmp_path_factory.mktemp("tiny"))


def one_by_one(anonymizer, ctxs: list[FrameContext]) -> tuple[list[np.ndarray], list[int]]:
    """Outputs, and UNet evaluations spent on each frame (counted by forward hooks)."""
    outputs, unet = [], []
    for ctx in annotate(anonymizer, ctxs):
        before = anonymizer.pipeline.calls.counts["unet"]
        outputs.append(anonymizer(ctx))
        unet.append(anonymizer.pipeline.calls.counts["unet"] - before)
    return outputs, unet


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """A slow pan over the astronaut photo: consecutive frames differ by a pixel or two."""
    return list(sample_frames(40, (96, 64)))[:6]


def test_identical_frames_with_fixed_noise_give_identical_outputs(components, clip):
    anonymizer = tiny_base_anonymizer(components, reuse_strength=1.0)
    outputs, _ = one_by_one(anonymizer, contexts([clip[0], clip[0]]))
    assert outputs[0].shape == clip[0].shape and outputs[0].dtype == np.uint8
    assert np.array_equal(outputs[0], outputs[1])
    other_seed, _ = one_by_one(tiny_base_anonymizer(components, reuse_strength=1.0, seed=1), contexts([clip[0]]))
    assert not np.array_equal(other_seed[0], outputs[0])


def test_latent_reuse_cuts_unet_evaluations_per_frame_to_the_configured_share(components, clip):
    anonymizer = tiny_base_anonymizer(components, reuse_strength=0.5, keyframe_every=100)
    outputs, unet = one_by_one(anonymizer, contexts(clip))
    keyframe = 3 * STEPS  # uncond, cond and identity rows per step
    assert unet == [keyframe] + [keyframe // 2] * (len(clip) - 1)
    stats = anonymizer.stats()
    assert stats["keyframes"] == 1 and stats["reused_frames"] == len(clip) - 1
    assert stats["model_evaluations"]["unet"] == sum(unet)
    assert stats["model_evaluations_per_frame"]["vae_decode"] == 1.0
    assert all(o.shape == c.shape for o, c in zip(outputs, clip, strict=True))


def test_a_scene_cut_gets_a_keyframe(components, clip):
    anonymizer = tiny_base_anonymizer(components, reuse_strength=0.5, keyframe_every=100, scene_cut_threshold=27.0)
    cut = np.ascontiguousarray(255 - clip[3][::-1])
    _, unet = one_by_one(anonymizer, contexts([clip[0], clip[1], clip[2], cut, cut]))
    assert unet == [12, 6, 6, 12, 6]
    stats = anonymizer.stats()
    assert stats["scene_cuts"] == 1 and stats["scene_cut_keyframes"] == 1


def test_batching_never_changes_the_result(components, clip):
    options = {"reuse_strength": 0.5, "keyframe_every": 2}
    alone, _ = one_by_one(tiny_base_anonymizer(components, **options), contexts(clip[:5]))
    batched = tiny_base_anonymizer(components, batch_size=4, **options)
    together = batched.process_batch(annotate(batched, contexts(clip[:4]))) + batched.process_batch(
        annotate(batched, contexts(clip[4:5], start=4))
    )
    assert len(together) == 5
    for a, b in zip(alone, together, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float round-off of batched kernels at most
    stills_alone, _ = one_by_one(tiny_base_anonymizer(components), contexts(clip[:3], video=False))
    stills = tiny_base_anonymizer(components, batch_size=3)
    before = stills.pipeline.calls.snapshot()
    stills_together = stills.process_batch(annotate(stills, contexts(clip[:3], video=False)))
    assert stills.pipeline.calls.counts["vae_decode"] - before.get("vae_decode", 0) == 3
    for a, b in zip(stills_alone, stills_together, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("error", [RuntimeError("boom"), torch.cuda.OutOfMemoryError("CUDA out of memory")])
def test_an_error_inside_generation_gives_that_frame_the_fallback(components, clip, error):
    from camouflage_video.runner import Runner

    anonymizer = tiny_base_anonymizer(components, reuse_strength=0.5, keyframe_every=100)
    calls = {"n": 0}

    def explode_on_third_frame(_module, _args):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == STEPS + STEPS // 2 + 1:  # first UNet step of the third frame
            raise error

    handle = anonymizer.pipeline.sd.unet.register_forward_pre_hook(explode_on_third_frame)
    sink = MemorySink()
    try:
        stats = Runner(MemorySource(clip[:5]), [sink], anonymizer.annotators(), anonymizer, progress=False).run()
    finally:
        handle.remove()
    assert stats.frames_out == 5 and stats.fallback_frames == 1
    index, image = sink.frames[2]
    assert index == 2 and np.array_equal(image, fallback_image(clip[2]))
    base = anonymizer.stats()
    assert base["failed_frames"] == 1
    assert base["out_of_memory_frames"] == int(isinstance(error, torch.cuda.OutOfMemoryError))
    assert base["keyframes"] == 2  # the frame after the failure starts afresh


@pytest.mark.parametrize(
    "options",
    [
        {"resolution": 770},
        {"steps": 0},
        {"scheduler": "euler"},
        {"anonymization_scale": -1},
        {"control_scales": {"canny": 1.0}},
        {"control_scales": dict.fromkeys(("depth", "normalbae", "seg", "openpose", "lineart"), 0.0)},
        {"guidance_end": {"lineart": 0.0}},
        {"annotate_every": 0},
        {"batch_size": 0},
        {"reuse_strength": 0},
        {"no_such_option": 1},
    ],
)
def test_invalid_options_are_rejected_with_a_config_error(options):
    with pytest.raises(ConfigError):
        BaseOptions.from_mapping(options)


def test_cuda_requested_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda", "auto")
    assert resolve_device("auto", "auto") == (torch.device("cpu"), torch.float32)


@pytest.mark.parametrize(("size", "short", "expected"), [((640, 360), 768, (1368, 768)), ((480, 640), 64, (64, 88))])
def test_generation_size_keeps_the_aspect_on_multiples_of_eight(size, short, expected):
    assert generation_size(*size, short) == expected
