"""CAMOUFLaGE-Light vs CAMOUFLaGE-Base: model evaluations and wall time per frame, same components and steps.

Both methods get the same tiny SD 1.5 stand-in (UNet, VAE, text encoder: tests/tiny_models.py, the same seed),
the same scheduler, steps, generation size, prompt and frames, and run side by side, frame by frame
alternating, so that the load of a shared machine hits both alike. Base gets its five ControlNets and the
identity ControlNet; its control-map annotators are weightless stand-ins (so its annotation cost here is ~0,
which favours Base). Light gets its T2I-Adapter, IP-Adapter and image encoder, and its real attribute
annotator (pyfacer's FaRL architecture at a tiny width; CenterFace detection and tracking run before both
and are not counted).

Two settings: every frame a full denoising ("per image", as the paper's 10.8 s vs 2.8 s), and the video
defaults (latent reuse 0.25, a keyframe every 24 frames). Goal: Light <= 0.35x Base per frame.

    python -m benchmarks.light_vs_base [--steps 10] [--frames 8] [--resolution 128]   # from the checkout's root
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks._common import write_results


def build(steps: int, resolution: int, temporal: dict, tmp: Path) -> tuple:
    import torch

    from camouflage_video.annotators.attribute_map import AttributeStabilizer
    from camouflage_video.annotators.attributes import (
        AttributeClassifier,
        FaceAnalyzer,
        FaceAttributeAnnotator,
        attribute_network_from_state_dict,
    )
    from camouflage_video.models import SD15_SCHEDULER
    from camouflage_video.pipelines.adapters import AdapterPipeline
    from camouflage_video.pipelines.generative import make_scheduler
    from camouflage_video.pipelines.camouflage_light import CamouflageLight, LightOptions
    from tests.tiny_light import tiny_adapter, tiny_attribute_state, tiny_image_encoder, tiny_ip_adapter_state
    from tests.tiny_models import tiny_base_anonymizer, tiny_components

    shared = {"prompt": "a person", "steps": steps, "resolution": resolution, "scheduler": "dpmpp-sde-karras",
              "seed": 1, "device": "cpu", **temporal}
    c = tiny_components(tmp)
    # Light gets copies of the very same UNet, VAE and text encoder, made before either pipeline hooks its
    # call counters onto them (a deep copy would carry the other's hooks along), and its IP-Adapter layers
    # then go into its own UNet.
    import copy

    own = {name: copy.deepcopy(c[name]) for name in ("unet", "vae", "text_encoder")}
    base = tiny_base_anonymizer(c, **shared)  # Base's own test/benchmark helper: 5 ControlNets + identity

    encoder, processor = tiny_image_encoder(30)
    light_pipe = AdapterPipeline(
        vae=own["vae"], text_encoder=own["text_encoder"], tokenizer=c["tokenizer"], unet=own["unet"],
        scheduler=make_scheduler("dpmpp-sde-karras", SD15_SCHEDULER), adapter=tiny_adapter(own["unet"], 31),
        image_encoder=encoder, feature_extractor=processor,
        ip_adapter_state=tiny_ip_adapter_state(own["unet"], encoder.config.projection_dim, 32),
    )
    classifier = AttributeClassifier(attribute_network_from_state_dict(tiny_attribute_state()), "cpu")
    attributes = FaceAttributeAnnotator(FaceAnalyzer(classifier), AttributeStabilizer(seed=1))
    light = CamouflageLight(light_pipe, LightOptions.from_mapping(shared), attributes)
    torch.set_num_threads(1)  # a fair share of a shared machine, the same for both
    return base, light


def run(base, light, frames: list[np.ndarray]) -> dict[str, dict]:
    """Frame by frame, alternating methods; returns per-method mean seconds per frame and evaluations per frame."""
    from camouflage_video.annotators.faces import CenterFaceDetector
    from camouflage_video.annotators.tracking import FaceTracker
    from camouflage_video.frame import Frame, FrameContext

    detector = CenterFaceDetector()
    results = {}
    seconds: dict[str, list[float]] = {"base": [], "light": []}
    trackers = {"base": FaceTracker(Fraction(25)), "light": FaceTracker(Fraction(25))}
    for index, image in enumerate(frames):
        for name, method in (("base", base), ("light", light)):
            ctx = FrameContext(Frame(image, index, pts=index * 40, time_base=Fraction(1, 1000)))
            detector.annotate(ctx)
            trackers[name].annotate(ctx)
            t0 = time.perf_counter()
            for annotator in method.annotators():
                annotator.annotate(ctx)
            method(ctx)
            seconds[name].append(time.perf_counter() - t0)
    for name, method in (("base", base), ("light", light)):
        stats = method.stats()
        results[name] = {
            "seconds_per_frame": statistics.fmean(seconds[name]),
            "generation_seconds_per_frame": sum(v for k, v in stats["seconds"].items()
                                                if k in ("prepare", "denoise", "decode")) / len(frames),
            "evaluations_per_frame": stats["model_evaluations_per_frame"],
            "keyframes": stats["keyframes"],
        }
    return results


def describe(evaluations: dict[str, float]) -> str:
    unet = evaluations.get("unet", 0)
    nets = sum(v for k, v in evaluations.items() if k.startswith("controlnet."))
    adapters = evaluations.get("t2i_adapter", 0) + evaluations.get("image_encoder", 0)
    parts = [f"UNet {unet:g}"]
    if nets:
        parts.append(f"ControlNets {nets:g}")
    if adapters:
        parts.append(f"T2I-Adapter + image encoder {adapters:g}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args(argv)

    from camouflage_video.samples import sample_frames

    frames = list(sample_frames(args.frames, (args.resolution * 16 // 9 // 16 * 16, args.resolution)))
    rows = []
    for label, temporal in (("every frame a keyframe", {"reuse_strength": 1.0}),
                            ("video defaults (reuse 0.25)", {"reuse_strength": 0.25, "keyframe_every": 24,
                                                            "scene_cut_threshold": 0.0})):
        with tempfile.TemporaryDirectory() as tmp:
            base, light = build(args.steps, args.resolution, temporal, Path(tmp))
            result = run(base, light, frames)
        b, li = result["base"], result["light"]
        ratio = li["seconds_per_frame"] / b["seconds_per_frame"]
        gen_ratio = li["generation_seconds_per_frame"] / b["generation_seconds_per_frame"]
        rows.append(
            f"| {label} | {b['seconds_per_frame']:.2f} | {li['seconds_per_frame']:.2f} | **{ratio:.2f}x** | "
            f"{gen_ratio:.2f}x | {describe(b['evaluations_per_frame'])} | {describe(li['evaluations_per_frame'])} |"
        )
        print(rows[-1], flush=True)
    body = (
        f"`python -m benchmarks.light_vs_base --steps {args.steps} --frames {args.frames} --resolution "
        f"{args.resolution}`: tiny random SD 1.5 stand-in shared by both, DPM++ SDE Karras, {args.steps} steps, "
        f"CFG 7, {args.frames} frames of the sample pan at {args.resolution} px (short side), one torch thread "
        "each, methods alternating frame by frame. Base: 5 ControlNets + identity ControlNet, a_s = 1, weightless "
        "control-map stand-ins. Light: T2I-Adapter (41 channels), IP-Adapter + image encoder, FaRL attribute "
        "annotator. Seconds per frame: mean over the frames of the method's annotators + generation; generation ratio: "
        "the pipeline's own stage seconds. Goal: Light <= 0.35x Base (paper: 2.8 s vs 10.8 s per image). "
        "On this shared 2-core machine the time ratio moves between runs (0.20x to 0.34x per image seen); the "
        "evaluation counts are exact.\n\n"
        "| setting | Base s/frame | Light s/frame | Light/Base | generation only | Base evaluations/frame | "
        "Light evaluations/frame |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    if not args.no_write:
        write_results("CAMOUFLaGE-Light vs Base (benchmarks/light_vs_base.py)", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
