"""CAMOUFLaGE-Base and CAMOUFLaGE-Light on a GPU: seconds per frame and peak GPU memory, real-size random weights.

Measured per method, dtype (fp16, bf16) and generation size (512, 768 px):

* per image, batch 1: every frame a full denoising (the paper's setting: 10.8 s for Base on its GPU);
* per image, best batch: keyframes batched as ``batch_size = "auto"`` chooses from the free memory measured on
  the first frame (capped by ``--max-batch``);
* video defaults: latent reuse 0.25 with flow warping and a keyframe every 24 frames. A keyframe (K) and the
  reuse frames after it (R, their mean) are measured; the figure is (K + 23 R) / 24, what 24 frames cost.

The models are the default checkpoints' architectures (tests/realsize_models.py holds their published configs)
with random weights, built on the device: speed and memory do not depend on the weights. Only the generation
is timed: control maps and face attributes are given, as the annotators would write them (they run on other
networks, measured elsewhere). ``--device cpu --smoke`` runs the same code on the tiny models of
tests/tiny_models.py at 64 and 96 px with 2 steps, and prints the same table.

Imports only torch, diffusers, transformers, safetensors, numpy, opencv and this package's pipelines: the GPU
machine has no PyAV, controlnet-aux or pyfacer. See benchmarks/README.md for the prepared GPU command.

    python -m benchmarks.generative_gpu --device cuda [--out DIR] [--record]
    python -m benchmarks.generative_gpu --device cpu --smoke
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

GOALS = {
    ("base", "video defaults", 512): ("Base video, 512 px: >= 2 frames/s", 0.5),
    ("light", "video defaults", 512): ("Light video: >= 8 frames/s", 0.125),
    ("base", "per image, batch 1", 768): ("Base per image, 768 px: <= 2 s (paper: 10.8 s)", 2.0),
}
KINDS = ("depth", "normalbae", "seg", "openpose", "lineart")


def components(method: str, smoke: bool, device, dtype, tmp: Path) -> dict:  # noqa: ANN001
    """Random-weight components on ``device`` at ``dtype`` (the VAE in float32, as the builders load it)."""
    import torch

    if smoke:
        from tests.tiny_light import tiny_adapter, tiny_image_encoder, tiny_ip_adapter_state
        from tests.tiny_models import tiny_components

        c = tiny_components(tmp)
        if method == "light":
            encoder, processor = tiny_image_encoder(30)
            c.update(adapter=tiny_adapter(c["unet"], 31), image_encoder=encoder, feature_extractor=processor,
                     ip_adapter_state=tiny_ip_adapter_state(c["unet"], encoder.config.projection_dim, 32))
    else:
        c = realsize_components(method, device, dtype, tmp)
    out = {"tokenizer": c["tokenizer"], "vae": c["vae"].to(device, torch.float32)}
    for name in ("unet", "text_encoder", "adapter", "image_encoder"):
        if name in c:
            out[name] = c[name].to(device, dtype).eval()
    if method == "base":
        out["controlnets"] = {k: v.to(device, dtype).eval() for k, v in c["controlnets"].items()}
    if "ip_adapter_state" in c:
        out["feature_extractor"] = c["feature_extractor"]
        out["ip_adapter_state"] = {g: {k: v.to(device, dtype) for k, v in t.items()}
                                   for g, t in c["ip_adapter_state"].items()}
    return out


def realsize_components(method: str, device, dtype, tmp: Path) -> dict:  # noqa: ANN001
    """The default checkpoints' architectures, random weights, initialised on ``device`` directly at ``dtype``."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, T2IAdapter, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from tests import realsize_models as real
    from tests.tiny_models import perturb_zero_convs

    real.write_clip_tokenizer(tmp / "tokenizer")
    c = {"tokenizer": CLIPTokenizer.from_pretrained(str(tmp / "tokenizer"))}
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # no float32 copy of six ControlNets first
    try:
        with torch.device(device):  # random initialisation on the GPU: seconds, not minutes
            torch.manual_seed(0)
            c["unet"] = UNet2DConditionModel(**real.SD15_UNET)
            c["vae"] = AutoencoderKL(**real.FT_MSE_VAE)
            c["text_encoder"] = CLIPTextModel(CLIPTextConfig(**real.CLIP_L14_TEXT))
            if method == "base":
                c["controlnets"] = {}
                for kind in (*KINDS, "identity"):
                    c["controlnets"][kind] = ControlNetModel(**real.CONTROLNET_V11)
            else:
                c["adapter"] = T2IAdapter(**real.T2I_ADAPTER_41)
                c["image_encoder"] = CLIPVisionModelWithProjection(CLIPVisionConfig(**real.CLIP_H14_VISION))
                c["feature_extractor"] = CLIPImageProcessor(size=224, crop_size=224)
    finally:
        torch.set_default_dtype(default_dtype)
    # Seeded CPU generators: outside the device context, whose factories would put their draws on the GPU.
    for i, net in enumerate(c.get("controlnets", {}).values()):
        perturb_zero_convs(net, i, scale=0.01)
    if method == "light":
        state = real.realsize_ip_adapter_state()
        c["ip_adapter_state"] = {g: {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(g + ".")}
                                 for g in ("image_proj", "ip_adapter")}
    return c


