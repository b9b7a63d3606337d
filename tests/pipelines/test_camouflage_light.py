"""CAMOUFLaGE-Light with tiny random components built in code (tests/tiny_light.py): the adapter pipeline,
the video anonymizer, its options and its assembly from a local model folder."""

from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.annotators.attribute_map import (
    AttributeStabilizer,
    FaceAttributes,
    face_regions,
    landmarks_from_boxes,
)
from camouflage_video.annotators.attributes import AttributeClassifier, FaceAnalyzer, FaceAttributeAnnotator
from camouflage_video.annotators.faces import CenterFaceDetector
from camouflage_video.annotators.tracking import FaceTracker
from camouflage_video.errors import ConfigError, ModelError, ProcessingError
from camouflage_video.frame import Frame, FrameContext
from camouflage_video.models import SD15_SCHEDULER, split_ip_adapter_state
from camouflage_video.pipelines.adapters import AdapterPipeline, adapter_config_for
from camouflage_video.pipelines.camouflage_light import CamouflageLight, LightOptions, build_light_anonymizer
from camouflage_video.pipelines.generative import make_scheduler
from camouflage_video.pipelines.sd15 import Denoise
from camouflage_video.pipelines.temporal import FixedNoise
from camouflage_video.samples import sample_frames
from tests.tiny_light import (
    SIZE,
    attribute_map,
    generate,
    make_pipeline,
    tiny_adapter,
    tiny_attribute_state,
    tiny_light_components,
)

torch = pytest.importorskip("torch")
pytest.importorskip("facer")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def components(tmp_path_factory) -> dict:
    return tiny_light_components(tmp_path_factory.mktemp("light"))


@pytest.fixture(scope="module")
def pipeline(components) -> AdapterPipeline:
    return make_pipeline(components)


