from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.annotators import CenterFaceDetector
from camouflage_video.errors import ProcessingError
from camouflage_video.interrupts import Finalized
from camouflage_video.pipelines.classic import ClassicObfuscator, fallback_image
from camouflage_video.runner import Runner
from camouflage_video.sinks import open_sink
from camouflage_video.sinks.base import Sink
from camouflage_video.sources import VideoFileSource
from tests.conftest import read_frames
from tests.fakes import FailOn, MemorySink


def run(clip, annotators, sink, **kwargs):
    with VideoFileSource(clip) as src:
        runner = Runner(src, [sink], annotators, ClassicObfuscator(), **kwargs)
        return runner.run(), src


def test_failing_frames_get_the_fallback_never_the_original(sample_clip):
    sink = MemorySink()
    stats, _ = run(sample_clip, [CenterFaceDetector(), FailOn({3, 7})], sink)
    with VideoFileSource(sample_clip) as src:
        originals = [f.image for f in src]
    assert [i for i, _ in sink.frames] == list(range(len(originals)))
    for index, image in sink.frames:
        assert not np.array_equal(image, originals[index])  # the face is always altered
        if index in (3, 7):
            assert np.array_equal(image, fallback_image(originals[index]))
    assert stats.fallback_frames == 2 and len(stats.errors) == 2
    assert sink.closed


def test_on_error_fail_stops_and_discards_outputs(sample_clip):
    sink = MemorySink()
    with pytest.raises(ProcessingError, match="frame 5"):
        run(sample_clip, [FailOn({5})], sink, on_error="fail")
    assert sink.aborted and not sink.closed


def test_a_failing_sink_aborts_every_output(sample_clip, tmp_path):
    class Broken(MemorySink):
        def write(self, frame, image):
            if frame.index == 4:
                raise OSError("disk full")

    with VideoFileSource(sample_clip) as src:
        good = open_sink(tmp_path / "good.mp4", src.info)
        with pytest.raises(OSError, match="disk full"):
            Runner(src, [good, Broken()], [], ClassicObfuscator()).run()
    assert list(tmp_path.iterdir()) == []  # no half-written file, not even under a temporary name


def test_interrupt_finalizes_a_playable_file_with_what_was_processed(sample_clip, tmp_path):
    out = tmp_path / "partial.mp4"
    with VideoFileSource(sample_clip) as src:
        sink = open_sink(out, src.info)
        runner = Runner(src, [sink], [CenterFaceDetector(), FailOn({20}, KeyboardInterrupt)], ClassicObfuscator())
        with pytest.raises(Finalized):  # the CLI then says what was processed was saved
            runner.run()
    assert runner.stats.interrupted
    frames, pts, tb = read_frames(out)
    assert len(frames) == runner.stats.frames_out == 20
    import av

    with av.open(str(out)) as c:
        assert c.streams.audio  # the audio came along, up to the last frame written
        audio_end = max(float((p.pts + p.duration) * p.time_base) for p in c.demux(c.streams.audio[0]) if p.pts)
    assert audio_end == pytest.approx(float(pts[-1] * tb), abs=0.1)


def _sink_closed_after_a_ctrl_c(path, info):
    """A real MP4 sink whose close first takes a Ctrl-C: the handler runs in the middle of finalizing."""
    import signal

    sink = open_sink(path, info)
    real_close = sink.close

    def close_after_ctrl_c(**kwargs):
        signal.raise_signal(signal.SIGINT)
        real_close(**kwargs)

    sink.close = close_after_ctrl_c
    return sink


def test_a_second_interrupt_while_finalizing_still_publishes_the_output(sample_clip, tmp_path):
    out = tmp_path / "partial.mp4"
    with VideoFileSource(sample_clip) as src:
        sink = _sink_closed_after_a_ctrl_c(out, src.info)
        runner = Runner(src, [sink], [FailOn({12}, KeyboardInterrupt)], ClassicObfuscator())
        with pytest.raises(KeyboardInterrupt):
            runner.run()
    assert len(read_frames(out)[0]) == runner.stats.frames_out == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.mp4"]


def test_an_interrupt_during_the_final_close_of_a_whole_run_keeps_every_frame(sample_clip, tmp_path):
    out = tmp_path / "whole.mp4"
    with VideoFileSource(sample_clip) as src:
        sink = _sink_closed_after_a_ctrl_c(out, src.info)
        runner = Runner(src, [sink], [], ClassicObfuscator())
        with pytest.raises(KeyboardInterrupt):  # raised once the output is safe, so the caller still stops
            runner.run()
    assert len(read_frames(out)[0]) == 50


