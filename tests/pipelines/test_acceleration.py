"""The GPU side of the generative methods, tested on the CPU with tiny models: batch size "auto" from free
memory, out-of-memory handled by a smaller batch and then by the counted fallback, bf16 close to fp32, the
VAE and the guidance arithmetic in float32, the memory high-water mark in the stats, the throughput switches.

No GPU exists on this machine: where a test needs one, ``MockGpu`` stands in for CUDA's memory queries and
raises CUDA's out-of-memory error from a UNet forward hook when a batch would not fit. Everything else is real.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from camouflage_video.frame import Frame, FrameContext  # noqa: E402
from camouflage_video.pipelines.acceleration import (  # noqa: E402
    AccelerationOptions,
    apply_acceleration,
    auto_batch_size,
    batch_size_value,
)
from camouflage_video.samples import sample_frames  # noqa: E402
from tests.tiny_models import annotate, tiny_base_anonymizer, tiny_components  # noqa: E402

GIB = 2**30
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return tiny_components(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def stills() -> list[np.ndarray]:
    return list(sample_frames(5, (96, 64)))


def contexts(images) -> list[FrameContext]:
    # Stills (no pts): every frame is a keyframe, so every frame can share a batch.
    return [FrameContext(Frame(np.ascontiguousarray(image), i)) for i, image in enumerate(images)]


class MockGpu:
    """A GPU that does not exist here: ``total`` bytes, ``weights`` of them taken by the models, and
    ``per_row`` bytes per UNet batch row while a UNet forward runs; a forward that would not fit raises
    CUDA's out-of-memory error, as the allocator would."""

    is_gpu = True

    def __init__(self, unet, total: int, weights: int = 2 * GIB, per_row: int = GIB) -> None:  # noqa: ANN001
        self.total, self.weights, self.per_row = total, weights, per_row
        self._peak = weights
        self.rows: list[int] = []
        self.handle = unet.register_forward_pre_hook(self._forward)

    def _forward(self, _module, args) -> None:  # noqa: ANN001
        rows = args[0].shape[0]
        self.rows.append(rows)
        if self.weights + rows * self.per_row > self.total:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (mocked)")
        self._peak = max(self._peak, self.weights + rows * self.per_row)

    def free(self) -> int:
        return self.total - self.weights

    def allocated(self) -> int:
        return self.weights

    def reset_peak(self) -> None:
        self._peak = self.weights

    def peak(self) -> int:
        return self._peak

    def empty_cache(self) -> None:
        pass


def with_gpu(anonymizer, **gpu) -> MockGpu:  # noqa: ANN001
    memory = MockGpu(anonymizer.pipeline.sd.unet, **gpu)
    anonymizer.memory = memory
    anonymizer._measure_batch = anonymizer.options.batch_size == "auto"  # as __init__ decides on a GPU
    return memory


def test_auto_batch_size_is_what_the_free_memory_holds_at_the_first_keyframes_cost(components, stills):
    # Three UNet rows per frame (unconditional, conditional, identity) at 1 GiB each; 10 GiB free.
    anonymizer = tiny_base_anonymizer(components, batch_size="auto")
    gpu = with_gpu(anonymizer, total=12 * GIB)
    try:
        images = anonymizer.process_batch(annotate(anonymizer, contexts(stills[:1])))
        assert anonymizer.batch_size == int(10 * GIB * 0.8) // (3 * GIB) == 2
        images += anonymizer.process_batch(annotate(anonymizer, contexts(stills[1:])))
    finally:
        gpu.handle.remove()
    assert len(images) == 5 and gpu.rows == [3] * 4 + [6] * 8  # 4 steps per call: one frame, then two batches of 2
    stats = anonymizer.stats()
    assert stats["settings"]["batch_size_auto"] and stats["settings"]["batch_size"] == 2
    assert stats["memory_peak_mib"] == (2 + 6) * 1024 and stats["memory_measure"] == "cuda max_memory_allocated"


