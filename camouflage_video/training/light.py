"""``camouflage-video train-light DATA_DIR --output ckpt/``: train CAMOUFLaGE-Light's attribute T2I-Adapter.

Stable Diffusion 1.5 and the IP-Adapter stay frozen; only the T2I-Adapter that reads the 41-channel attribute
map learns, with the usual denoising loss: the UNet, shown the image's IP-Adapter embedding (of the image with
its faces blurred, as at inference) and the adapter's features, predicts the noise added to the image's
latent. Runs on one GPU, several (``accelerate launch -m camouflage_video train-light ...``) or the CPU.

Everything a run writes is safetensors or JSON under ``--output``: ``checkpoints/step-NNNNNNN/`` (the
adapter, the optimizer state and ``state.json``), ``train_log.jsonl`` (loss per logged step), the attribute
cache, and at the end the adapter itself (``config.json`` + ``diffusion_pytorch_model.safetensors``), which
``--t2i-adapter ckpt/`` loads. The data order and every random draw are functions of the seed and the step,
so ``--resume`` continues exactly where a checkpoint left off.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError
from camouflage_video.interrupts import Finalized
from camouflage_video.options import flag, from_mapping
from camouflage_video.pipelines.camouflage_light import LightConditioning
from camouflage_video.pipelines.generative import resolution_check
from camouflage_video.training.checkpoints import checkpoint_dirs, load_checkpoint, save_checkpoint
from camouflage_video.training.components import load_training_components

logger = logging.getLogger(__name__)

MIXED_PRECISION = ("no", "fp16", "bf16")
TIMESTEP_SAMPLING = ("uniform", "cubic")
FACE_DETECTORS = ("centerface", "retinaface")
#: The help's option groups; Light's conditioning options (``LightConditioning``) are shown under CONDITIONING.
TRAINING, CONDITIONING = "training", "conditioning (keep equal to the anonymize settings)"


def _flag(help: str, *, group: str = TRAINING, **kwargs: Any) -> dict[str, Any]:  # noqa: A002
    return flag(help, group=group, **kwargs)
# Options a resumed run must share with the run that wrote the checkpoint (they decide data order and draws).
RESUME_INVARIANTS = ("resolution", "batch_size", "gradient_accumulation", "seed", "timesteps", "prompt",
                     "ip_adapter_scale", "ip_adapter_faces")


@dataclass(frozen=True)
class TrainLightOptions:
    """Settings of a ``train-light`` run (CLI flags and TOML keys use the same names, kebab-case).

    Attributes:
        data_dir: Folder of face images (searched recursively).
        output: Folder for checkpoints, logs, the cache and the final adapter.
        resolution: Square training size (SD 1.5: 512).
        batch_size: Images per step and process.
        learning_rate: AdamW learning rate.
        max_steps: Optimizer steps in total (a resumed run counts the steps already done).
        gradient_accumulation: Batches accumulated per optimizer step.
        mixed_precision: ``no``, ``fp16`` or ``bf16`` (frozen models run at that precision).
        checkpoint_every: Steps between checkpoints (one is always written at the end).
        keep_checkpoints: Checkpoints kept; older ones are deleted.
        log_every: Steps between loss log lines.
        seed: Seed of the data order, the adapter's initialisation and every noise draw.
        conditioning: Prompt, IP-Adapter weight and view, attribute regions: Light's own
            ``LightConditioning``, given flat (keep them equal to the anonymize settings).
        timesteps: ``uniform`` or ``cubic`` (biased to early, noisy steps, as T2I-Adapter's SDXL training).
        cache: Folder of the attribute cache; ``None`` for ``<output>/attribute-cache``; ``"none"`` analyses
            on the fly every time.
        face_detector: ``centerface`` (ships with the package) or pyfacer's ``retinaface``.
        resume: Continue from the latest checkpoint in ``output``.
        init_adapter: Start from an existing T2I-Adapter instead of a fresh one.
        gradient_checkpointing: Trade UNet compute for memory.
        max_grad_norm: Gradient clipping.
        device: ``auto`` or ``cpu`` (with accelerate, the launcher places processes on GPUs).
        models, models_dir, base_config: Model sources, as for ``anonymize --method light``.

    Examples:
        >>> TrainLightOptions.from_mapping({"data_dir": "faces/", "output": "ckpt/", "max_steps": 10}).max_steps
        10
    """

    data_dir: str
    output: str
    resolution: int = field(default=512, metadata=_flag("square training size"))
    batch_size: int = field(default=4, metadata=_flag("images per step and GPU"))
    learning_rate: float = field(default=1e-5, metadata=_flag("AdamW learning rate"))
    max_steps: int = field(default=20000, metadata=_flag("optimizer steps in total"))
    gradient_accumulation: int = field(default=1, metadata=_flag("batches per optimizer step"))
    mixed_precision: str = field(default="no", metadata=_flag("frozen models' precision", choices=MIXED_PRECISION))
    checkpoint_every: int = field(default=500, metadata=_flag("steps between checkpoints"))
    keep_checkpoints: int = field(default=3, metadata=_flag("checkpoints kept"))
    log_every: int = field(default=10, metadata=_flag("steps between loss log lines"))
    seed: int = field(default=0, metadata=_flag("seed of data order, initialisation and noise"))
    conditioning: LightConditioning = field(default_factory=LightConditioning)
    timesteps: str = field(default="uniform", metadata=_flag("timestep sampling", choices=TIMESTEP_SAMPLING))
    cache: str | None = field(default=None, metadata=_flag(
        "attribute cache folder ('none': on the fly)", metavar="DIR", default_text="OUTPUT/attribute-cache",
        group=CONDITIONING))
    face_detector: str = field(default="centerface", metadata=_flag(
        "face detector", choices=FACE_DETECTORS, group=CONDITIONING))
    resume: bool = field(default=False, metadata=_flag("continue from the latest checkpoint in --output"))
    init_adapter: str | None = field(default=None, metadata=_flag(
        "start from this T2I-Adapter instead of a fresh one", metavar="SPEC"))
    gradient_checkpointing: bool = field(default=False, metadata=_flag("save memory in the UNet"))
    max_grad_norm: float = 1.0
    device: str = field(default="auto", metadata=_flag("auto (GPUs, via accelerate) or cpu", choices=("auto", "cpu")))
    models: Mapping[str, str] = field(default_factory=dict, metadata=_flag(
        "a component's source; repeatable", name="model", metavar="NAME=SPEC", group="models"))
    models_dir: str | None = field(default=None, metadata=_flag(
        "look every hub model up as DIR/<repo name> (offline use)", metavar="DIR", group="models"))
    base_config: str | None = None

    def __post_init__(self) -> None:
        ConfigError.check([
            resolution_check(self.resolution),
            (self.batch_size >= 1, f"batch-size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning-rate must be > 0, got {self.learning_rate}"),
            (self.max_steps >= 1, f"max-steps must be >= 1, got {self.max_steps}"),
            (self.gradient_accumulation >= 1, f"gradient-accumulation must be >= 1, got {self.gradient_accumulation}"),
            (self.mixed_precision in MIXED_PRECISION,
             f"mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}"),
            (self.checkpoint_every >= 1, f"checkpoint-every must be >= 1, got {self.checkpoint_every}"),
            (self.keep_checkpoints >= 1, f"keep-checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (self.log_every >= 1, f"log-every must be >= 1, got {self.log_every}"),
            (self.timesteps in TIMESTEP_SAMPLING,
             f"timesteps must be one of {', '.join(TIMESTEP_SAMPLING)}, got {self.timesteps!r}"),
            (self.face_detector in FACE_DETECTORS,
             f"face-detector must be one of {', '.join(FACE_DETECTORS)}, got {self.face_detector!r}"),
            (self.max_grad_norm > 0, f"max-grad-norm must be > 0, got {self.max_grad_norm}"),
            (self.device in ("auto", "cpu"), f"device must be auto or cpu, got {self.device!r}"),
        ])

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> TrainLightOptions:
        """Defaults, then the TOML file at ``options["config"]``, then the other keys (``None`` ignored)."""
        return from_mapping(cls, options, required=("data_dir", "output"), where="for train-light")

    def invariants(self) -> dict[str, Any]:
        return {name: getattr(self.conditioning if hasattr(self.conditioning, name) else self, name)
                for name in RESUME_INVARIANTS}


@dataclass
class TrainResult:
    """Where a run ended: its last step, the mean loss of its last logged window, and the adapter folder."""

    step: int
    loss: float
    output: Path
    losses: list[float] = field(default_factory=list)


# -- the run ------------------------------------------------------------------------------------------


def sample_indices(
    step: int, micro: int, options: TrainLightOptions, n: int, process: int, processes: int
) -> list[int]:
    """Dataset indices of one micro-batch: a function of the step only, so a resumed run reads the same data.

    Samples are consumed in order from one seeded permutation of the data per epoch, and each process takes
    its own ``batch_size`` of every global batch.
    """
    per_step = options.batch_size * processes
    start = ((step * options.gradient_accumulation + micro) * per_step) + process * options.batch_size
    indices = []
    for position in range(start, start + options.batch_size):
        epoch, within = divmod(position, n)
        indices.append(int(_epoch_order(options.seed, epoch, n)[within]))
    return indices


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _generator(options: TrainLightOptions, step: int, micro: int, process: int) -> Any:
    torch = require("torch", "light")
    seed = int(np.random.SeedSequence([options.seed, step, micro, process]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


def train_light(options: TrainLightOptions, progress: bool | None = None) -> TrainResult:
    """Train the attribute T2I-Adapter; returns where it ended.

    Raises:
        ConfigError: Bad options, an output that already holds checkpoints without ``resume``, or a resume
            whose data-order settings differ from the checkpoint's.
        InputError: The data folder is missing or holds no images.
        ModelError: A model cannot be loaded.
        KeyboardInterrupt: After writing a checkpoint of the steps done.
    """
    torch = require("torch", "light")
    accelerate = require("accelerate", "light")
    functional = require("torch.nn.functional", "light")
    tqdm = require("tqdm", None).tqdm
    from camouflage_video.training.face_data import CacheKey, FaceImageDataset, list_images

    list_images(options.data_dir)  # a wrong folder is reported before minutes of model loading
    output = Path(options.output)
    existing = checkpoint_dirs(output)
    if existing and not options.resume:
        raise ConfigError(f"{output} already holds checkpoints; pass --resume to continue, or choose another --output")
    accelerator = accelerate.Accelerator(
        mixed_precision=options.mixed_precision, cpu=options.device == "cpu",
    )
    main = accelerator.is_main_process
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(options.mixed_precision, torch.float32)

    # 1. Frozen models: SD 1.5 with the IP-Adapter, the VAE, the face analysis
    components = load_training_components(options, accelerator.device, weight_dtype)
    pipe, vae, noise_scheduler = components["pipeline"], components["vae"], components["noise_scheduler"]
    unet = pipe.sd.unet
    if options.gradient_checkpointing:
        unet.enable_gradient_checkpointing()

    # 2. Data (the attribute cache is filled once, by the main process)
    cache = None if options.cache == "none" else Path(options.cache or output / "attribute-cache")
    conditioning = options.conditioning
    key = CacheKey(options.resolution, conditioning.region_scale, components["detector_name"],
                   components["classifier_name"])
    dataset = FaceImageDataset(
        options.data_dir, components["analyze"], options.resolution, cache, key, conditioning.ip_adapter_faces,
        conditioning.region_scale,
    )
    if cache is not None and main:
        for index in tqdm(range(len(dataset)), desc="analysing faces", unit="image", disable=_quiet(progress)):
            dataset.attributes(index)
    accelerator.wait_for_everyone()

    # 3. The trainable adapter and its optimizer
    adapter = components["adapter"]
    factor = int(accelerator.unwrap_model(adapter).config.downscale_factor)
    if options.resolution % factor:
        raise ConfigError(
            f"resolution must be a multiple of the adapter's downscale factor {factor}, got {options.resolution}"
        )
    adapter.train()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=options.learning_rate, weight_decay=1e-2)
    adapter, optimizer = accelerator.prepare(adapter, optimizer)
    step = 0
    if options.resume and existing:
        state = load_checkpoint(existing[-1], accelerator.unwrap_model(adapter), optimizer)
        saved = state.get("options", {})
        differ = {k: (saved.get(k), v) for k, v in options.invariants().items() if k in saved and saved[k] != v}
        if differ:
            raise ConfigError(f"--resume with other settings than the checkpoint's: {differ}")
        step = int(state["step"])
        logger.info("resumed from %s at step %d", existing[-1], step)
    if main:
        output.mkdir(parents=True, exist_ok=True)

    prompt_embeds = pipe.encode_prompt(conditioning.prompt, None, guidance_scale=1.0)[0].to(weight_dtype)
    log_path = output / "train_log.jsonl"
    window: list[float] = []
    losses: list[float] = []
    last_loss = math.nan
    last_saved = step
    bar = tqdm(total=options.max_steps, initial=step, unit="step", desc="train-light",
               disable=not main or _quiet(progress))
    t_window = time.perf_counter()
    try:
        # 4. Training loop
        while step < options.max_steps:
            for micro in range(options.gradient_accumulation):
                indices = sample_indices(step, micro, options, len(dataset), accelerator.process_index,
                                         accelerator.num_processes)
                batch = [dataset[i] for i in indices]
                generator = _generator(options, step, micro, accelerator.process_index)
                loss = _loss(batch, generator, options, pipe, vae, noise_scheduler, adapter, prompt_embeds,
                             accelerator.device, weight_dtype, functional)
                accelerator.backward(loss / options.gradient_accumulation)
                window.append(float(accelerator.gather(loss.detach()[None]).mean()))
            accelerator.clip_grad_norm_(adapter.parameters(), options.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if step % options.log_every == 0 or step == options.max_steps:
                last_loss = float(np.mean(window))
                losses.append(last_loss)
                seconds = (time.perf_counter() - t_window) / max(1, len(window) / options.gradient_accumulation)
                bar.set_postfix(loss=f"{last_loss:.4f}")
                if main:
                    _log(log_path, {"step": step, "loss": last_loss, "lr": options.learning_rate,
                                    "seconds_per_step": round(seconds, 4)})
                window, t_window = [], time.perf_counter()
            if step % options.checkpoint_every == 0 or step == options.max_steps:
                _checkpoint(accelerator, output, step, adapter, optimizer, options)
                last_saved = step
    except KeyboardInterrupt:
        if step > last_saved:
            _checkpoint(accelerator, output, step, adapter, optimizer, options)
        raise Finalized from None  # the checkpoint of the steps done is written
    finally:
        bar.close()

    # 5. The adapter itself, where --t2i-adapter OUTPUT finds it
    accelerator.wait_for_everyone()
    if main:
        _publish_adapter(accelerator.unwrap_model(adapter), output)
    if window:
        last_loss = float(np.mean(window))
    return TrainResult(step=step, loss=last_loss, output=output, losses=losses)


def _loss(batch: list[dict], generator: Any, options: TrainLightOptions, pipe: Any, vae: Any, noise_scheduler: Any,
          adapter: Any, prompt_embeds: Any, device: Any, dtype: Any, functional: Any) -> Any:
    torch = require("torch", "light")
    pixels = torch.from_numpy(np.stack([s["pixels"] for s in batch])).to(device, dtype)
    condition = torch.from_numpy(np.stack([s["condition"] for s in batch])).to(device)
    with torch.no_grad():
        posterior = vae.encode(pixels).latent_dist
        sample = torch.randn(posterior.mean.shape, generator=generator).to(device, dtype)
        latents = posterior.mean + posterior.std * sample
        latents = latents * vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator).to(device, dtype)
        total = noise_scheduler.config.num_train_timesteps
        u = torch.rand(len(batch), generator=generator)
        if options.timesteps == "cubic":
            u = 1 - u**3  # more weight on early, noisy steps: that is where layout and attributes are decided
        timesteps = (u * total).long().clamp(0, total - 1).to(device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        added = None
        if pipe.has_ip_adapter:
            added = {"image_embeds": [pipe.encode_images([s["ip_image"] for s in batch]).to(dtype)]}
    features = adapter(condition.to(device, next(iter(adapter.parameters())).dtype))
    prediction = pipe.sd.unet(
        noisy, timesteps, encoder_hidden_states=prompt_embeds.repeat(len(batch), 1, 1), added_cond_kwargs=added,
        down_intrablock_additional_residuals=[f.to(dtype) for f in features], return_dict=False,
    )[0]
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return functional.mse_loss(prediction.float(), target.float())


def _checkpoint(
    accelerator: Any, output: Path, step: int, adapter: Any, optimizer: Any, options: TrainLightOptions
) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        folder = save_checkpoint(output, step, accelerator.unwrap_model(adapter), optimizer,
                                 {"options": {**options.invariants(), "data_dir": options.data_dir}},
                                 options.keep_checkpoints)
        logger.info("checkpoint %s", folder)


def _publish_adapter(adapter: Any, output: Path) -> None:
    temporary = output / ".adapter.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    adapter.save_pretrained(temporary, safe_serialization=True)
    for item in temporary.iterdir():
        os.replace(item, output / item.name)
    temporary.rmdir()


def _log(path: Path, record: dict[str, Any]) -> None:
    logger.info("step %d loss %.5f", record["step"], record["loss"])
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress
