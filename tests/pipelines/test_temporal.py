"""Temporal machinery: scene cuts, keyframe plans, fixed noise and flow warping of latents."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from camouflage_video.annotators.scene_cuts import SCENE_CUT_KEY, SceneCutDetector
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Frame, FrameContext
from camouflage_video.pipelines.temporal import (
    LatentReuse,
    TemporalOptions,
    estimate_flow,
)


def video_ctx(image: np.ndarray, index: int, cut: bool = False) -> FrameContext:
    ctx = FrameContext(Frame(image, index, pts=index * 100, time_base=Fraction(1, 2500)))
    ctx.extras[SCENE_CUT_KEY] = cut
    return ctx


def test_scene_cut_detector_fires_on_a_cut_and_not_on_motion(astronaut):
    detect = SceneCutDetector(27.0)
    shots = [astronaut[100:300, 100:300], astronaut[102:302, 103:303], astronaut[104:304, 106:306]]
    other = np.ascontiguousarray(255 - astronaut[::-1][100:300, 100:300])
    assert [detect(s) for s in shots] == [False, False, False]
    assert detect(other) is True
    assert detect(other) is False


def test_keyframes_at_start_interval_and_scene_cuts():
    reuse = LatentReuse(TemporalOptions(reuse_strength=0.25, keyframe_every=3))
    image = np.zeros((8, 8, 3), np.uint8)
    shape = (1, 4, 8, 8)
    cuts = [False, False, False, False, True, False, False]
    plans = [reuse.plan(video_ctx(image, i, cut), shape) for i, cut in enumerate(cuts)]
    assert [p.reason for p in plans] == ["start", "reuse", "reuse", "interval", "scene-cut", "reuse", "reuse"]
    assert [p.strength for p in plans][:2] == [1.0, 0.25]
    assert reuse.counts == {"keyframes": 3, "reused_frames": 4, "scene_cut_keyframes": 1}
    reuse.invalidate()  # a failed frame: the next one starts afresh
    assert reuse.plan(video_ctx(image, 7), shape).reason == "start"
    assert reuse.plan(video_ctx(image, 8), (1, 4, 16, 8)).reason == "start"  # new frame size


def test_stills_and_disabled_reuse_are_always_keyframes():
    image = np.zeros((8, 8, 3), np.uint8)
    stills = LatentReuse(TemporalOptions())
    assert {stills.plan(FrameContext(Frame(image, i)), (1, 4, 1, 1)).reason for i in range(3)} == {"still"}
    off = LatentReuse(TemporalOptions(reuse_strength=1.0))
    assert {off.plan(video_ctx(image, i), (1, 4, 1, 1)).keyframe for i in range(3)} == {True}


@pytest.mark.parametrize(
    "options",
    [{"reuse_strength": 0.0}, {"reuse_strength": 1.5}, {"keyframe_every": 0}, {"scene_cut_threshold": -1.0}],
)
def test_invalid_temporal_options_are_rejected(options):
    with pytest.raises(ConfigError):
        TemporalOptions(**options)


def test_fixed_noise_is_one_tensor_per_video_and_generators_resume_after_it():
    torch = pytest.importorskip("torch")
    from camouflage_video.pipelines.temporal import FixedNoise

    noise = FixedNoise(7)
    a = noise.draw((1, 4, 8, 8), "cpu", torch.float32)
    assert noise.draw((1, 4, 8, 8), "cpu", torch.float32) is a
    reference = torch.Generator().manual_seed(7)
    assert torch.equal(a, torch.randn((1, 4, 8, 8), generator=reference))
    next_draws = [torch.randn(3, generator=g) for g in noise.generators(2)]
    expected = torch.randn(3, generator=reference)
    assert all(torch.equal(d, expected) for d in next_draws)
    assert not torch.equal(FixedNoise(8).draw((1, 4, 8, 8), "cpu", torch.float32), a)


def test_flow_warp_moves_the_previous_latent_with_the_scene():
    torch = pytest.importorskip("torch")
    from camouflage_video.pipelines.temporal import warp_latents

    rng = np.random.default_rng(0)
    texture = (rng.random((64, 80)) * 255).astype(np.uint8)
    import cv2

    texture = cv2.GaussianBlur(texture, (0, 0), 2)
    previous, current = texture[:, 4:68], texture[:, 0:64]  # the scene moves 4 px to the right
    flow = estimate_flow(current, previous)  # current[x] = previous[x + flow], on a half-size (latent) grid
    assert abs(float(np.median(flow[8:-8, 8:-8, 0])) + 2.0) < 0.25
    assert abs(float(np.median(flow[8:-8, 8:-8, 1]))) < 0.25
    latent = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    shift = np.zeros((32, 32, 2), np.float32)
    shift[..., 0] = -2.0
    warped = warp_latents(latent, shift)
    assert torch.equal(warped[0, 0, :, 2:], latent[0, 0, :, :-2])  # content moved 2 latent pixels right
    assert torch.equal(warp_latents(latent, np.zeros_like(shift)), latent)