def anonymizer(method: str, c: dict, options: dict):  # noqa: ANN201
    """The method's video anonymizer over the given components (annotators are not run: see the docstring)."""
    from camouflage_video.models import SD15_SCHEDULER
    from camouflage_video.pipelines.generative import make_scheduler

    scheduler = make_scheduler(options.get("scheduler", "dpmpp-sde-karras"), SD15_SCHEDULER)
    if method == "base":
        from camouflage_video.pipelines.camouflage_base import BaseOptions, CamouflageBase
        from camouflage_video.pipelines.controlnet_guidance import AnonymizationGuidancePipeline

        nets = dict(c["controlnets"])
        identity = nets.pop("identity")
        pipe = AnonymizationGuidancePipeline(vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"],
                                             unet=c["unet"], scheduler=scheduler, controlnets=nets,
                                             identity_controlnet=identity)
        opts = BaseOptions.from_mapping({"prompt": "a person in a street", **options})

        class GivenMap:  # the control maps are already in each frame's extras
            calls = 0

            def __init__(self, kind: str) -> None:
                self.kind = kind

        return CamouflageBase(pipe, opts, [GivenMap(k) for k in pipe.names])
    from camouflage_video.pipelines.adapters import AdapterPipeline
    from camouflage_video.pipelines.camouflage_light import CamouflageLight, LightOptions

    pipe = AdapterPipeline(vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
                           scheduler=scheduler, adapter=c["adapter"], image_encoder=c["image_encoder"],
                           feature_extractor=c["feature_extractor"], ip_adapter_state=c["ip_adapter_state"])
    return CamouflageLight(pipe, LightOptions.from_mapping(options), attributes=None)