@pytest.fixture(scope="module")
def photos(astronaut) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    a = cv2.resize(astronaut, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return a, np.ascontiguousarray(a[::-1, ::-1])


def test_pipeline_is_deterministic(components, pipeline, photos):
    first = generate(pipeline, attribute_map(0.8), photos[0])
    again = generate(pipeline, attribute_map(0.8), photos[0])
    rebuilt = generate(make_pipeline(components), attribute_map(0.8), photos[0])
    assert first.shape == (1, SIZE, SIZE, 3) and np.isfinite(first).all()
    assert np.array_equal(first, again) and np.array_equal(first, rebuilt)


def test_the_ip_adapter_changes_the_output(pipeline, photos):
    base = generate(pipeline, attribute_map(0.8), photos[0])
    other_image = generate(pipeline, attribute_map(0.8), photos[1])
    pipeline.set_ip_adapter_scale(0.0)
    try:
        without = generate(pipeline, attribute_map(0.8), photos[0])
    finally:
        pipeline.set_ip_adapter_scale(1.0)
    assert np.abs(base - other_image).max() > 0.02
    assert np.abs(base - without).max() > 0.02


def test_the_t2i_adapter_changes_the_output(pipeline, photos):
    old = generate(pipeline, attribute_map(0.9), photos[0])
    young = generate(pipeline, attribute_map(0.1), photos[0])
    off = generate(pipeline, attribute_map(0.9), photos[0], adapter_scale=0.0)
    assert np.abs(old - young).max() > 0.02
    assert np.abs(old - off).max() > 0.02


def test_the_pipeline_checks_its_inputs(pipeline, photos):
    with pytest.raises(ConfigError, match="condition maps must be"):
        generate(pipeline, np.zeros((1, 3, SIZE, SIZE), np.float32), photos[0])
    with pytest.raises(ConfigError, match="IP-Adapter needs"):
        noise = FixedNoise(0)
        denoise = Denoise(pipeline.encode_prompt("x", None), SIZE, SIZE,
                          noise.draw(pipeline.latent_shape(1, SIZE, SIZE), "cpu", torch.float32), noise.generators(1))
        pipeline(attribute_map(0.5), denoise, ip_images=None)


def test_ip_adapter_state_must_be_in_the_published_layout():
    with pytest.raises(ConfigError, match="image_proj"):
        split_ip_adapter_state({"proj.weight": torch.zeros(1)})


def test_adapter_config_fits_sd15():
    class Config:
        down_block_types = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
        block_out_channels = (320, 640, 1280, 1280)

    class Unet:
        config = Config

    config = adapter_config_for(Unet, 41)
    assert config["channels"] == [320, 640, 1280, 1280] and config["downscale_factor"] == 8
    assert config["in_channels"] == 41


# -- the video anonymizer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attribute_annotator() -> FaceAttributeAnnotator:
    from camouflage_video.annotators.attributes import attribute_network_from_state_dict

    classifier = AttributeClassifier(attribute_network_from_state_dict(tiny_attribute_state()), "cpu")
    return FaceAttributeAnnotator(FaceAnalyzer(classifier), AttributeStabilizer(seed=0))


def light(pipeline, annotator, **options) -> CamouflageLight:
    defaults = {"steps": 2, "resolution": 64, "scheduler": "dpmpp-2m-sde-karras", "ip_adapter_scale": 1.0}
    return CamouflageLight(pipeline, LightOptions.from_mapping({**defaults, **options}), annotator)


def run_video(anonymizer: CamouflageLight, frames: list[np.ndarray]) -> list[np.ndarray]:
    from fractions import Fraction

    stages = [CenterFaceDetector(), FaceTracker(fps=Fraction(10), hold_frames=2), *anonymizer.annotators()]
    outputs = []
    for index, image in enumerate(frames):
        ctx = FrameContext(Frame(image, index, pts=index, time_base=Fraction(1, 10)))
        for stage in stages:
            stage.annotate(ctx)
        outputs.append(anonymizer(ctx))
    return outputs


def test_light_regenerates_video_frames_deterministically(pipeline, attribute_annotator):
    frames = list(sample_frames(3, (160, 96)))
    anonymizer = light(pipeline, attribute_annotator)
    before = pipeline.calls.snapshot()  # the module's pipeline is shared: count this test's calls only
    first = run_video(anonymizer, frames)
    stats = anonymizer.stats()
    calls = {k: v - before.get(k, 0) for k, v in stats["model_evaluations"].items()}
    anonymizer.reset()
    second = run_video(anonymizer, frames)
    assert all(o.shape == f.shape and o.dtype == np.uint8 for o, f in zip(first, frames, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], frames[0])
    assert stats["frames_generated"] == 3 and stats["keyframes"] + stats["reused_frames"] == 3
    assert calls["t2i_adapter"] == 3 and calls["image_encoder"] == 3
    assert stats["model_evaluations"]["face_attributes"] >= 3


def annotated(anonymizer: CamouflageLight, frames: list[np.ndarray], start: int = 0) -> list[FrameContext]:
    from fractions import Fraction

    stages = [CenterFaceDetector(), FaceTracker(fps=Fraction(10), hold_frames=2), *anonymizer.annotators()]
    ctxs = []
    for index, image in enumerate(frames, start):
        ctx = FrameContext(Frame(image, index, pts=index, time_base=Fraction(1, 10)))
        for stage in stages:
            stage.annotate(ctx)
        ctxs.append(ctx)
    return ctxs


def test_batching_never_changes_lights_result(pipeline, attribute_annotator):
    frames = list(sample_frames(5, (160, 96)))
    options = {"reuse_strength": 0.5, "keyframe_every": 2, "seed": 3}
    attribute_annotator.reset()  # the module's annotator: forget the tracks of earlier tests
    alone = run_video(light(pipeline, attribute_annotator, **options), frames)
    attribute_annotator.reset()
    batched = light(pipeline, attribute_annotator, batch_size=4, **options)
    ctxs = annotated(batched, frames)
    together = batched.process_batch(ctxs[:4]) + batched.process_batch(ctxs[4:])
    assert len(together) == 5
    for a, b in zip(alone, together, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float round-off of batched kernels at most
    stills = [np.ascontiguousarray(f) for f in frames[:3]]
    attribute_annotator.reset()
    one = light(pipeline, attribute_annotator)
    stills_alone = [one(ctx) for ctx in _still_contexts(one, stills)]
    attribute_annotator.reset()
    three = light(pipeline, attribute_annotator, batch_size=3)
    before = pipeline.calls.snapshot()
    stills_together = three.process_batch(_still_contexts(three, stills))
    assert pipeline.calls.counts["vae_decode"] - before.get("vae_decode", 0) == 3
    assert three.stats()["settings"]["batch_size"] == 3
    for a, b in zip(stills_alone, stills_together, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _still_contexts(anonymizer: CamouflageLight, images: list[np.ndarray]) -> list[FrameContext]:
    ctxs = []
    for index, image in enumerate(images):
        ctx = FrameContext(Frame(image, index), faces=CenterFaceDetector().detect(image))
        for stage in anonymizer.annotators():
            stage.annotate(ctx)
        ctxs.append(ctx)
    return ctxs


def test_each_track_has_its_own_noise_that_follows_the_face(pipeline, attribute_annotator):
    anonymizer = light(pipeline, attribute_annotator, seed=5)
    shape = pipeline.latent_shape(1, 64, 64)

    def attrs(box, seed):
        boxes = np.array([box], np.float32)
        return FaceAttributes(
            xyxy=boxes, probs=np.zeros((1, 40), np.float32), observed=np.zeros((1, 40), np.float32),
            keypoints=landmarks_from_boxes(boxes), regions=face_regions(boxes, (64, 64)),
            seeds=np.array([seed]), frame_size=(64, 64),
        )

    fixed = anonymizer.noise.draw(shape, "cpu", torch.float32).clone()
    here = anonymizer._noise(attrs([8, 8, 24, 24], 77), shape)
    there = anonymizer._noise(attrs([32, 24, 48, 40], 77), shape)
    other = anonymizer._noise(attrs([8, 8, 24, 24], 78), shape)
    unconfirmed = anonymizer._noise(attrs([8, 8, 24, 24], -1), shape)
    assert torch.equal(unconfirmed, fixed)
    assert not torch.equal(here, fixed) and not torch.equal(here, other)
    # The same person's noise, read at its new place, is the same patch.
    patch_here = here[:, :, 0:4, 0:4]
    assert torch.equal(patch_here, there[:, :, 2:6, 3:7])
    assert torch.equal(here[:, :, 6:, 6:], fixed[:, :, 6:, 6:])  # the background keeps the video's noise


def test_a_frame_without_attributes_fails_and_the_next_starts_afresh(pipeline, attribute_annotator):
    anonymizer = light(pipeline, attribute_annotator)
    ctx = FrameContext(Frame(np.zeros((64, 64, 3), np.uint8), 0))
    with pytest.raises(ProcessingError, match="face attributes missing"):
        anonymizer(ctx)
    assert anonymizer.stats()["failed_frames"] == 1


def test_the_ip_adapter_sees_the_faces_blurred(pipeline, attribute_annotator, astronaut):
    anonymizer = light(pipeline, attribute_annotator)
    ctx = FrameContext(Frame(astronaut, 0), faces=CenterFaceDetector().detect(astronaut))
    attribute_annotator.annotate(ctx)
    view = anonymizer._ip_image(ctx)
    x1, y1, x2, y2 = ctx.faces.xyxy[0].astype(int)
    assert np.abs(view[y1:y2, x1:x2].astype(int) - astronaut[y1:y2, x1:x2]).mean() > 5
    assert np.array_equal(view[400:], astronaut[400:])
    keep = light(pipeline, attribute_annotator, ip_adapter_faces="keep")
    assert keep._ip_image(ctx) is astronaut


def test_an_adapter_that_does_not_read_41_channels_is_refused(components, attribute_annotator):
    three = make_pipeline(components, adapter=tiny_adapter(components["unet"], in_channels=3), ip=False)
    with pytest.raises(ModelError, match="41"):
        CamouflageLight(three, LightOptions(), attribute_annotator)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 0}, "steps"),
        ({"ip_adapter_faces": "hide"}, "ip-adapter-faces"),
        ({"attribute_smoothing": "median"}, "attribute-smoothing"),
        ({"resolution": 100}, "resolution"),
        ({"region_scale": 9}, "region-scale"),
        ({"anonymization_scale": 1.0}, "unknown option.*anonymization-scale"),
        ({"scheduler": "euler"}, "scheduler"),
    ],
)
def test_light_options_reject_bad_values(options, message):
    with pytest.raises(ConfigError, match=message):
        LightOptions.from_mapping(options)