def test_auto_batch_size_limits(components):
    assert auto_batch_size(80 * GIB, 3 * GIB) == 16  # capped: more frames per call gain little, latency grows
    assert auto_batch_size(GIB, 3 * GIB) == 1
    assert batch_size_value("auto") == "auto" and batch_size_value("4") == 4
    # On the CPU "auto" means one frame at a time: nothing is measured.
    assert tiny_base_anonymizer(components, batch_size="auto").batch_size == 1


def test_a_batch_out_of_gpu_memory_is_split_and_gives_the_same_frames(components, stills):
    alone = tiny_base_anonymizer(components)
    expected = [alone(ctx) for ctx in annotate(alone, contexts(stills[:4]))]
    anonymizer = tiny_base_anonymizer(components, batch_size=4)
    gpu = with_gpu(anonymizer, total=10 * GIB)  # 8 GiB for activations: 2 frames fit, 4 do not
    try:
        images = anonymizer.process_batch(annotate(anonymizer, contexts(stills[:4])))
    finally:
        gpu.handle.remove()
    for a, b in zip(expected, images, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float round-off of batched kernels at most
    stats = anonymizer.stats()
    assert stats["batch_reductions"] == 1 and anonymizer.batch_size == 2
    assert stats["failed_frames"] == 0 and stats["out_of_memory_frames"] == 0 and stats["frames_generated"] == 4


def test_a_single_frame_out_of_gpu_memory_gets_the_counted_fallback(components, stills):
    from camouflage_video.pipelines.classic import fallback_image
    from camouflage_video.runner import Runner
    from tests.fakes import MemorySink, MemorySource

    anonymizer = tiny_base_anonymizer(components, batch_size=2, reuse_strength=1.0)  # keyframes: one batch
    gpu = with_gpu(anonymizer, total=4 * GIB)  # not even one frame's 3 rows fit
    sink = MemorySink()
    try:
        stats = Runner(MemorySource(stills[:2]), [sink], anonymizer.annotators(), anonymizer, progress=False).run()
    finally:
        gpu.handle.remove()
    assert stats.frames_out == 2 and stats.fallback_frames == 2
    assert all(np.array_equal(image, fallback_image(stills[i])) for i, image in sink.frames)
    counts = anonymizer.stats()
    assert counts["batch_reductions"] == 1 and counts["out_of_memory_frames"] >= 1


def _mean_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(x.astype(float) - y.astype(float)).mean() for x, y in zip(a, b, strict=True)]))


def _in_bfloat16(components: dict) -> dict:
    """The networks in bfloat16 (the VAE stays float32, as the builders load it)."""
    import copy

    low = copy.deepcopy(components)
    for name in ("unet", "text_encoder"):
        low[name] = low[name].to(torch.bfloat16)
    low["controlnets"] = {k: v.to(torch.bfloat16) for k, v in low["controlnets"].items()}
    return low


def test_base_in_bfloat16_stays_close_to_float32(components, stills):
    full = tiny_base_anonymizer(components, reuse_strength=1.0)
    reference = [full(ctx) for ctx in annotate(full, contexts(stills[:2]))]
    low = tiny_base_anonymizer(_in_bfloat16(components), reuse_strength=1.0)
    images = [low(ctx) for ctx in annotate(low, contexts(stills[:2]))]
    assert low.pipeline.dtype == torch.bfloat16 and low.pipeline.sd.vae.dtype == torch.float32
    assert low.stats()["settings"]["dtype"] == "bfloat16" and low.stats()["settings"]["vae_dtype"] == "float32"
    # Same picture: under 2 grey levels (of 255) on average (0.46 measured), against ~36 between unrelated outputs.
    assert _mean_difference(images, reference) < 2.0
    assert _mean_difference(reference, [np.ascontiguousarray(r[::-1]) for r in reference]) > 20


