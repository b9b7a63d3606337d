"""Tiny, seeded Stable Diffusion + ControlNet components built in code (no hub), for tests and benchmarks.

Shapes follow diffusers' own ``get_dummy_components`` (minus its hub download): an x8 VAE like SD's, a
two-level UNet with cross-attention width 32, a CLIP text encoder of width 32 and a byte-level tokenizer
whose vocabulary is written here. ``ControlNetModel.from_unet`` zero-initialises the zero-convolutions, which
would make every ControlNet a no-op; ``perturb_zero_convs`` gives them seeded random weights so that control
maps and the identity branch really change the result.
"""

from __future__ import annotations

import json
from pathlib import Path

CONTROL_KINDS = ("depth", "normalbae", "seg", "openpose", "lineart")


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: every byte maps to one printable character.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A byte-level BPE vocabulary (every byte, with and without ``</w>``) and a few merges."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = ["p e", "pe r", "per s", "o n</w>"]
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab))
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab_file, merges_file


def perturb_zero_convs(controlnet, seed: int, scale: float = 0.5) -> None:  # noqa: ANN001 - ControlNetModel
    """Give the zero-initialised output convolutions of a ControlNet seeded random weights."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.copy_(torch.randn(block.weight.shape, generator=generator) * scale)
            block.bias.copy_(torch.randn(block.bias.shape, generator=generator) * scale * 0.1)


def tiny_components(tmp: Path, seed: int = 0) -> dict:
    """UNet, VAE, text encoder, tokenizer, five ControlNets and an identity ControlNet (all seeded, CPU, fp32)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=600, max_position_embeddings=77,
    ))
    vocab_file, merges_file = write_tokenizer_files(tmp / "tokenizer_src")
    tokenizer = CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file), model_max_length=77)
    controlnets = {}
    for i, kind in enumerate((*CONTROL_KINDS, "identity")):
        torch.manual_seed(seed + 10 + i)
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
        perturb_zero_convs(net, seed + 20 + i)
        controlnets[kind] = net.eval()
    for module in (unet, vae, text_encoder):
        module.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "controlnets": controlnets}


def save_tiny_models(components: dict, folder: Path) -> dict[str, str]:
    """Save the components as a diffusers base folder plus one folder per ControlNet (safetensors).

    Returns the ``[models]`` table of a TOML config that points at them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "base"
    components["unet"].save_pretrained(base / "unet")
    components["text_encoder"].save_pretrained(base / "text_encoder")
    components["tokenizer"].save_pretrained(base / "tokenizer")
    components["vae"].save_pretrained(folder / "vae")
    table = {"base": str(base), "vae": str(folder / "vae")}
    for kind, net in components["controlnets"].items():
        net.save_pretrained(folder / f"controlnet_{kind}")
        table[kind if kind == "identity" else f"controlnet-{kind}"] = str(folder / f"controlnet_{kind}")
    return table


def tiny_depth_model():  # noqa: ANN201 - (DPTForDepthEstimation, DPTImageProcessor)
    """A DPT depth estimator of ~0.1 M random parameters, and its processor at 32 px."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(3)
    model = DPTForDepthEstimation(DPTConfig(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=32,
        patch_size=8, neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16, backbone_out_indices=[0, 1, 2, 3],
        head_in_index=-1,
    ))
    return model.eval(), DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)


def tiny_seg_model():  # noqa: ANN201 - (UperNetForSemanticSegmentation, SegformerImageProcessor)
    """A UperNet/ConvNeXt segmenter with ADE20k's 150 labels, random weights, and its processor at 32 px."""
    import torch
    from transformers import ConvNextConfig, SegformerImageProcessor, UperNetConfig, UperNetForSemanticSegmentation

    torch.manual_seed(4)
    backbone = ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    model = UperNetForSemanticSegmentation(UperNetConfig(
        backbone_config=backbone, hidden_size=16, auxiliary_in_channels=16, use_auxiliary_head=False, num_labels=150,
    ))
    return model.eval(), SegformerImageProcessor(size={"height": 32, "width": 32})


def tiny_lineart_state() -> dict:
    """controlnet-aux's real lineart network (4.3 M parameters), seeded random weights."""
    import torch
    from controlnet_aux.lineart import Generator

    torch.manual_seed(5)
    return Generator(3, 1, 3).state_dict()