def test_light_options_read_toml_under_flags(tmp_path):
    config = tmp_path / "light.toml"
    config.write_text('steps = 12\nseed = 4\nreuse-strength = 0.5\n[models]\n"t2i-adapter" = "ckpt"\n')
    options = LightOptions.from_mapping({"config": str(config), "seed": 9, "models": {"vae": "v"}})
    assert (options.steps, options.seed, options.temporal.reuse_strength) == (12, 9, 0.5)
    assert dict(options.models) == {"t2i-adapter": "ckpt", "vae": "v"}


def test_no_t2i_adapter_checkpoint_is_a_clear_error():
    with pytest.raises(ConfigError, match="t2i-adapter: no public checkpoint"):
        build_light_anonymizer({"device": "cpu"})


def test_build_from_a_local_model_folder(tmp_path, components, photos):
    from tests.tiny_light import save_tiny_light_models

    table = save_tiny_light_models(components, tmp_path / "models")
    anonymizer = build_light_anonymizer({"models": table, "device": "cpu", "steps": 2, "resolution": 64})
    assert anonymizer.pipeline.has_ip_adapter
    loaded = generate(anonymizer.pipeline, attribute_map(0.8), photos[0])
    # Same weights, same result as the in-memory components (the scheduler of the builder is Base's default).
    reference = make_pipeline(components)
    reference.sd.scheduler = make_scheduler("dpmpp-sde-karras", SD15_SCHEDULER)
    reference.set_ip_adapter_scale(0.7)
    try:
        assert np.allclose(loaded, generate(reference, attribute_map(0.8), photos[0]), atol=1e-5)
    finally:
        reference.set_ip_adapter_scale(1.0)