def test_light_in_bfloat16_stays_close_to_float32(tmp_path, stills):
    from camouflage_video.annotators.attribute_map import (
        NUM_ATTRIBUTES,
        FaceAttributes,
        face_regions,
        landmarks_from_boxes,
    )
    from camouflage_video.models import SD15_SCHEDULER
    from camouflage_video.pipelines.adapters import AdapterPipeline
    from camouflage_video.pipelines.camouflage_light import CamouflageLight, LightOptions
    from camouflage_video.pipelines.generative import make_scheduler
    from tests.tiny_light import tiny_light_components

    class FixedAttributes:
        """One face with fixed attributes (the analysis is not what this test compares)."""

        calls = 0

        def annotate(self, ctx) -> None:  # noqa: ANN001
            boxes = np.array([[30, 10, 60, 50]], np.float32)
            size = (ctx.frame.image.shape[1], ctx.frame.image.shape[0])
            ctx.extras["face_attributes"] = FaceAttributes(
                xyxy=boxes, probs=np.full((1, NUM_ATTRIBUTES), 0.8, np.float32),
                observed=np.full((1, NUM_ATTRIBUTES), 0.8, np.float32), keypoints=landmarks_from_boxes(boxes),
                regions=face_regions(boxes, size), seeds=np.full(1, 5, np.int64), frame_size=size)

        def reset(self) -> None:
            pass

    def run(c: dict, dtype) -> tuple[list[np.ndarray], CamouflageLight]:  # noqa: ANN001
        for name in ("unet", "text_encoder", "adapter", "image_encoder"):
            c[name] = c[name].to(dtype)
        pipe = AdapterPipeline(
            vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
            scheduler=make_scheduler("dpmpp-2m-sde-karras", SD15_SCHEDULER), adapter=c["adapter"],
            image_encoder=c["image_encoder"], feature_extractor=c["feature_extractor"],
            ip_adapter_state={g: {k: v.to(dtype) for k, v in t.items()} for g, t in c["ip_adapter_state"].items()},
        )
        options = LightOptions.from_mapping({"steps": 3, "resolution": 64, "scheduler": "dpmpp-2m-sde-karras",
                                             "reuse_strength": 1.0, "scene_cut_threshold": 0.0})
        light = CamouflageLight(pipe, options, FixedAttributes())
        ctxs = contexts(stills[:2])
        for ctx in ctxs:
            light.annotators()[-1].annotate(ctx)
        return [light(ctx) for ctx in ctxs], light

    reference, _ = run(tiny_light_components(tmp_path / "a"), torch.float32)
    images, light = run(tiny_light_components(tmp_path / "b"), torch.bfloat16)
    assert light.stats()["settings"]["dtype"] == "bfloat16" and light.pipeline.sd.vae.dtype == torch.float32
    assert _mean_difference(images, reference) < 4.0


def test_switches_are_off_by_default_and_turn_on_what_they_name(components):
    anonymizer = tiny_base_anonymizer(components)
    assert anonymizer.options.acceleration.enabled() == []
    assert anonymizer.stats()["settings"]["attention"] == "AttnProcessor2_0"  # diffusers' SDPA processor
    apply_acceleration(anonymizer.pipeline, AccelerationOptions(channels_last=True, vae_tiling=True, vae_slicing=True))
    try:
        unet = anonymizer.pipeline.sd.unet
        assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        assert anonymizer.pipeline.sd.vae.use_tiling and anonymizer.pipeline.sd.vae.use_slicing
    finally:
        for net in (anonymizer.pipeline.sd.unet, *anonymizer.pipeline.controlnets.values()):
            net.to(memory_format=torch.contiguous_format)
        anonymizer.pipeline.sd.vae.disable_tiling()
        anonymizer.pipeline.sd.vae.disable_slicing()


def test_cpu_stats_record_device_dtype_and_the_process_memory_peak(components, stills):
    anonymizer = tiny_base_anonymizer(components)
    ctx = annotate(anonymizer, contexts(stills[:1]))[0]
    anonymizer(ctx)
    stats = anonymizer.stats()
    assert stats["settings"]["device"] == "cpu" and stats["settings"]["dtype"] == "float32"
    assert stats["memory_measure"] == "process peak RSS" and stats["memory_peak_mib"] > 100
