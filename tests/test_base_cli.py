"""``camouflage-video anonymize --method base`` end to end with a local tiny model folder and a TOML config.

Runs the CLI entry point in-process so that two annotators can be swapped for stand-ins: the real
OpenPose (127 M parameters, 368 px whatever the input) and NormalBae (72 M) networks with random weights
take seconds per frame here. Everything else is real: the diffusion components and the depth,
segmentation and lineart annotators load from safetensors files saved in tmp_path.
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from camouflage_video.cli import main
from tests.conftest import ffprobe, read_frames

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("controlnet_aux")

FRAMES = 12


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from tests.tiny_models import save_tiny_annotators, save_tiny_models, tiny_components

    folder = tmp_path_factory.mktemp("tiny_models")
    table = save_tiny_models(tiny_components(folder), folder)
    table.update(save_tiny_annotators(folder))
    return folder, table


@pytest.fixture()
def tiny_run(model_folder, monkeypatch, tmp_path):
    from camouflage_video.annotators import control_maps
    from tests.tiny_models import stand_in_builder, write_config

    for kind in ("openpose", "normalbae"):
        monkeypatch.setitem(control_maps.BUILDERS, kind, stand_in_builder(kind))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder, table = model_folder
    config = write_config(
        tmp_path / "tiny.toml", table, prompt="a person", negative_prompt="blurry", steps=2, resolution=64,
        annotate_resolution=64,
        scheduler="dpmpp-2m-sde-karras", reuse_strength=0.5, keyframe_every=4,
    )
    yield config
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """12 frames (0.48 s at 25 fps) of the astronaut clip with AAC audio."""
    from camouflage_video.samples import make_sample_video

    return make_sample_video(tmp_path_factory.mktemp("clip") / "astronaut.mp4", seconds=FRAMES / 25,
                             fps=Fraction(25), size=(160, 96))


def test_anonymize_method_base_writes_a_valid_video_with_every_frame_and_the_audio(tiny_run, short_clip, tmp_path):
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code = main(["anonymize", str(short_clip), "-o", str(out), "--method", "base", "--config", str(tiny_run),
                 "--anonymization-scale", "1.25", "--seed", "7", "--stats", str(stats_path), "-q"])
    assert code == 0
    probe = ffprobe(out)
    assert "video" in probe and "audio" in probe
    video = next(line for line in probe.splitlines() if ",video," in line)  # codec,type,w,h,duration,frames
    assert ",160,96," in video and video.split(",")[-1] == str(FRAMES)
    frames, _, _ = read_frames(out)
    originals, _, _ = read_frames(short_clip)
    assert len(frames) == len(originals) == FRAMES
    regenerated = [abs(f.astype(int) - o.astype(int)).mean() for f, o in zip(frames, originals, strict=True)]
    assert min(regenerated) > 10
    stats = json.loads(stats_path.read_text())
    assert stats["frames_out"] == FRAMES and stats["fallback_frames"] == 0
    model = stats["model"]
    assert model["keyframes"] + model["reused_frames"] == FRAMES and model["reused_frames"] > 0
    calls = model["model_evaluations"]
    assert calls["unet"] < FRAMES * 3 * 2  # latent reuse: fewer than full denoising of every frame
    assert calls["controlnet.identity"] > 0 and calls["vae_decode"] == FRAMES
    assert {f"annotator.{k}" for k in ("depth", "normalbae", "seg", "openpose", "lineart")} <= set(calls)
    assert {"denoise", "decode"} <= set(model["seconds"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cuda"], "CUDA is not available"),
        (["--resolution", "770"], "multiple of 8"),
        (["--control-scale", "depth=strong"], "not a number"),
        (["--model", "unet=/nowhere"], "unknown model component"),
        (["--model", "base=/no/such/folder"], "does not exist"),
        (["--reuse-strength", "0"], "reuse-strength"),
    ],
)
def test_bad_base_options_fail_with_one_line_and_no_output(tiny_run, short_clip, tmp_path, capsys, args, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out.mp4"
    code = main(["anonymize", str(short_clip), "-o", str(out), "--method", "base", "--config", str(tiny_run), *args])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))
