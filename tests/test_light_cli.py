"""``camouflage-video anonymize --method light`` end to end: a real clip, a local tiny model folder, a TOML config.

The diffusion components, the T2I-Adapter, the IP-Adapter and its image encoder, and pyfacer's FaRL attribute
classifier are tiny random models saved as the files a user would fetch (tests/tiny_light.py); detection and
tracking are the real ones. The clip is the first frames of a real recording (Intel's CC-BY sample videos)
with an AAC tone added, since those recordings have no audio of their own.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from camouflage_video.cli import main
from tests.conftest import ffprobe, media_file, read_frames

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("facer")


FRAMES = 6


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def real_clip_with_audio(source: Path, target: Path, frames: int, size=(160, 120)) -> Path:
    """The first ``frames`` frames of a real recording, scaled down, as H.264 with a 440 Hz AAC track."""
    import av

    from camouflage_video.samples import _write_tone

    rate = Fraction(10)
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.time_base = video.codec_context.time_base = 1 / rate
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for index, frame in enumerate(src.decode(video=0)):
            if index == frames:
                break
            image = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts, picture.time_base = index, 1 / rate
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        _write_tone(out, sound, float(frames / rate))
    return target


@pytest.fixture(scope="module")
def light_config(tmp_path_factory) -> Path:
    from tests.tiny_light import save_tiny_light_models, tiny_light_components
    from tests.tiny_models import write_config

    folder = tmp_path_factory.mktemp("tiny_light")
    table = save_tiny_light_models(tiny_light_components(folder), folder / "models")
    return write_config(folder / "light.toml", table, prompt="a person", steps=2, resolution=64,
                        scheduler="dpmpp-2m-sde-karras", reuse_strength=0.5, keyframe_every=4, device="cpu")


@pytest.fixture(scope="module")
def real_clip(tmp_path_factory) -> Path:
    source = media_file("videos/intel_asl_thanks.mkv")
    return real_clip_with_audio(source, tmp_path_factory.mktemp("clip") / "thanks.mp4", FRAMES)


def test_anonymize_method_light_writes_a_valid_video_with_every_frame_and_the_audio(light_config, real_clip, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code = main(["anonymize", str(real_clip), "-o", str(out), "--method", "light", "--config", str(light_config),
                 "--seed", "3", "--attribute-smoothing", "mean", "--stats", str(stats_path), "-q"])
    assert code == 0
    probe = ffprobe(out)
    assert any(line.startswith("aac,audio") for line in probe.splitlines()), probe
    video = next(line for line in probe.splitlines() if ",video," in line)
    assert ",160,120," in video and video.split(",")[-1] == str(FRAMES)
    frames, _, _ = read_frames(out)
    originals, _, _ = read_frames(real_clip)
    assert len(frames) == len(originals) == FRAMES
    # Regenerated: no frame is its original.
    assert all(abs(f.astype(int) - o.astype(int)).mean() > 10 for f, o in zip(frames, originals, strict=True))
    stats = json.loads(stats_path.read_text())
    assert stats["method"] == "light" and stats["frames_out"] == FRAMES and stats["fallback_frames"] == 0
    assert stats["faces_detected"] >= FRAMES - 1  # the signer's face, frame after frame
    model = stats["model"]
    assert model["frames_generated"] == FRAMES
    assert model["keyframes"] + model["reused_frames"] == FRAMES and model["reused_frames"] > 0
    assert model["model_evaluations_per_frame"]["t2i_adapter"] == 1.0
    assert model["model_evaluations"]["face_attributes"] >= FRAMES - 1
    assert model["settings"]["ip_adapter_faces"] == "blur"


def test_a_failing_generation_falls_back_to_the_pixelated_frame(light_config, real_clip, tmp_path, monkeypatch):
    """Fail closed: a generation error gives the whole-frame fallback and is counted, never the original."""
    from camouflage_video.pipelines import adapters

    def broken(self, *args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(adapters.AdapterPipeline, "__call__", broken)
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code = main(["anonymize", str(real_clip), "-o", str(out), "--method", "light", "--config", str(light_config),
                 "--stats", str(stats_path), "-q"])
    assert code == 0
    stats = json.loads(stats_path.read_text())
    assert stats["fallback_frames"] == FRAMES and stats["model"]["failed_frames"] == FRAMES
    assert "illegal memory access" in stats["errors"][0]
    code = main(["anonymize", str(real_clip), "-o", str(tmp_path / "strict.mp4"), "--method", "light", "--config",
                 str(light_config), "--on-error", "fail", "-q"])
    assert code == 1 and not (tmp_path / "strict.mp4").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--t2i-adapter", "/nonexistent/ckpt"], "does not exist"),
        (["--anonymization-scale", "1"], "unknown option"),
        (["--ip-adapter-scale", "-1"], "ip-adapter-scale"),
    ],
)
def test_bad_light_options_are_one_line_errors(light_config, real_clip, tmp_path, capsys, extra, message):
    code = main(["anonymize", str(real_clip), "-o", str(tmp_path / "out.mp4"), "--method", "light",
                 "--config", str(light_config), *extra])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out.mp4").exists()


def test_no_adapter_checkpoint_says_how_to_get_one(real_clip, tmp_path, capsys):
    code = main(["anonymize", str(real_clip), "-o", str(tmp_path / "out.mp4"), "--method", "light", "--device", "cpu"])
    assert code == 1
    assert "t2i-adapter: no public checkpoint" in capsys.readouterr().err


def test_models_list_light_names_its_components(light_config, capsys):
    assert main(["models", "list", "light", "--config", str(light_config)]) == 0
    listed = capsys.readouterr().out
    for name in ("base", "vae", "t2i-adapter", "face-attributes", "ip-adapter", "image-encoder"):
        assert f"\n{name} " in "\n" + listed
