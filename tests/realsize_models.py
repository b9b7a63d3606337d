"""Full-size architectures of the default checkpoints, random weights, saved in the layouts the hubs publish.

The configs below are the published ``config.json`` files of the default components, written out here so that
nothing is downloaded: a test that builds from them catches what tiny models hide (cross-attention width 768,
ControlNet conditioning channels, the T2I-Adapter's four feature levels, the IP-Adapter's 16 attention layers and
its 1024-wide image embedding, the single-file key layout of an SD 1.5 checkpoint).

Layouts written (``build_realsize_models``):

* ``Realistic_Vision_V5.1_fp16-no-ema.safetensors``: the base as one original-layout (LDM) checkpoint in fp16,
  UNet and text encoder keys only (the VAE comes from its own component, as this project loads it), and
  ``sd15-config/``: the diffusers configs and tokenizer a single file needs offline (``base_config``);
* ``control_v11_sd15/``: one ControlNet v1.1 folder holding only ``diffusion_pytorch_model.fp16.safetensors``,
  as the lllyasviel repos publish it; the five kinds share this architecture, so they share the folder;
* ``control_v11f1e_sd15_tile/``: the identity ControlNet, likewise (the fp32 name is exercised by the VAE);
* ``sd-vae-ft-mse/``: the VAE (fp32, as published);
* ``IP-Adapter/models/``: ``ip-adapter_sd15.safetensors`` (fp16) and ``image_encoder/`` (CLIP ViT-H/14 vision
  with projection, fp16);
* ``t2i_adapter/``: Light's 41-channel T2I-Adapter as ``train-light`` writes it (fp32);
* ``face_attributes/``: pyfacer's FaRL classifier at a tiny width (its real size is not what this checks).

About 5 GB of disk; each module is freed once written, so building peaks near 6 GB (the UNet in fp32 and its
fp16 checkpoint).
"""

from __future__ import annotations

import gc
import gzip
import importlib.util
import json
from pathlib import Path

from tests.tiny_models import _bytes_to_unicode

# runwayml/stable-diffusion-v1-5 (and every SD 1.5 fine-tune, Realistic Vision among them): unet/config.json
SD15_UNET = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
# stabilityai/sd-vae-ft-mse: config.json
FT_MSE_VAE = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# openai/clip-vit-large-patch14's text tower, as SD 1.5's text_encoder/config.json
CLIP_L14_TEXT = {
    "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu",
    "hidden_size": 768, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "num_attention_heads": 12, "num_hidden_layers": 12,
    "pad_token_id": 1, "projection_dim": 768, "vocab_size": 49408,
}
# lllyasviel/control_v11p_sd15_{depth,normalbae,seg,openpose,lineart} and control_v11f1e_sd15_tile: config.json
CONTROLNET_V11 = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "class_embed_type": None, "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb", "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "num_class_embeds": None,
    "only_cross_attention": False, "projection_class_embeddings_input_dim": None,
    "resnet_time_scale_shift": "default", "upcast_attention": False, "use_linear_projection": False,
}
# h94/IP-Adapter: models/image_encoder/config.json (laion CLIP ViT-H/14)
CLIP_H14_VISION = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 1280, "image_size": 224,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 5120, "layer_norm_eps": 1e-05,
    "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 32, "patch_size": 14, "projection_dim": 1024,
}
# The TencentARC SD 1.5 full adapters' config.json, with Light's 41 input channels.
T2I_ADAPTER_41 = {"adapter_type": "full_adapter", "channels": [320, 640, 1280, 1280], "downscale_factor": 8,
                  "in_channels": 41, "num_res_blocks": 2}
SD15_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "trained_betas": None,
}
SD15_TOKENIZER_CONFIG = {
    "add_prefix_space": False, "bos_token": "<|startoftext|>", "do_lower_case": True, "eos_token": "<|endoftext|>",
    "errors": "replace", "model_max_length": 77, "pad_token": "<|endoftext|>", "tokenizer_class": "CLIPTokenizer",
    "unk_token": "<|endoftext|>",
}
IP_ADAPTER_TOKENS = 4  # ip-adapter_sd15: the image embedding becomes 4 extra cross-attention tokens
BASE_FILE = "Realistic_Vision_V5.1_fp16-no-ema.safetensors"


