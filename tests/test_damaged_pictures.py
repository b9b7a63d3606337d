"""Pictures decoded from damaged data are pixelated whole: the decoder fills a lost packet's hole from earlier
pictures, and what it makes (a smeared, stale copy of the scene) can hold a ghost face no detector finds.

Files are damaged here in code (one packet's payload garbled); the live feed is the camera stand-in with its
encoder set to split each picture wrongly, so no picture it sends decodes clean (servers/rtsp_camera.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from camouflage_video.config import AnonymizeConfig, build_stages
from camouflage_video.pipelines.classic import fallback_image
from camouflage_video.runner import Runner
from camouflage_video.samples import sample_frames
from camouflage_video.sources.stream import StreamSource
from camouflage_video.sources.video import VideoFileSource
from tests.fakes import MemorySink
from tests.live_servers import RtspCamera

GOP, FRAMES, BROKEN_PACKET = 25, 50, 10


def damaged_clip(folder: Path) -> Path:
    """The astronaut clip (H.264, a keyframe every 25 pictures, no B-frames) with packet 10's payload garbled."""
    clean, damaged = folder / "clean.mkv", folder / "damaged.mkv"
    with av.open(str(clean), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"g": str(GOP), "bf": "0"}
        for image in sample_frames(FRAMES):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    rng = np.random.default_rng(1)
    with av.open(str(clean)) as src, av.open(str(damaged), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for index, packet in enumerate(p for p in src.demux(video=0) if p.dts is not None):
            if index == BROKEN_PACKET:
                data = bytearray(bytes(packet))
                for offset in range(len(data) // 3, len(data), 7):
                    data[offset] = rng.integers(0, 256)
                garbled = av.Packet(bytes(data))
                garbled.pts, garbled.dts, garbled.time_base = packet.pts, packet.dts, packet.time_base
                packet = garbled
            packet.stream = stream
            out.mux(packet)
    return damaged


def run_classic(source, sink: MemorySink | None = None) -> tuple[MemorySink, object]:
    sink = sink or MemorySink()
    annotators, anonymizer = build_stages(AnonymizeConfig(method="blur"), source.info)
    stats = Runner(source, [sink], annotators, anonymizer, progress=False).run()
    return sink, stats


def close_after(source, sink: MemorySink, count: int, deadline: float) -> None:
    """Closes the live source once the sink holds count pictures, or after deadline seconds."""
    ends = time.monotonic() + deadline
    while len(sink.frames) < count and time.monotonic() < ends:
        time.sleep(0.05)
    source.close()


def test_pictures_after_a_packet_that_fails_to_decode_are_damaged_until_the_next_clean_keyframe(tmp_path):
    with VideoFileSource(damaged_clip(tmp_path)) as src:
        frames = list(src)
    assert src.corrupt_frames == 1  # the garbled packet: skipped, no picture
    assert len(frames) == FRAMES - 1
    damaged = [f.index for f in frames if f.damaged]
    # Every picture after the hole is predicted from it, until the keyframe (packet 25, picture 24 here).
    assert damaged == list(range(BROKEN_PACKET, GOP - 1)), damaged


def test_damaged_pictures_of_a_file_get_the_whole_frame_fallback_and_are_counted(tmp_path):
    with VideoFileSource(damaged_clip(tmp_path)) as src:
        originals = {f.index: f for f in VideoFileSource(src.path)}
        sink, stats = run_classic(src)
    written = dict(sink.frames)
    assert len(written) == FRAMES - 1  # nothing dropped: the timeline and the audio stay whole
    for index, frame in originals.items():
        pixelated = np.array_equal(written[index], fallback_image(frame.image))
        assert pixelated == frame.damaged, index
    assert stats.damaged_frames == GOP - 1 - BROKEN_PACKET
    assert stats.to_dict()["damaged_frames"] == stats.damaged_frames and stats.fallback_frames == 0


def test_a_feed_that_never_decodes_clean_is_pixelated_whole(camera_frames):
    with RtspCamera(camera_frames, 640, 360, broken_slices=True).start() as cam:
        with StreamSource(cam.url(), open_timeout=10) as src:
            sink = MemorySink()
            # Stop after 30 pictures, not after a fixed time: a loaded machine decodes fewer in any given second.
            closer = threading.Thread(target=close_after, args=(src, sink, 30, 60.0), daemon=True)
            closer.start()
            sink, stats = run_classic(src, sink)
            closer.join()
    assert stats.frames_out >= 30
    assert stats.damaged_frames == stats.frames_out
    for _, image in sink.frames:  # 16 cells along the long side: 40-pixel blocks of one colour each
        cells = image[: 360 // 40 * 40].reshape(9, 40, 16, 40, 3)
        assert cells.std(axis=(1, 3)).max() == 0


@pytest.mark.parametrize("broken", [False, True])
def test_only_the_broken_camera_stand_in_sends_damaged_pictures(camera_frames, broken):
    with RtspCamera(camera_frames, 640, 360, broken_slices=broken).start() as cam:
        with StreamSource(cam.url(), open_timeout=10) as src:
            frames = []
            for frame in src:
                frames.append(frame)
                if len(frames) == 30:
                    break
    assert len(frames) == 30
    assert all(f.damaged for f in frames) if broken else not any(f.damaged for f in frames)
