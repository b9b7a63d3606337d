"""Loaders of every component, safetensors only: SD 1.5, VAE, ControlNets, transformers models, converted
annotator state dicts, and CAMOUFLaGE-Light's T2I-Adapter, IP-Adapter and CLIP image encoder."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError, ModelError
from camouflage_video.models.registry import IMAGE_ENCODER_FOLDER, IP_ADAPTER_WEIGHTS, SD15_SCHEDULER
from camouflage_video.models.sources import ModelSource, hub_offline

logger = logging.getLogger(__name__)

FULL_WEIGHTS = "diffusion_pytorch_model.safetensors"
FP16_WEIGHTS = "diffusion_pytorch_model.fp16.safetensors"


def load_failure(source: ModelSource, exc: BaseException) -> ModelError:
    hint = ""
    if source.path is None:
        hint = " (HF_HUB_OFFLINE is set and it is not in the HF cache: run `camouflage-video models fetch`)" \
            if hub_offline() else " (check the hub id, the network, or point it at a local folder)"
    return ModelError(f"{source.component}: cannot load {source.describe()}: {type(exc).__name__}: {exc}{hint}")


def from_pretrained(cls: Any, source: ModelSource, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(source.pretrained, revision=source.revision, use_safetensors=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load"
        raise load_failure(source, exc) from exc


def load_sd15(source: ModelSource, dtype: Any, config: str | None = None, vae: Any = None) -> dict[str, Any]:
    """UNet, text encoder, tokenizer and scheduler config of an SD 1.5 model (folder, hub id or single file).

    A single ``.safetensors`` checkpoint needs the SD 1.5 configs and tokenizer: diffusers takes them from
    the hub (cached after the first time) or from ``config``, a diffusers folder or hub id. ``vae``, the VAE
    component loaded on its own, stands in for the checkpoint's (which is then neither converted nor needed).
    """
    diffusers = require("diffusers", "diffusion")
    transformers = require("transformers", "diffusion")
    if source.single_file:
        try:
            # safety_checker=None, not load_safety_checker=False: diffusers 0.42 downloads the safety checker
            # whenever load_safety_checker is given at all, even False.
            pipe = diffusers.StableDiffusionPipeline.from_single_file(
                str(source.path), torch_dtype=dtype, config=config, vae=vae, safety_checker=None,
                feature_extractor=None, requires_safety_checker=False, local_files_only=hub_offline(),
            )
        except Exception as exc:  # noqa: BLE001
            failure = load_failure(source, exc)
            if config is None:
                failure = ModelError(f"{failure} (a single-file base reads SD 1.5's configs and tokenizer from the "
                                     "hub; offline, set base-config to a diffusers SD 1.5 folder)")
            raise failure from exc
        return {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer,
                "scheduler_config": dict(pipe.scheduler.config)}
    unet = from_pretrained(diffusers.UNet2DConditionModel, source, subfolder="unet", torch_dtype=dtype)
    text_encoder = from_pretrained(transformers.CLIPTextModel, source, subfolder="text_encoder", torch_dtype=dtype)
    try:
        tokenizer = transformers.CLIPTokenizer.from_pretrained(
            source.pretrained, subfolder="tokenizer", revision=source.revision
        )
    except Exception as exc:  # noqa: BLE001
        raise load_failure(source, exc) from exc
    scheduler_config = dict(SD15_SCHEDULER)
    try:
        scheduler_config.update(diffusers.DPMSolverSDEScheduler.load_config(
            source.pretrained, subfolder="scheduler", revision=source.revision
        ))
    except Exception:  # noqa: BLE001 - a base without a scheduler folder uses SD 1.5's training schedule
        logger.debug("%s has no scheduler config; using SD 1.5's", source.describe())
    return {"unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler_config": scheduler_config}


def load_vae(source: ModelSource, dtype: Any) -> Any:
    return _load_diffusers_model("AutoencoderKL", source, dtype)


def load_controlnet(source: ModelSource, dtype: Any) -> Any:
    return _load_diffusers_model("ControlNetModel", source, dtype)


def _load_diffusers_model(class_name: str, source: ModelSource, dtype: Any) -> Any:
    """A diffusers model from a hub id, a folder or a single ``.safetensors`` file.

    A folder holding only the fp16 variant (``diffusion_pytorch_model.fp16.safetensors``, what the ControlNet
    v1.1 repos also publish, at half the download) loads that variant.
    """
    model_class = getattr(require("diffusers", "diffusion"), class_name)
    if source.single_file:
        try:
            return model_class.from_single_file(str(source.path), torch_dtype=dtype)
        except Exception as exc:  # noqa: BLE001
            raise load_failure(source, exc) from exc
    folder = source.path
    only_fp16 = (folder is not None and not (folder / FULL_WEIGHTS).is_file()
                 and (folder / FP16_WEIGHTS).is_file())
    return from_pretrained(model_class, source, torch_dtype=dtype, **({"variant": "fp16"} if only_fp16 else {}))


def load_transformers_model(auto_class: str, source: ModelSource) -> tuple[Any, Any]:
    """A transformers model (``AutoModelFor...`` class name) and its processor, safetensors only."""
    transformers = require("transformers", "annotators")
    if source.single_file:
        raise ConfigError(f"{source.component}: needs a transformers folder or hub id, not a single file")
    model = from_pretrained(getattr(transformers, auto_class), source)
    try:
        processor = transformers.AutoProcessor.from_pretrained(source.pretrained, revision=source.revision)
    except Exception as exc:  # noqa: BLE001
        raise load_failure(source, exc) from exc
    return model.eval(), processor


def load_state_dict(source: ModelSource, filename: str) -> dict[str, Any]:
    """A converted annotator state dict ``<folder>/<filename>`` (safetensors only)."""
    safetensors_torch = require("safetensors.torch", "diffusion", package="safetensors")
    path = source.path / filename if source.path is not None and source.path.is_dir() else source.path
    if path is None or not path.is_file():
        where = source.path if source.path is not None else source.describe()
        raise ModelError(
            f"{source.component}: {filename} not found in {where}; `camouflage-video models fetch` converts the "
            f"upstream weights once, or point {source.component} at a folder holding {filename}"
        )
    return safetensors_torch.load_file(str(path))


@contextlib.contextmanager
def quiet_stdout():  # noqa: ANN201 - context manager
    """controlnet-aux prints progress while building some networks; keep the CLI's output clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# -- CAMOUFLaGE-Light ---------------------------------------------------------------------------------


