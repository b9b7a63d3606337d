"""Tiny, seeded CAMOUFLaGE-Light components built in code (no hub, no GitHub releases), for tests and benchmarks.

The SD 1.5 stand-in is Base's (tests/tiny_models.py). On top of it: a T2I-Adapter reading the 41-channel
attribute map, a CLIP vision encoder with projection, IP-Adapter weights in the published layout
(``image_proj.*`` / ``ip_adapter.<id>.to_k_ip.weight``, ids 1, 3, 5... over the cross-attention layers, as
diffusers reads ``ip-adapter_sd15.safetensors``), and a FaRL attribute classifier with pyfacer's architecture
at a tiny width. All weights are random: outputs are not faces, but every component really runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from camouflage_video.annotators.attribute_map import (
    NUM_ATTRIBUTES,
    FaceAttributes,
    build_attribute_map,
    face_regions,
    landmarks_from_boxes,
)
from camouflage_video.models import SD15_SCHEDULER
from camouflage_video.pipelines.adapters import AdapterPipeline
from camouflage_video.pipelines.generative import make_scheduler
from camouflage_video.pipelines.sd15 import Denoise
from camouflage_video.pipelines.temporal import FixedNoise
from tests.tiny_models import tiny_components

FARL_FILE = "face_attribute.farl.celeba.safetensors"
IP_ADAPTER_FILE = "models/ip-adapter_sd15.safetensors"


def tiny_adapter(unet, seed: int = 0, in_channels: int = 41):
    """A T2I-Adapter fitted to ``unet`` (for Base's tiny UNet: one 32-channel feature at x16), one res block."""
    import torch
    from diffusers import T2IAdapter

    from camouflage_video.pipelines.adapters import adapter_config_for

    torch.manual_seed(seed)
    return T2IAdapter(**{**adapter_config_for(unet, in_channels), "num_res_blocks": 1}).eval()


def tiny_image_encoder(seed: int = 0):
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=16,
    )).eval()
    return encoder, CLIPImageProcessor(size=32, crop_size=32)


def tiny_ip_adapter_state(unet, image_embed_dim: int = 16, seed: int = 0) -> dict:
    """Random IP-Adapter weights in the published layout for ``unet``'s cross-attention layers."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    image_proj = {
        "proj.weight": torch.randn(4 * cross, image_embed_dim, generator=generator) * 0.2,
        "proj.bias": torch.zeros(4 * cross),
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }
    ip_adapter, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        # Large enough that the image prompt visibly changes a tiny model's output.
        ip_adapter[f"{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=generator)
        ip_adapter[f"{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=generator)
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def tiny_attribute_state(seed: int = 0) -> dict:
    """pyfacer's FaRL CelebA classifier (real architecture, 224 px, 40 outputs) at width 64, two layers."""
    import torch

    from camouflage_video.annotators.attributes import build_attribute_network

    torch.manual_seed(seed)
    return build_attribute_network(width=64, layers=2).state_dict()


def tiny_light_components(tmp: Path, seed: int = 0) -> dict:
    """Base's tiny SD 1.5 components plus the T2I-Adapter, image encoder and IP-Adapter weights."""
    components = tiny_components(tmp, seed)
    components.pop("controlnets")
    encoder, processor = tiny_image_encoder(seed + 30)
    components.update(
        adapter=tiny_adapter(components["unet"], seed + 31), image_encoder=encoder, feature_extractor=processor,
        ip_adapter_state=tiny_ip_adapter_state(components["unet"], encoder.config.projection_dim, seed + 32),
    )
    return components


def save_tiny_light_models(components: dict, folder: Path) -> dict[str, str]:
    """Save everything as the files a user would fetch; returns the ``[models]`` table of a TOML config."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "base"
    components["unet"].save_pretrained(base / "unet")
    components["text_encoder"].save_pretrained(base / "text_encoder")
    components["tokenizer"].save_pretrained(base / "tokenizer")
    components["vae"].save_pretrained(folder / "vae")
    components["adapter"].save_pretrained(folder / "t2i_adapter")
    ip_root = folder / "IP-Adapter"
    components["image_encoder"].save_pretrained(ip_root / "models" / "image_encoder")
    components["feature_extractor"].save_pretrained(ip_root / "models" / "image_encoder")
    groups = components["ip_adapter_state"].items()
    flat = {f"{group}.{k}": v.contiguous() for group, table in groups for k, v in table.items()}
    (ip_root / IP_ADAPTER_FILE).parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(ip_root / IP_ADAPTER_FILE))
    (folder / "face_attributes").mkdir(exist_ok=True)
    attributes = {k: v.contiguous() for k, v in tiny_attribute_state().items()}
    save_file(attributes, str(folder / "face_attributes" / FARL_FILE))
    return {
        "base": str(base), "vae": str(folder / "vae"), "t2i-adapter": str(folder / "t2i_adapter"),
        "ip-adapter": str(ip_root), "image-encoder": str(ip_root), "face-attributes": str(folder / "face_attributes"),
    }


#: Generation size of the Light pipeline tests (8x8 latents).
SIZE = 64


def make_pipeline(c: dict, adapter=None, ip: bool = True) -> AdapterPipeline:
    return AdapterPipeline(
        vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
        scheduler=make_scheduler("dpmpp-2m-sde-karras", SD15_SCHEDULER), adapter=adapter or c["adapter"],
        image_encoder=c["image_encoder"] if ip else None, feature_extractor=c["feature_extractor"] if ip else None,
        ip_adapter_state=c["ip_adapter_state"] if ip else None,
    )


def attribute_map(value: float) -> np.ndarray:
    boxes = np.array([[16, 12, 44, 48]], np.float32)
    attrs = FaceAttributes(
        xyxy=boxes, probs=np.full((1, NUM_ATTRIBUTES), value, np.float32),
        observed=np.full((1, NUM_ATTRIBUTES), value, np.float32), keypoints=landmarks_from_boxes(boxes),
        regions=face_regions(boxes, (SIZE, SIZE)), seeds=np.full(1, -1, np.int64), frame_size=(SIZE, SIZE),
    )
    return build_attribute_map(attrs, SIZE, SIZE)[None]


def generate(pipe: AdapterPipeline, maps: np.ndarray, ip_image: np.ndarray, **kwargs) -> np.ndarray:
    noise = FixedNoise(3)
    latents = noise.draw(pipe.latent_shape(1, SIZE, SIZE), pipe.device, pipe.dtype)
    embeds = pipe.encode_prompt("a photo of people", "blurry", 7.0)
    denoise = {"num_inference_steps": 2, "noise_seed": 3}
    shared = {f.name for f in dataclasses.fields(Denoise)}
    options = {"ip_images": [ip_image] if pipe.has_ip_adapter else None}
    for key, value in kwargs.items():
        (denoise if key in shared else options)[key] = value
    return pipe(maps, Denoise(embeds, SIZE, SIZE, latents, noise.generators(1), **denoise), **options).images