def clip_vocabulary() -> tuple[dict[str, int], list[str], str]:
    """``(vocab, merges, where)``: CLIP's real 49,408-token BPE from open_clip's wheel (MIT), else a byte-level
    vocabulary with CLIP's special-token ids (49406, 49407) so token ids stay in the real embedding's range."""
    spec = importlib.util.find_spec("open_clip")
    bpe = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz" if spec and spec.origin else None
    alphabet = list(_bytes_to_unicode().values())
    if bpe is not None and bpe.is_file():
        # As CLIP's SimpleTokenizer builds it: bytes, bytes + </w>, the first 48,894 merges, the two specials.
        merges = gzip.open(bpe, "rt", encoding="utf-8").read().split("\n")[1: 49152 - 256 - 2 + 1]
        tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
        vocab = {token: i for i, token in enumerate(tokens + ["<|startoftext|>", "<|endoftext|>"])}
        return vocab, merges, "open_clip's bpe_simple_vocab_16e6"
    tokens = alphabet + [c + "</w>" for c in alphabet]
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab.update({"<|startoftext|>": 49406, "<|endoftext|>": 49407})
    return vocab, [], "a byte-level stand-in vocabulary"


def write_clip_tokenizer(folder: Path) -> str:
    """SD 1.5's ``tokenizer/`` files: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json."""
    vocab, merges, where = clip_vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(SD15_TOKENIZER_CONFIG))
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    return where