def load_t2i_adapter(source: ModelSource, dtype: Any) -> Any:
    """A diffusers ``T2IAdapter`` folder (what ``train-light`` writes), safetensors only."""
    diffusers = require("diffusers", "light")
    return from_pretrained(diffusers.T2IAdapter, source, torch_dtype=dtype).eval()


def load_image_encoder(source: ModelSource, dtype: Any) -> tuple[Any, Any]:
    """The IP-Adapter's CLIP image encoder (``models/image_encoder`` of h94/IP-Adapter, or its own folder)."""
    transformers = require("transformers", "light")
    own_folder = source.path is not None and (source.path / "config.json").is_file()
    encoder = from_pretrained(
        transformers.CLIPVisionModelWithProjection, source, dtype=dtype,
        **({} if own_folder else {"subfolder": IMAGE_ENCODER_FOLDER}),
    )
    size = encoder.config.image_size
    return encoder.eval(), transformers.CLIPImageProcessor(size=size, crop_size=size)


def split_ip_adapter_state(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The published single-file layout (``image_proj.proj.weight``, ``ip_adapter.1.to_k_ip.weight``...) as the
    two-level dict ``load_ip_adapter`` takes."""
    state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        group, _, rest = key.partition(".")
        if group in state:
            state[group][rest] = value
    if not state["image_proj"] or not state["ip_adapter"]:
        raise ConfigError("not an IP-Adapter state dict: expected image_proj.* and ip_adapter.* keys")
    return state


def load_ip_adapter_state(source: ModelSource, dtype: Any) -> dict[str, dict[str, Any]]:
    """IP-Adapter weights from ``ip-adapter_sd15.safetensors`` (a file, the repo folder, or the hub)."""
    safetensors_torch = require("safetensors.torch", "light", package="safetensors")
    try:
        if source.path is not None and source.path.is_file():
            path = source.path
        elif source.path is not None and (source.path / IP_ADAPTER_WEIGHTS).is_file():
            path = source.path / IP_ADAPTER_WEIGHTS
        elif source.path is not None:
            path = source.path / "ip-adapter_sd15.safetensors"
        else:
            hub = require("huggingface_hub", "light")
            path = hub.hf_hub_download(source.repo_id, IP_ADAPTER_WEIGHTS, revision=source.revision)
        state = safetensors_torch.load_file(str(path))
    except Exception as exc:
        raise load_failure(source, exc) from exc
    return split_ip_adapter_state({k: v.to(dtype) for k, v in state.items()})


def torchscript_path(source: ModelSource, filename: str) -> Path:
    """The TorchScript archive of a URL component: ``filename`` in its folder, or the file it names."""
    assert source.path is not None  # URL components always resolve to a local folder or file
    return source.path / filename if source.path.is_dir() or not source.path.exists() else source.path
