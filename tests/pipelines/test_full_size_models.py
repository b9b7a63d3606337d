"""Base and Light on full-size architectures of their default checkpoints (random weights, built in code by
tests/realsize_models.py), loaded from the layouts the hubs publish through ``camouflage_video.models`` as a
user's run loads them, and run for one denoising step on a 64 px frame.

Tiny models hide what these catch: SD 1.5's cross-attention width, the single-file key conversion, the fp16
variant files of ControlNet v1.1, the T2I-Adapter's feature levels, the IP-Adapter's token count and layers.
The models are built once per session (about 5 GB in a temporary folder) and each test frees what it loaded.
The annotators are not what these tests check: depth, segmentation and lineart run their real networks at a
tiny width; OpenPose and NormalBae are the weightless stand-ins of tests/tiny_models.py (their real networks
with random weights would add seconds and nothing here).
"""

from __future__ import annotations

import gc
import resource
import shutil
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

pytestmark = pytest.mark.realsize

SIZE = 64


@pytest.fixture(scope="session")
def realsize(tmp_path_factory):
    from tests.realsize_models import build_realsize_models
    from tests.tiny_models import save_tiny_annotators

    folder = tmp_path_factory.mktemp("realsize")
    built = build_realsize_models(folder)
    built["models"].update(save_tiny_annotators(folder / "annotators"))
    release_memory()
    yield built
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def offline(monkeypatch):
    """A run that reached for the hub would fail here anyway; this makes it fail at once and clearly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def release_memory() -> None:
    """Free the models for the next test: collect them, then hand glibc's freed heap back to the system (most
    weight tensors are under its mmap threshold, so freeing them alone leaves the memory with the process)."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def frame_contexts(image: np.ndarray, count: int = 1) -> list:
    from camouflage_video.frame import Frame, FrameContext

    return [FrameContext(Frame(image, i, pts=i, time_base=Fraction(1, 10))) for i in range(count)]


def test_base_loads_the_published_layouts_of_its_defaults_and_denoises(realsize, offline, monkeypatch, astronaut):
    import cv2

    from camouflage_video.annotators import control_maps
    from camouflage_video.pipelines.camouflage_base import build_base_anonymizer
    from tests.tiny_models import annotate, stand_in_builder

    for kind in ("openpose", "normalbae"):
        monkeypatch.setitem(control_maps.BUILDERS, kind, stand_in_builder(kind))
    # bfloat16 keeps six full-size ControlNets plus the UNet near 6 GB of RAM (fp32 would need 13 GB).
    anonymizer = build_base_anonymizer({
        "models": realsize["models"], "base_config": realsize["base_config"], "device": "cpu",
        "dtype": "bfloat16", "prompt": "a person in a street", "steps": 1, "resolution": SIZE,
        "annotate_resolution": SIZE, "scene_cut_threshold": 0.0,
    })
    try:
        pipe = anonymizer.pipeline
        unet = pipe.sd.unet
        assert unet.config.cross_attention_dim == pipe.sd.text_encoder.config.hidden_size == 768
        assert sum(p.numel() for p in unet.parameters()) > 850e6
        assert len(pipe.sd.tokenizer) == 49408 and pipe.sd.tokenizer.model_max_length == 77
        assert set(pipe.names) == {"depth", "normalbae", "seg", "openpose", "lineart"}
        assert all(net.dtype == torch.bfloat16 for net in [*pipe.controlnets.values(), pipe.identity])
        assert pipe.sd.vae.dtype == torch.float32  # the VAE decodes in fp32 whatever the UNet runs in

        image = cv2.resize(astronaut, (96, SIZE), interpolation=cv2.INTER_AREA)
        ctxs = annotate(anonymizer, frame_contexts(image))
        out = anonymizer(ctxs[0])
        assert out.shape == image.shape and out.dtype == np.uint8
        stats = anonymizer.stats()
        assert stats["failed_frames"] == 0 and stats["frames_generated"] == 1
        # One step: the UNet sees the unconditional, conditional and identity rows; each ControlNet the first two.
        calls = stats["model_evaluations"]
        assert calls["unet"] == 3 and calls["controlnet.identity"] == 1 and calls["controlnet.depth"] == 2
        assert stats["settings"]["dtype"] == "bfloat16" and stats["settings"]["device"] == "cpu"
    finally:
        anonymizer = pipe = unet = None  # every reference, so that the next test starts from free memory
        release_memory()
    assert peak_rss_gib() < 12


def test_light_loads_the_published_layouts_of_its_defaults_and_denoises(realsize, offline, astronaut):
    import cv2

    from camouflage_video.annotators.faces import CenterFaceDetector
    from camouflage_video.annotators.tracking import FaceTracker
    from camouflage_video.pipelines.camouflage_light import build_light_anonymizer
    from tests.realsize_models import IP_ADAPTER_TOKENS

    # bfloat16, as Base: in float32 the UNet and the ViT-H image encoder alone take 6 GB.
    anonymizer = build_light_anonymizer({
        "models": realsize["models"], "base_config": realsize["base_config"], "device": "cpu",
        "dtype": "bfloat16", "steps": 1, "resolution": SIZE, "scene_cut_threshold": 0.0,
    })
    try:
        pipe = anonymizer.pipeline
        assert pipe.has_ip_adapter and pipe.adapter.config.in_channels == 41
        encoder = pipe.sd.image_encoder
        assert encoder.config.projection_dim == 1024 and encoder.config.image_size == 224
        processors = [p for name, p in pipe.sd.unet.attn_processors.items() if name.endswith("attn2.processor")]
        assert len(processors) == 16 and all(p.num_tokens == [IP_ADAPTER_TOKENS] for p in processors)

        image = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
        ctx = frame_contexts(image)[0]
        for stage in [CenterFaceDetector(), FaceTracker(fps=Fraction(10), hold_frames=2), *anonymizer.annotators()]:
            stage.annotate(ctx)
        out = anonymizer(ctx)
        assert out.shape == image.shape and out.dtype == np.uint8
        stats = anonymizer.stats()
        assert stats["failed_frames"] == 0 and stats["model_evaluations"]["t2i_adapter"] == 1
        assert stats["model_evaluations"]["image_encoder"] == 1
        assert encoder.dtype == torch.bfloat16 and pipe.sd.vae.dtype == torch.float32
    finally:
        anonymizer = pipe = encoder = processors = None
        release_memory()
    assert peak_rss_gib() < 12
