"""Temporal consistency for frame-by-frame diffusion: fixed noise, latent reuse, keyframes, scene cuts, flow.

Shared by CAMOUFLaGE-Base and CAMOUFLaGE-Light (both regenerate every frame with Stable Diffusion):

* ``FixedNoise``: one initial noise tensor per video, drawn from the seed, and per-frame generators restored
  to the state right after that draw, so every frame sees the same noise and the same step noise.
* scene cuts (``annotators/scene_cuts.py``) mark ``ctx.extras["scene_cut"]``; a cut forces a keyframe.
* ``LatentReuse``: plans each frame. A keyframe denoises fully from the fixed noise; any other frame starts
  from the previous frame's final latent, optionally warped by the optical flow between the two original
  frames, re-noised to ``reuse_strength`` of the schedule, so it runs only that share of the steps.

The plan of a frame depends only on the frames before it (never on how frames are batched), and the state
is one latent and one thumbnail: memory stays constant over any video length.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.annotators.scene_cuts import SCENE_CUT_KEY
from camouflage_video.errors import ConfigError
from camouflage_video.frame import FrameContext
from camouflage_video.options import GENERATIVE, flag


@dataclass(frozen=True)
class TemporalOptions:
    """How frames of a video reuse each other's work.

    Attributes:
        reuse_strength: Share of the denoising schedule re-run on a non-keyframe, in (0, 1]; 1 disables reuse.
        keyframe_every: A full denoising at least every this many frames (1: every frame is a keyframe).
        scene_cut_threshold: Mean HSV difference (0-255) between consecutive frames that counts as a cut;
            0 disables cut detection.
        flow_warp: Warp the previous latent with the optical flow between the original frames before reuse.

    Examples:
        >>> TemporalOptions(reuse_strength=0.25, keyframe_every=24).reuse_strength
        0.25
    """

    reuse_strength: float = field(default=0.25, metadata=flag(
        "share of the steps re-run from the previous frame's latent, 1 disables reuse", group=GENERATIVE))
    keyframe_every: int = field(default=24, metadata=flag("full denoising every N frames", group=GENERATIVE))
    scene_cut_threshold: float = field(default=27.0, metadata=flag(
        "content change that starts a new scene and a keyframe, 0 disables", group=GENERATIVE))
    flow_warp: bool = field(default=True, metadata=flag(
        "warp the reused latent with the optical flow of the original frames", group=GENERATIVE))

    def __post_init__(self) -> None:
        if not 0.0 < self.reuse_strength <= 1.0:
            raise ConfigError(f"reuse-strength must be in (0, 1], got {self.reuse_strength}")
        if self.keyframe_every < 1:
            raise ConfigError(f"keyframe-every must be >= 1, got {self.keyframe_every}")
        if self.scene_cut_threshold < 0:
            raise ConfigError(f"scene-cut-threshold must be >= 0, got {self.scene_cut_threshold}")


class FixedNoise:
    """One initial noise tensor per video and the generator state that follows its draw.

    The draw is the one ``StableDiffusionControlNetPipeline.prepare_latents`` makes from a generator seeded
    with ``seed``, so a keyframe reproduces the stock pipeline called with that seed. Generators are CPU
    generators: the same seed gives the same noise on any device.

    Examples:
        >>> noise = FixedNoise(7)
        >>> a = noise.draw((1, 4, 8, 8), "cpu", None)  # doctest: +SKIP
        >>> generators = noise.generators(2)  # doctest: +SKIP
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._key: tuple | None = None
        self._noise: Any = None
        self._state: Any = None

    def draw(self, shape: tuple[int, ...], device: Any, dtype: Any) -> Any:
        """The noise for one frame, ``(1, C, h, w)``; the same tensor on every call with the same shape."""
        torch = require("torch", "diffusion")
        randn_tensor = require("diffusers.utils.torch_utils", "diffusion").randn_tensor
        key = (tuple(shape), str(device), dtype)
        if key != self._key:
            generator = torch.Generator().manual_seed(self.seed)
            self._noise = randn_tensor(tuple(shape), generator=generator, device=torch.device(device), dtype=dtype)
            self._state = generator.get_state()
            self._key = key
        return self._noise

    def generators(self, n: int) -> list[Any]:
        """``n`` generators in the state right after the draw (call ``draw`` first)."""
        torch = require("torch", "diffusion")
        if self._state is None:
            raise RuntimeError("FixedNoise.draw must be called before generators")
        out = []
        for _ in range(n):
            generator = torch.Generator()
            generator.set_state(self._state)
            out.append(generator)
        return out

    def reset(self) -> None:
        self._key = self._noise = self._state = None


