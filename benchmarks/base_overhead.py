"""Issue 3 benchmark: per-step cost of the project's denoising loop against diffusers' stock
StableDiffusionControlNetPipeline, same tiny components, seed and settings, measured side by side.
Goal: <= 1.05x.

Both sides do the same model work (five ControlNets on every step, anonymization scale 0, which the tests
prove bit-identical to the stock output); the stock side gets its own copies of the modules so that the
project's counting hooks are not on it. Runs alternate between the two, prompt encoding and noise drawing
inside the timed region on both sides; the clock is the process's CPU time (one torch thread), which other
jobs on a shared machine disturb far less than wall time. Two extra rows show what the project's loop does differently:
lineart stopping at 50% (skipped, where the stock pipeline multiplies it by 0) and the identity branch.

Run: PYTHONPATH=. python benchmarks/base_overhead.py
Writes the "CAMOUFLaGE-Base: loop overhead" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import copy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, write_results

sys.path.insert(0, str(REPO))  # benchmark scripts run from a checkout: use its package and test helpers

import diffusers  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from camouflage_video.pipelines.controlnet_guidance import AnonymizationGuidancePipeline  # noqa: E402
from camouflage_video.pipelines.sd15 import Denoise  # noqa: E402
from camouflage_video.pipelines.temporal import FixedNoise  # noqa: E402
from tests.tiny_models import CONTROL_KINDS, tiny_components  # noqa: E402

SEED, STEPS, REPEATS = 7, 10, 21


def scheduler():  # noqa: ANN201
    return diffusers.DPMSolverSDEScheduler(use_karras_sigmas=True, noise_sampler_seed=SEED)


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ours_parts = tiny_components(Path(tmp))
    stock_parts = copy.deepcopy(ours_parts)
    stock = diffusers.StableDiffusionControlNetPipeline(
        vae=stock_parts["vae"], text_encoder=stock_parts["text_encoder"], tokenizer=stock_parts["tokenizer"],
        unet=stock_parts["unet"], controlnet=[stock_parts["controlnets"][k] for k in CONTROL_KINDS],
        scheduler=scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    stock.set_progress_bar_config(disable=True)
    ours = AnonymizationGuidancePipeline(
        vae=ours_parts["vae"], text_encoder=ours_parts["text_encoder"], tokenizer=ours_parts["tokenizer"],
        unet=ours_parts["unet"], scheduler=scheduler(),
        controlnets={k: ours_parts["controlnets"][k] for k in CONTROL_KINDS},
        identity_controlnet=ours_parts["controlnets"]["identity"],
    )
    rng = np.random.default_rng(0)
    rows = []
    for size in (64, 128):
        maps = {k: Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for k in CONTROL_KINDS}

        def run_stock(lineart_end: float = 1.0, size: int = size, maps: dict = maps) -> None:
            stock(prompt="a person", negative_prompt="blurry", image=[maps[k] for k in CONTROL_KINDS], height=size,
                  width=size, num_inference_steps=STEPS, guidance_scale=7.0,
                  generator=torch.Generator().manual_seed(SEED), output_type="np",
                  control_guidance_end=[1.0] * 4 + [lineart_end])

        def run_ours(lineart_end: float = 1.0, anonymization_scale: float = 0.0, size: int = size,
                     maps: dict = maps) -> None:
            noise = FixedNoise(SEED)
            latents = noise.draw(ours.latent_shape(1, size, size), "cpu", torch.float32)
            denoise = Denoise(ours.encode_prompt("a person", "blurry"), size, size, latents, noise.generators(1),
                              num_inference_steps=STEPS, guidance_scale=7.0, noise_seed=SEED)
            ours({k: [maps[k]] for k in CONTROL_KINDS}, denoise, guidance_end={"lineart": lineart_end},
                 anonymization_scale=anonymization_scale, identity_images=[maps["depth"]])

        cases = {
            "stock": run_stock, "ours": run_ours,
            "stock, lineart until 50%": lambda: run_stock(0.5), "ours, lineart until 50%": lambda: run_ours(0.5),
            "ours, identity branch (a_s = 1)": lambda: run_ours(1.0, 1.0),
        }
        for case in cases.values():  # warm-up (allocations, lazy imports)
            case()
        steps_run = len(ours.sd.scheduler.timesteps)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(REPEATS):
            order = list(cases.items()) if r % 2 == 0 else list(cases.items())[::-1]
            for name, case in order:
                # CPU time of this process: other jobs on a shared machine delay it far less than wall time.
                t0 = time.process_time()
                case()
                times[name].append(time.process_time() - t0)
        per_step = {name: min(t) / steps_run * 1000 for name, t in times.items()}
        # Ratios of runs made next to each other share the machine's load at that moment.
        peers = {name: "stock, lineart until 50%" if "lineart until" in name else "stock" for name in times}
        ratios = {
            name: statistics.median(a / b for a, b in zip(t, times[peers[name]], strict=True))
            for name, t in times.items()
        }
        rows.append((size, steps_run, per_step, ratios))

    lines = [f"| size | case | CPU ms/step (best of {REPEATS}) | vs stock, best of | vs stock, median of pairs |",
             "| --- | --- | --- | --- | --- |"]
    for size, _, per_step, ratios in rows:
        for name, ms in per_step.items():
            peer = per_step["stock, lineart until 50%" if "lineart until" in name else "stock"]
            mark = " (goal <= 1.05x)" if name == "ours" else ""
            lines.append(f"| {size} px | {name} | {ms:.1f} | {ms / peer:.3f}x | {ratios[name]:.3f}x{mark} |")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()[:10]
    load = Path("/proc/loadavg").read_text().split()[:3]
    body = (
        f"Tiny SD 1.5 components (UNet 32/64 channels, five ControlNets + identity), DPM++ SDE Karras, {STEPS} steps "
        f"({rows[0][1]} model evaluations), CFG 7, one torch thread, runs alternating between the two sides.\n\n"
        + "\n".join(lines)
        + f"\n\nLoad average during the run: {' '.join(load)} (a shared machine; ratios are what count).\n\n```\n"
        + "\n".join(lscpu) + "\n```\n"
    )
    print(body)
    write_results("CAMOUFLaGE-Base: loop overhead against the stock pipeline (benchmarks/base_overhead.py)", body)


if __name__ == "__main__":
    main()