def _unet_key_map() -> list[tuple[str, str]]:
    """(original LDM prefix, diffusers prefix) of SD 1.5's UNet, as diffusers' conversion script maps them."""
    pairs = []
    for i in range(4):
        for j in range(2):
            pairs.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if i < 3:
                pairs.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(3):
            pairs.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if i > 0:
                pairs.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < 3:
            pairs.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            pairs.append((f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    pairs += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    return pairs


def unet_to_original(state: dict) -> dict:
    """A diffusers SD 1.5 UNet state dict in the original single-file layout (``model.diffusion_model.*``)."""
    whole = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    resnet = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
              ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
    layers = _unet_key_map()
    out = {}
    for key, value in state.items():
        name = key
        for hf, sd in whole.items():
            if name.startswith(hf):
                name = sd + name[len(hf):]
        if "resnets" in name:
            for hf, sd in resnet:
                name = name.replace(hf, sd)
        for sd, hf in layers:
            name = name.replace(hf, sd)
        out["model.diffusion_model." + name] = value
    return out


def build_realsize_models(folder: Path, seed: int = 0) -> dict:
    """Write every component (see the module docstring); returns ``{"models": table, "base_config": dir,
    "tokenizer": where its vocabulary came from}``."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, T2IAdapter, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from tests.tiny_light import tiny_attribute_state
    from tests.tiny_models import perturb_zero_convs

    folder.mkdir(parents=True, exist_ok=True)
    # 1. The base: configs and tokenizer for offline single-file loading, then the single file itself.
    config_dir = folder / "sd15-config"
    for sub, config in (("unet", {"_class_name": "UNet2DConditionModel", **SD15_UNET}),
                        ("text_encoder", {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
                                          **CLIP_L14_TEXT}),
                        ("scheduler", SD15_SCHEDULER_CONFIG), ("vae", {"_class_name": "AutoencoderKL", **FT_MSE_VAE})):
        (config_dir / sub).mkdir(parents=True, exist_ok=True)
        name = "scheduler_config.json" if sub == "scheduler" else "config.json"
        (config_dir / sub / name).write_text(json.dumps(config))
    (config_dir / "model_index.json").write_text(json.dumps(SD15_MODEL_INDEX))
    vocabulary = write_clip_tokenizer(config_dir / "tokenizer")

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**SD15_UNET)
    checkpoint = {k: v.half().contiguous() for k, v in unet_to_original(unet.state_dict()).items()}
    del unet
    gc.collect()
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT))
    # The original layout keeps CLIP's ``text_model.`` level, which transformers 5 state dicts no longer have.
    checkpoint.update({"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v.half().contiguous()
                       for k, v in text_encoder.state_dict().items()})
    del text_encoder
    save_file(checkpoint, str(folder / BASE_FILE))
    del checkpoint
    gc.collect()

    # 2. ControlNet v1.1 as fp16 variant files: one folder for the five kinds, one for the identity net.
    torch.manual_seed(seed + 2)
    controlnet = ControlNetModel(**CONTROLNET_V11)
    perturb_zero_convs(controlnet, seed + 3, scale=0.01)  # zero-initialised, they would hide every mistake
    controlnet.half()
    controlnet.save_pretrained(folder / "control_v11_sd15", variant="fp16")
    controlnet.save_pretrained(folder / "control_v11f1e_sd15_tile", variant="fp16")
    del controlnet
    gc.collect()

    # 3. The VAE, the T2I-Adapter, the IP-Adapter's image encoder and weights.
    torch.manual_seed(seed + 4)
    vae = AutoencoderKL(**FT_MSE_VAE)
    vae.save_pretrained(folder / "sd-vae-ft-mse")
    del vae
    torch.manual_seed(seed + 5)
    adapter = T2IAdapter(**T2I_ADAPTER_41)
    adapter.save_pretrained(folder / "t2i_adapter")
    del adapter
    ip_root = folder / "IP-Adapter"
    torch.manual_seed(seed + 6)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_H14_VISION))
    encoder.half().save_pretrained(ip_root / "models" / "image_encoder")
    del encoder
    gc.collect()
    save_file(realsize_ip_adapter_state(seed + 7), str(ip_root / "models" / "ip-adapter_sd15.safetensors"))
    (folder / "face_attributes").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in tiny_attribute_state().items()},
              str(folder / "face_attributes" / "face_attribute.farl.celeba.safetensors"))

    table = {
        "base": str(folder / BASE_FILE), "vae": str(folder / "sd-vae-ft-mse"),
        **{f"controlnet-{kind}": str(folder / "control_v11_sd15")
           for kind in ("depth", "normalbae", "seg", "openpose", "lineart")},
        "identity": str(folder / "control_v11f1e_sd15_tile"), "t2i-adapter": str(folder / "t2i_adapter"),
        "ip-adapter": str(ip_root), "image-encoder": str(ip_root), "face-attributes": str(folder / "face_attributes"),
    }
    return {"models": table, "base_config": str(config_dir), "tokenizer": vocabulary}


def realsize_ip_adapter_state(seed: int = 0) -> dict:
    """``ip-adapter_sd15.safetensors`` in its published flat layout and dtype (fp16): the image projection to
    4 tokens of width 768, and ``to_k_ip``/``to_v_ip`` for the 16 cross-attention layers (ids 1, 3, ... 31)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    cross, embed = SD15_UNET["cross_attention_dim"], CLIP_H14_VISION["projection_dim"]
    state = {
        "image_proj.proj.weight": torch.randn(IP_ADAPTER_TOKENS * cross, embed, generator=generator) * 0.02,
        "image_proj.proj.bias": torch.zeros(IP_ADAPTER_TOKENS * cross),
        "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross),
    }
    # SD 1.5's cross-attention layers in diffusers' processor order: down 0-2 (two each), up 1-3 (three each), mid.
    widths = [320] * 2 + [640] * 2 + [1280] * 2 + [1280] * 3 + [640] * 3 + [320] * 3 + [1280]
    for index, width in enumerate(widths):
        for name in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{2 * index + 1}.{name}.weight"] = torch.randn(width, cross, generator=generator) * 0.02
    return {k: v.half().contiguous() for k, v in state.items()}