@dataclass
class GenerationOutput:
    """Images, final latents (the next frame's reuse starts from them) and seconds per stage of one call."""

    images: np.ndarray
    latents: Any
    steps_run: int
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FramePlan:
    """What a frame does: denoise fully (keyframe) or reuse the previous latent at ``strength``."""

    keyframe: bool
    reason: str
    strength: float


class LatentReuse:
    """Plans keyframes and hands out the previous frame's final latent (warped, if asked) for reuse.

    Call ``plan`` for each frame in order, generate, then ``commit`` the frame's final latent; after a
    failed frame call ``invalidate`` so that the next frame starts afresh.

    Examples:
        >>> reuse = LatentReuse(TemporalOptions(reuse_strength=0.25, keyframe_every=3))
        >>> reuse.plan(ctx, latent_shape).keyframe  # doctest: +SKIP
        True
    """

    def __init__(self, options: TemporalOptions) -> None:
        self.options = options
        self.counts = {"keyframes": 0, "reused_frames": 0, "scene_cut_keyframes": 0}
        self.reset()

    def reset(self) -> None:
        self._latents: Any = None
        self._thumbnail: np.ndarray | None = None
        self._planned_shape: tuple[int, ...] | None = None
        self._since_keyframe = 0

    def invalidate(self) -> None:
        """Forget the previous frame: the frame after a failure is a keyframe."""
        self._latents = None
        self._planned_shape = None

    def plan(self, ctx: FrameContext, latent_shape: tuple[int, ...]) -> FramePlan:
        """Decide how ``ctx``'s frame is generated; advances the keyframe counter."""
        # Plans depend only on earlier plans, not on earlier results, so a batch can be planned before any
        # of it is generated; the caller commits each frame's latent before a later frame reuses it.
        reason = None
        previous_shape, self._planned_shape = self._planned_shape, tuple(latent_shape[1:])
        if ctx.frame.pts is None:
            reason = "still"  # images of a folder are unrelated: never reuse across them
        elif self.options.reuse_strength >= 1.0:
            reason = "no-reuse"
        elif previous_shape != self._planned_shape:
            reason = "start"  # first frame, first after a failure, or a new frame size
        elif ctx.extras.get(SCENE_CUT_KEY):
            reason = "scene-cut"
        elif self._since_keyframe >= self.options.keyframe_every:
            reason = "interval"
        if reason is not None:
            self._since_keyframe = 1
            self.counts["keyframes"] += 1
            self.counts["scene_cut_keyframes"] += reason == "scene-cut"
            return FramePlan(True, reason, 1.0)
        self._since_keyframe += 1
        self.counts["reused_frames"] += 1
        return FramePlan(False, "reuse", self.options.reuse_strength)

    def init_latents(self, image: np.ndarray) -> Any:
        """The previous final latent, warped to ``image`` (the current original frame) if flow is on."""
        if self._latents is None:
            raise RuntimeError("no previous latent to reuse")
        if not self.options.flow_warp or self._thumbnail is None:
            return self._latents
        height, width = self._latents.shape[-2:]
        flow = estimate_flow(_thumbnail(image, width, height), self._thumbnail)
        return warp_latents(self._latents, flow)

    def commit(self, latents: Any, image: np.ndarray) -> None:
        """Remember a frame's final latent (one frame of a batch) and its original, for the next frame."""
        self._latents = latents
        if self.options.flow_warp:
            self._thumbnail = _thumbnail(image, latents.shape[-1], latents.shape[-2])


def _thumbnail(image: np.ndarray, latent_width: int, latent_height: int) -> np.ndarray:
    # Flow is estimated at twice the latent resolution: enough detail, and cheap at any frame size.
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (latent_width * 2, latent_height * 2), interpolation=cv2.INTER_AREA)