def frames(count: int, width: int, height: int, start: int = 0) -> list:
    """A slow pan over a smooth random texture, with the extras the annotators would have written."""
    import cv2

    from camouflage_video.annotators.attribute_map import (
        FACE_ATTRIBUTES_KEY,
        NUM_ATTRIBUTES,
        FaceAttributes,
        face_regions,
        landmarks_from_boxes,
    )
    from camouflage_video.annotators.control_maps import CONTROL_MAPS_KEY
    from camouflage_video.frame import Frame, FrameContext

    rng = np.random.default_rng(0)
    canvas = cv2.resize(rng.integers(0, 255, (height // 8, width // 4, 3), dtype=np.uint8), (width * 2, height),
                        interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(start, start + count):
        image = np.ascontiguousarray(canvas[:, 2 * i: 2 * i + width])
        ctx = FrameContext(Frame(image, i, pts=i * 40, time_base=Fraction(1, 1000)))
        ctx.extras[CONTROL_MAPS_KEY] = dict.fromkeys(KINDS, image)
        box = np.array([[width * 0.4, height * 0.2, width * 0.6, height * 0.55]], np.float32)
        ctx.extras[FACE_ATTRIBUTES_KEY] = FaceAttributes(
            xyxy=box, probs=np.full((1, NUM_ATTRIBUTES), 0.5, np.float32),
            observed=np.full((1, NUM_ATTRIBUTES), 0.5, np.float32), keypoints=landmarks_from_boxes(box),
            regions=face_regions(box, (width, height)), seeds=np.full(1, 7, np.int64), frame_size=(width, height))
        out.append(ctx)
    return out


def timed(anon, ctxs: list, sync) -> float:  # noqa: ANN001
    """Seconds to anonymize ``ctxs`` in one ``process_batch`` call (device work finished)."""
    sync()
    t0 = time.perf_counter()
    anon.process_batch(ctxs)
    sync()
    return time.perf_counter() - t0


def measure(method: str, c: dict, size: int, args, device) -> list[dict]:  # noqa: ANN001
    """The three settings for one method, dtype and size."""
    import torch

    gpu = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if gpu else (lambda: None)
    width, height = size * 16 // 9 // 8 * 8, size  # 16:9 frames, generated with the short side at ``size``
    common = {"resolution": size, "steps": args.steps, "device": str(device), "scene_cut_threshold": 0.0}
    rows = []

    def peak_reset() -> None:
        if gpu:
            torch.cuda.reset_peak_memory_stats(device)

    def peak_gib() -> float | None:
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if gpu else None

    # Per image: the first frame warms up and measures the batch "auto" chooses; then batch 1, then that batch.
    anon = anonymizer(method, c, {**common, "reuse_strength": 1.0, "batch_size": "auto"})
    timed(anon, frames(1, width, height), sync)
    best = min(anon.batch_size, args.max_batch) if gpu else 2
    anon.batch_size = 1
    peak_reset()
    seconds = [timed(anon, frames(1, width, height, start=1 + i), sync) for i in range(args.repeat)]
    keyframe = float(np.median(seconds))
    rows.append({"setting": "per image, batch 1", "batch": 1, "seconds_per_frame": keyframe, "peak_gib": peak_gib()})
    anon.batch_size = best
    peak_reset()
    batch_seconds = timed(anon, frames(best, width, height, start=10), sync)
    rows.append({"setting": "per image, best batch", "batch": best, "seconds_per_frame": batch_seconds / best,
                 "peak_gib": peak_gib(), "batch_reductions": anon.stats()["batch_reductions"]})
    del anon
    gc.collect()

    # Video defaults: one keyframe, then reuse frames; 24 frames cost K + 23 R.
    anon = anonymizer(method, c, {**common, "reuse_strength": 0.25, "keyframe_every": 24})
    ctxs = frames(1 + args.reuse_frames, width, height, start=20)
    unet = anon.pipeline.calls.counts
    peak_reset()
    k = timed(anon, ctxs[:1], sync)
    keyframe_unet = unet["unet"]
    reuse = [timed(anon, [ctx], sync) for ctx in ctxs[1:]]
    r = float(np.mean(reuse))
    stats = anon.stats()
    assert stats["keyframes"] == 1 and stats["reused_frames"] == args.reuse_frames, stats
    # UNet evaluations (counted by forward hooks) tell what the times on a tiny model on a shared CPU cannot:
    # that a reuse frame really runs fewer denoising steps than a keyframe.
    rows.append({"setting": "video defaults", "batch": 1, "seconds_per_frame": (k + 23 * r) / 24,
                 "keyframe_s": k, "reuse_frame_s": r, "peak_gib": peak_gib(), "keyframe_unet": keyframe_unet,
                 "reuse_frame_unet": (unet["unet"] - keyframe_unet) / args.reuse_frames})
    for row in rows:
        row.update(method=method, size=size, generated=f"{width}x{height}", steps=args.steps,
                   attention=stats["settings"].get("attention"))
    del anon
    gc.collect()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | dtype | size | setting | batch | s/frame | frames/s | peak GPU GiB | goal |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        goal = GOALS.get((row["method"], row["setting"], row["size"]))
        verdict = ""
        if goal:
            text, limit = goal
            spf = row["seconds_per_frame"]
            verdict = f"{text}: {'met' if spf <= limit else f'missed by {spf / limit:.1f}x'}"
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
        extra = f" (K {row['keyframe_s']:.2f} s, R {row['reuse_frame_s']:.2f} s)" if "keyframe_s" in row else ""
        lines.append(f"| {row['method']} | {row['dtype']} | {row['generated']} | {row['setting']}{extra} | "
                     f"{row['batch']} | {row['seconds_per_frame']:.3f} | {1 / row['seconds_per_frame']:.2f} | "
                     f"{peak} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny models, 64/96 px, 2 steps (CI, any machine)")
    parser.add_argument("--methods", default="base,light")
    parser.add_argument("--dtypes", default=None, help="default: float16,bfloat16 (cuda), float32,bfloat16 (cpu)")
    parser.add_argument("--sizes", default=None, help="default: 512,768 (smoke: 64,96)")
    parser.add_argument("--steps", type=int, default=None, help="default: 25, the methods' default (smoke: 2)")
    parser.add_argument("--repeat", type=int, default=None, help="timed per-image frames at batch 1, median "
                        "(default 2; smoke 1)")
    parser.add_argument("--reuse-frames", type=int, default=None, help="timed reuse frames after the keyframe "
                        "(default 3; smoke 2)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--budget-s", type=float, default=0, help="start no new configuration after this long")
    parser.add_argument("--out", type=Path, default=None, help="write results.json and table.md here")
    parser.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    import torch

    from camouflage_video.pipelines.generative import resolve_device

    args.steps = args.steps or (2 if args.smoke else 25)
    args.repeat = args.repeat or (1 if args.smoke else 2)
    args.reuse_frames = args.reuse_frames or (2 if args.smoke else 3)
    sizes = [int(s) for s in (args.sizes or ("64,96" if args.smoke else "512,768")).split(",")]
    device, _ = resolve_device(args.device, "auto")
    dtypes = (args.dtypes or ("float16,bfloat16" if device.type == "cuda" else "float32,bfloat16")).split(",")
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny models gain nothing from more threads on a shared machine
    started, rows = time.perf_counter(), []
    # Every method in the first dtype before the second: a run cut short by its budget still has both methods.
    for dtype_name in dtypes:
        for method in args.methods.split(","):
            if args.budget_s and time.perf_counter() - started > args.budget_s:
                print(f"budget of {args.budget_s:.0f} s spent: skipping {method} {dtype_name}", flush=True)
                continue
            _, dtype = resolve_device(str(device), dtype_name)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                c = components(method, args.smoke, device, dtype, Path(tmp))
                print(f"{method} {dtype_name}: components built in {time.perf_counter() - t0:.1f} s", flush=True)
                for size in sizes:
                    for row in measure(method, c, size, args, device):
                        rows.append({**row, "dtype": dtype_name})
                        print(json.dumps(rows[-1]), flush=True)
                del c
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    report = table(rows)
    print(report)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {time.perf_counter() - started:.0f} s in all", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"device": name, "rows": rows}, indent=1))
        (args.out / "table.md").write_text(report + "\n")
    if args.record:
        from benchmarks._common import write_results

        write_results("CAMOUFLaGE on a GPU (benchmarks/generative_gpu.py)", record(rows, report, name, args))
    return 0


def record(rows: list[dict], report: str, device: str, args) -> str:  # noqa: ANN001
    """RESULTS.md's section: the goals beside what was measured, then the table."""
    lines = ["Goals, on one H100/H200-class GPU:", "", "| goal | measured | status |", "| --- | --- | --- |"]
    for (method, setting, size), (text, limit) in GOALS.items():
        found = [r for r in rows if (r["method"], r["setting"], r["size"]) == (method, setting, size)]
        if args.smoke or not found:
            lines.append(f"| {text} | - | not measured: no accelerator lent |")
            continue
        best = min(found, key=lambda r: r["seconds_per_frame"])
        spf = best["seconds_per_frame"]
        status = "met" if spf <= limit else f"missed by {spf / limit:.1f}x"
        lines.append(f"| {text} | {spf:.2f} s/frame ({best['dtype']}) | {status} |")
    lines += ["", "Levers where a goal is missed, none measured yet: fewer steps (a distilled or LCM model: 4-8 "
              "instead of 25), a TAESD decoder, TensorRT or torch.compile'd networks, fewer ControlNets."]
    what = (f"CPU smoke run on the machine below: tiny models ({args.steps} steps, {args.sizes or '64,96'} px), the "
            "code paths only; these speeds say nothing about a GPU." if args.smoke
            else f"Device: {device}; real-size random weights, {args.steps} steps.")
    return "\n".join(lines) + f"\n\n{what}\n\n{report}"


if __name__ == "__main__":
    raise SystemExit(main())