def test_a_source_failure_mid_stream_is_reported(sample_clip):
    class Exploding(VideoFileSource):
        def __iter__(self):
            for frame in super().__iter__():
                if frame.index == 6:
                    raise ValueError("decoder died")
                yield frame

    sink = MemorySink()
    with Exploding(sample_clip) as src, pytest.raises(ValueError, match="decoder died"):
        Runner(src, [sink], [], ClassicObfuscator()).run()
    assert sink.aborted


class Passthrough(ClassicObfuscator):
    def __call__(self, ctx):
        return ctx.frame.image


class LeadSource:
    """Frames of any size (zero pages: nothing is really allocated) that count how many were decoded."""

    def __init__(self, width, height, count):
        from camouflage_video.sources.base import SourceInfo

        self.info = SourceInfo(uri="generated", kind="video", width=width, height=height)
        self.count, self.produced, self.corrupt_frames = count, 0, 0

    def __iter__(self):
        from camouflage_video.frame import Frame

        for index in range(self.count):
            self.produced += 1
            yield Frame(np.zeros((self.info.height, self.info.width, 3), np.uint8), index=index)


class LeadSink(Sink):
    """A slow writer that records how far decoding ran ahead of it."""

    def __init__(self, source):
        self.source, self.leads = source, []

    def write(self, frame, image):
        import time

        time.sleep(0.02)
        self.leads.append(self.source.produced - frame.index)


# Two frame queues (8 frames each at 360p, 2 at 8K), two batches between annotating and anonymizing, and
# the frames in the hands of the four threads.
@pytest.mark.parametrize(("size", "max_lead"), [((640, 360), 2 * 8 + 2 + 4), ((7680, 4320), 2 * 2 + 2 + 4)])
def test_frames_buffered_between_stages_shrink_with_the_frame_size(size, max_lead):
    """An 8K frame is 100 MB: eight of them per queue would be 1.6 GB before any work is done."""
    source = LeadSource(*size, count=40)
    sink = LeadSink(source)
    Runner(source, [sink], [], Passthrough(), progress=False).run()
    assert len(sink.leads) == 40
    assert max(sink.leads) <= max_lead
    assert max(sink.leads) > max_lead - 6  # the writer is slow: the queues do fill up to their size


class Gate:
    """An annotator that says when it has reached frame 1."""

    name = "gate"

    def __init__(self):
        import threading

        self.reached = threading.Event()

    def annotate(self, ctx):
        if ctx.frame.index == 1:
            self.reached.set()

    def describe(self):
        return {}


class WaitsForTheNextFrame(Passthrough):
    """Anonymizes frame 0 only once the annotators have started on frame 1 (or gives up after 10 s)."""

    def __init__(self, gate):
        super().__init__()
        self.gate, self.overlapped = gate, None

    def __call__(self, ctx):
        if ctx.frame.index == 0:
            self.overlapped = self.gate.reached.wait(10)
        return super().__call__(ctx)


def test_a_file_is_annotated_ahead_while_earlier_frames_are_anonymized(sample_clip):
    """Detection of the next frame overlaps anonymization (and its identity checks) of the one before."""
    gate = Gate()
    anonymizer = WaitsForTheNextFrame(gate)
    sink = MemorySink()
    with VideoFileSource(sample_clip) as src:
        Runner(src, [sink], [gate], anonymizer, progress=False).run()
    assert anonymizer.overlapped is True
    assert [i for i, _ in sink.frames] == list(range(len(sink.frames))) and sink.closed


class FailsAt(Passthrough):
    def __call__(self, ctx):
        if ctx.frame.index == 6:
            raise RuntimeError("out of memory")
        return super().__call__(ctx)


def test_an_anonymizer_failure_on_its_own_thread_gives_the_fallback_or_stops_the_run(sample_clip):
    with VideoFileSource(sample_clip) as src:
        originals = [f.image for f in src]
    sink = MemorySink()
    with VideoFileSource(sample_clip) as src:
        stats = Runner(src, [sink], [], FailsAt(), progress=False).run()
    assert stats.fallback_frames == 1 and np.array_equal(sink.frames[6][1], fallback_image(originals[6]))
    sink = MemorySink()
    with VideoFileSource(sample_clip) as src, pytest.raises(ProcessingError, match="frame 6.*out of memory"):
        Runner(src, [sink], [], FailsAt(), on_error="fail", progress=False).run()
    assert sink.aborted and not sink.closed
