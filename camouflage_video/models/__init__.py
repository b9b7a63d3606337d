"""Model components: registry, where each comes from (hub id or local path), fetch, offline check, loading.

Every component of a generative method is named in ``registry`` with its default hub id. A user points any
of them at a hub id (``owner/name`` or ``owner/name@revision``), a diffusers/transformers folder, or a single
``.safetensors`` file, through a TOML config or ``--model NAME=SPEC``; ``--models-dir DIR`` makes every hub
id resolve to ``DIR/<name>`` for offline use (``camouflage-video models fetch base --models-dir DIR`` fills
it). Weights load as safetensors only. The controlnet-aux annotators (openpose, normalbae, lineart) are
published only as pickled ``.pth`` files: ``models fetch`` converts them once to ``.safetensors`` with
``torch.load(weights_only=True)`` (a loader that cannot run code), and runs load only the converted files.

This package is the bottom of the generative stack: it imports nothing from annotators, pipelines or methods.
"""

from __future__ import annotations

from camouflage_video.models.hub import CheckResult, check, convert_pickle, fetch
from camouflage_video.models.loaders import (
    from_pretrained,
    load_controlnet,
    load_failure,
    load_image_encoder,
    load_ip_adapter_state,
    load_sd15,
    load_state_dict,
    load_t2i_adapter,
    load_transformers_model,
    load_vae,
    quiet_stdout,
    split_ip_adapter_state,
    torchscript_path,
)
from camouflage_video.models.registry import (
    ALIGNER_FILE,
    COMPONENTS,
    FARL_FILE,
    IMAGE_ENCODER_FOLDER,
    IP_ADAPTER_WEIGHTS,
    PARSER_FILE,
    PRESETS,
    RETINAFACE_FILE,
    SD15_SCHEDULER,
    Component,
)
from camouflage_video.models.sources import ModelSource, cache_home, hub_offline, local_name, resolve, resolve_all
from camouflage_video.options import read_toml

__all__ = [
    "ALIGNER_FILE", "COMPONENTS", "FARL_FILE", "IMAGE_ENCODER_FOLDER", "IP_ADAPTER_WEIGHTS", "PARSER_FILE",
    "PRESETS", "RETINAFACE_FILE", "SD15_SCHEDULER", "CheckResult", "Component", "ModelSource", "cache_home",
    "check", "convert_pickle", "fetch", "from_pretrained", "hub_offline", "load_controlnet", "load_failure",
    "load_image_encoder", "load_ip_adapter_state", "load_sd15", "load_state_dict", "load_t2i_adapter",
    "load_transformers_model", "load_vae", "local_name", "quiet_stdout", "read_toml", "resolve", "resolve_all",
    "split_ip_adapter_state", "torchscript_path",
]
