"""Every model component of the generative methods, as plain data: name, default source, kind, files.

The registry is complete at import: nothing registers itself later, so ``resolve("ip-adapter")`` works
whether or not a pipeline was ever imported. ``PRESETS`` names the components ``models list/fetch/check``
show per method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SD15_FILES = (
    "model_index.json", "scheduler/scheduler_config.json", "tokenizer/*", "text_encoder/config.json",
    "text_encoder/model.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
)
DIFFUSERS_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
# A local folder may hold the full weights or only their published fp16 variant.
DIFFUSERS_LOCAL_FILES = ("config.json", "diffusion_pytorch_model*.safetensors")
TRANSFORMERS_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
CAPTIONER_FILES = (*TRANSFORMERS_FILES, "tokenizer*", "special_tokens_map.json", "vocab.txt")
# What a local folder must hold (the hub listings above also carry optional files).
REQUIRED_LOCAL = {
    "sd15": ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
             "text_encoder/model.safetensors", "tokenizer/*"),
    "vae": DIFFUSERS_LOCAL_FILES,
    "controlnet": DIFFUSERS_LOCAL_FILES,
    "depth": ("config.json", "model.safetensors"),
    "segmentation": ("config.json", "model.safetensors"),
    "captioner": ("config.json", "model.safetensors"),
}
SD15_SCHEDULER = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon", "steps_offset": 1, "timestep_spacing": "leading",
}

# CAMOUFLaGE-Light's files (pyfacer's weights are GitHub release assets, the IP-Adapter a hub repo).
FARL_FILE = "face_attribute.farl.celeba.safetensors"
IP_ADAPTER_WEIGHTS = "models/ip-adapter_sd15.safetensors"
IMAGE_ENCODER_FOLDER = "models/image_encoder"
PARSER_FILE = "face_parsing.farl.lapa.main_ema_136500_jit191.pt"
ALIGNER_FILE = "face_alignment.farl.ibug300w.main_ema_jit.pt"
RETINAFACE_FILE = "mobilenet0.25_Final.safetensors"
_FACER = "https://github.com/FacePerceiver/facer/releases/download/models-v1/"


@dataclass(frozen=True)
class Component:
    """One model a method needs.

    Attributes:
        name: Key in configs and ``--model NAME=SPEC`` (``base``, ``controlnet-depth``, ``annotator-seg``...).
        default: Hub id used when nothing else is configured; ``None`` if there is no public checkpoint.
        kind: How it loads: ``sd15``, ``vae``, ``controlnet``, ``depth``, ``segmentation``, ``captioner``, or
            a controlnet-aux annotator (``openpose``, ``normalbae``, ``lineart``).
        files: Hub files (glob patterns) that ``models fetch`` downloads.
        pickles: Upstream pickled files that ``models fetch`` converts to ``<stem>.safetensors``.
        note: One line for ``models list``.

    A component published outside the hub (pyfacer's weights are GitHub release assets) has its download URL
    as ``default``; ``models fetch`` stores it in ``<models-dir or cache>/<name>/``, converted to safetensors
    if it is a pickle. ``kind="torchscript"`` marks TorchScript archives, which load as published.

    Examples:
        >>> COMPONENTS["vae"].default
        'stabilityai/sd-vae-ft-mse'
    """

    name: str
    default: str | None
    kind: str
    files: tuple[str, ...] = ()
    pickles: tuple[str, ...] = ()
    note: str = ""

    @property
    def safetensors_files(self) -> tuple[str, ...]:
        return tuple(Path(p).stem + ".safetensors" for p in self.pickles)


_BASE = (
    Component("base", "SG161222/Realistic_Vision_V5.1_noVAE", "sd15", SD15_FILES,
              note="Stable Diffusion 1.5 fine-tune (UNet, text encoder, tokenizer)"),
    Component("vae", "stabilityai/sd-vae-ft-mse", "vae", DIFFUSERS_MODEL_FILES, note="SD 1.5 VAE"),
    Component("controlnet-depth", "lllyasviel/control_v11f1p_sd15_depth", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-normalbae", "lllyasviel/control_v11p_sd15_normalbae", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-seg", "lllyasviel/control_v11p_sd15_seg", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-openpose", "lllyasviel/control_v11p_sd15_openpose", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-lineart", "lllyasviel/control_v11p_sd15_lineart", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("identity", "lllyasviel/control_v11f1e_sd15_tile@refs/pr/4", "controlnet", DIFFUSERS_MODEL_FILES,
              note="identity ControlNet; default is the public tile ControlNet, an approximation"),
    Component("annotator-depth", "depth-anything/Depth-Anything-V2-Small-hf", "depth", TRANSFORMERS_FILES,
              note="relative depth (transformers)"),
    Component("annotator-seg", "openmmlab/upernet-convnext-base", "segmentation", TRANSFORMERS_FILES,
              note="ADE20k segmentation (transformers UperNet)"),
    Component("annotator-normalbae", "lllyasviel/Annotators", "normalbae", pickles=("scannet.pt",),
              note="surface normals (controlnet-aux NormalBae)"),
    Component("annotator-openpose", "lllyasviel/Annotators", "openpose",
              pickles=("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
              note="body, hands and face pose (controlnet-aux OpenPose)"),
    Component("annotator-lineart", "lllyasviel/Annotators", "lineart", pickles=("sk_model.pth",),
              note="realistic lineart (controlnet-aux)"),
    Component("captioner", "Salesforce/blip-image-captioning-base", "captioner", CAPTIONER_FILES,
              note="automatic prompt when none is given (transformers BLIP)"),
)
_LIGHT = (
    Component("ip-adapter", "h94/IP-Adapter", "ip-adapter", (IP_ADAPTER_WEIGHTS,),
              note="IP-Adapter for SD 1.5 (image prompt)"),
    Component("image-encoder", "h94/IP-Adapter", "image-encoder",
              (f"{IMAGE_ENCODER_FOLDER}/config.json", f"{IMAGE_ENCODER_FOLDER}/model.safetensors"),
              note="the IP-Adapter's CLIP ViT-H image encoder"),
    Component("t2i-adapter", None, "t2i-adapter", ("config.json", "diffusion_pytorch_model.safetensors"),
              note="41-channel attribute T2I-Adapter; no public checkpoint: train one with train-light"),
    Component("face-attributes", _FACER + "face_attribute.farl.celeba.pt", "facer",
              pickles=("face_attribute.farl.celeba.pt",), note="pyfacer farl/celeba/224 (40 CelebA attributes)"),
    Component("face-detector", "https://github.com/elliottzheng/face-detection/releases/download/0.0.1/"
              "mobilenet0.25_Final.pth", "facer", pickles=("mobilenet0.25_Final.pth",),
              note="pyfacer retinaface/mobilenet (train-light --face-detector retinaface)"),
    Component("face-parser", _FACER + PARSER_FILE, "torchscript", (PARSER_FILE,),
              note="pyfacer farl/lapa/448 face parsing (with --face-parsing)"),
    Component("face-aligner", _FACER + ALIGNER_FILE, "torchscript", (ALIGNER_FILE,),
              note="pyfacer farl/ibug300w/448 68-point keypoints (with face-alignment = true)"),
)

COMPONENTS: dict[str, Component] = {c.name: c for c in (*_BASE, *_LIGHT)}
PRESETS: dict[str, list[str]] = {
    "base": [c.name for c in _BASE],
    "light": [c.name for c in _LIGHT] + ["base", "vae"],
}