def save_tiny_annotators(folder: Path) -> dict[str, str]:
    """Depth and segmentation as transformers folders, lineart as a converted ``sk_model.safetensors``."""
    from safetensors.torch import save_file

    table = {}
    for kind, (model, processor) in (("depth", tiny_depth_model()), ("seg", tiny_seg_model())):
        model.save_pretrained(folder / f"annotator_{kind}")
        processor.save_pretrained(folder / f"annotator_{kind}")
        table[f"annotator-{kind}"] = str(folder / f"annotator_{kind}")
    (folder / "annotators").mkdir(parents=True, exist_ok=True)
    lineart = {k: v.contiguous() for k, v in tiny_lineart_state().items()}
    save_file(lineart, str(folder / "annotators" / "sk_model.safetensors"))
    table["annotator-lineart"] = str(folder / "annotators")
    return table


def write_config(path: Path, models: dict[str, str], **options) -> Path:
    """A TOML config (options as top-level keys, kebab-case; tables for dict values)."""
    lines, tables = [], {"models": models}
    for key, value in options.items():
        if isinstance(value, dict):
            tables[key.replace("_", "-")] = value
        else:
            lines.append(f"{key.replace('_', '-')} = {json.dumps(value)}")
    for name, table in tables.items():
        lines.append(f"\n[{name}]")
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def stand_in_builder(kind: str):  # noqa: ANN201 - a BUILDERS-compatible factory
    """A control-map annotator that needs no weights, for the two heavy controlnet-aux networks.

    OpenPose (127 M parameters, runs at 368 px whatever the input) and NormalBae (72 M) with random weights
    take seconds per frame on this CPU; end-to-end tests put this stand-in in their place (grey-level
    gradients as "normals", Canny edges as "pose"), and say so.
    """
    import cv2
    import numpy as np

    from camouflage_video.annotators.control_maps import ControlMapAnnotator

    class StandIn(ControlMapAnnotator):
        def compute(self, image):  # noqa: ANN001, ANN202
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            if kind == "openpose":
                return np.repeat(cv2.Canny(grey, 100, 200)[..., None], 3, axis=2)
            gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
            normal = np.stack([gx, gy, np.full_like(gx, 255)], axis=-1)
            return np.clip(normal / 8 + 128, 0, 255).astype(np.uint8)

    StandIn.kind = kind

    def build(source, device, **kwargs):  # noqa: ANN001, ANN202
        return StandIn(**kwargs)

    return build


def tiny_base_anonymizer(components: dict, **options):  # noqa: ANN201 - CamouflageBase
    """CAMOUFLaGE-Base on the tiny components, 64 px, 4 steps, with weightless annotator stand-ins."""
    from camouflage_video.models import SD15_SCHEDULER
    from camouflage_video.pipelines.camouflage_base import BaseOptions, CamouflageBase
    from camouflage_video.pipelines.controlnet_guidance import AnonymizationGuidancePipeline
    from camouflage_video.pipelines.generative import make_scheduler

    opts = BaseOptions.from_mapping({
        "prompt": "a person", "steps": 4, "resolution": 64, "annotate_resolution": 64,
        "scheduler": "dpmpp-2m-sde-karras", "scene_cut_threshold": 0.0, **options,
    })
    pipe = AnonymizationGuidancePipeline(
        vae=components["vae"], text_encoder=components["text_encoder"], tokenizer=components["tokenizer"],
        unet=components["unet"], scheduler=make_scheduler(opts.scheduler, SD15_SCHEDULER),
        controlnets={k: components["controlnets"][k] for k in opts.kinds},
        identity_controlnet=components["controlnets"]["identity"],
    )
    annotators = [stand_in_builder(k)(None, "cpu", every=opts.annotate_every[k], resolution=64) for k in opts.kinds]
    return CamouflageBase(pipe, opts, annotators)


def annotate(anonymizer, ctxs: list) -> list:  # noqa: ANN001
    """Run the anonymizer's annotators on each context, as the runner does."""
    for ctx in ctxs:
        for annotator in anonymizer.annotators():
            annotator.annotate(ctx)
    return ctxs