def estimate_flow(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Dense flow from ``current`` to ``previous`` thumbnails, in pixels at half the thumbnail size.

    ``current[y, x]`` looks like ``previous[y + fy, x + fx]``: sampling the previous latent at ``x + f``
    (backward warping) moves its content to where it is now.
    """
    flow = cv2.calcOpticalFlowFarneback(current, previous, None, 0.5, 3, 9, 3, 5, 1.1, 0)
    height, width = current.shape[0] // 2, current.shape[1] // 2
    return cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA) / 2.0


def warp_latents(latents: Any, flow: np.ndarray) -> Any:
    """Backward-warp ``(B, C, h, w)`` latents by a ``(h, w, 2)`` flow in latent pixels (bilinear, border)."""
    torch = require("torch", "diffusion")
    functional = require("torch.nn.functional", "diffusion")
    _, _, height, width = latents.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # grid_sample wants sampling positions normalised to [-1, 1] with align_corners=True.
    grid_x = (xs + flow[..., 0]) / max(width - 1, 1) * 2 - 1
    grid_y = (ys + flow[..., 1]) / max(height - 1, 1) * 2 - 1
    grid = torch.from_numpy(np.stack([grid_x, grid_y], axis=-1)[None]).to(latents.device, torch.float32)
    warped = functional.grid_sample(
        latents.float(), grid.expand(latents.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border",
        align_corners=True,
    )
    return warped.to(latents.dtype)


def reuse_timesteps(scheduler: Any, steps: int, strength: float, device: Any, noise_seed: int | None = None,
                    batch: int = 1) -> Any:
    """Set the scheduler for one call and return the timesteps it runs.

    A keyframe (``strength == 1``) runs all ``steps``; latent reuse runs only the last ``strength`` share of
    them, as img2img does. A Brownian-tree scheduler (DPMSolverSDEScheduler) gets one tree per frame, seeded
    with ``noise_seed``, so its step noise is the same on every frame. Shared by every generative pipeline.
    """
    if not 0.0 < strength <= 1.0:
        raise ConfigError(f"strength must be in (0, 1], got {strength}")
    if noise_seed is not None and hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = [noise_seed] * batch
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    if strength < 1.0:
        t_start = steps - max(1, min(int(steps * strength), steps))
        timesteps = timesteps[t_start * scheduler.order :]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(t_start * scheduler.order)
    return timesteps


def start_latents(sd: Any, noise: Any, init_latents: Any, timesteps: Any, generators: list[Any], height: int,
                  width: int, dtype: Any) -> Any:
    """The first latents of a call: the fixed noise (keyframe) or the reused latent re-noised to the first step.

    ``sd`` is the diffusers pipeline whose ``prepare_latents`` and scheduler the caller's loop uses.
    """
    batch, device = noise.shape[0], sd.unet.device
    noise = noise.to(device=device, dtype=dtype)
    if init_latents is None:
        return sd.prepare_latents(batch, noise.shape[1], height, width, dtype, device, generators, noise)
    return sd.scheduler.add_noise(init_latents.to(device=device, dtype=dtype), noise, timesteps[:1].repeat(batch))


@contextlib.contextmanager
def sampling(torch: Any) -> Iterator[None]:
    """``torch.no_grad()``, without torchsde's warnings about float round-off at the ends of the schedule."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Should have", module="torchsde")
        yield


def guidance_embeds(torch: Any, prompt_embeds: tuple, batch: int, do_cfg: bool) -> tuple[Any, Any]:
    """``(cond, embeds)``: the prompt rows repeated per frame, and ``[uncond, cond]`` for classifier-free guidance."""
    cond, uncond = (e.repeat(batch // e.shape[0], 1, 1) if e is not None else None for e in prompt_embeds)
    return cond, (torch.cat([uncond, cond]) if do_cfg else cond)


def decode_images(sd: Any, latents: Any, output_type: str) -> Any:
    """Latents to images through the pipeline's VAE and post-processor, as the stock pipelines end."""
    latents = latents.to(sd.vae.dtype)  # the VAE may run in a wider dtype than the UNet (frozen_sd15)
    image = sd.vae.decode(latents / sd.vae.config.scaling_factor, return_dict=False)[0]
    return sd.image_processor.postprocess(image, output_type=output_type, do_denormalize=[True] * latents.shape[0])
