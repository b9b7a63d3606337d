"""Restreams to real servers on 127.0.0.1: an nginx RTMP relay and FFmpeg's RTSP listen mode."""

from __future__ import annotations

import logging
import signal
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from camouflage_video.errors import ConfigError, StreamError
from camouflage_video.frame import Frame
from camouflage_video.sinks import open_sink
from camouflage_video.sinks.stream import StreamSink
from camouflage_video.sources.base import SourceInfo
from camouflage_video.streaming import Backoff
from tests.conftest import ffprobe, read_frames
from tests.live_servers import RtmpRelay, StallingRtmpServer, StreamReader, ffmpeg_rtsp_listener, free_port

INFO = SourceInfo(uri="rtsp://cam/x", kind="stream", width=320, height=180, fps=Fraction(25),
                  time_base=Fraction(1, 90000), live=True)


def picture(i: int) -> np.ndarray:
    """A frame whose colour says where it came from (blue-ish, brightness ramps with i)."""
    image = np.zeros((INFO.height, INFO.width, 3), np.uint8)
    image[..., 2] = 200
    image[..., 0] = (i * 7) % 100
    return image


def feed(sink: StreamSink, start: int, count: int, fps: float = 25, stop: threading.Event | None = None) -> float:
    """Write ``count`` frames in real time (until ``stop``); returns the longest a single write() took."""
    longest = 0.0
    for i in range(start, start + count):
        if stop is not None and stop.is_set():
            break
        t0 = time.monotonic()
        sink.write(Frame(picture(i), i, pts=i * 3600, time_base=INFO.time_base), picture(i))
        longest = max(longest, time.monotonic() - t0)
        time.sleep(1 / fps)
    return longest


def test_restream_to_an_rtmp_relay_is_read_back(relay: RtmpRelay) -> None:
    sink = open_sink(relay.url(), INFO)
    assert isinstance(sink, StreamSink)
    with StreamReader(relay.url(), timeout=10).start() as reader:
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(sink, 0, 500), kwargs={"stop": stop}, daemon=True)
        feeder.start()
        arrived = reader.wait_frames(20, timeout=15)
        frame = reader.frames[-1] if reader.frames else None
        stop.set()
        feeder.join(timeout=5)
    sink.close()
    assert arrived, reader.error
    assert frame.shape == (180, 320, 3)
    assert abs(float(frame[..., 2].mean()) - 200) < 10  # the picture we sent, through x264 and flv
    described = sink.describe()
    assert described["frames"] >= 20 and described["format"] == "flv" and described["reconnects"] == 0
    assert described["repeated"] == 0  # FLV readers get whole pictures; nothing to nudge


def test_restream_to_an_rtsp_listener(tmp_path) -> None:
    url, received = f"rtsp://127.0.0.1:{free_port()}/anon", tmp_path / "received.mkv"
    listener = ffmpeg_rtsp_listener(url, received)
    try:
        sink = StreamSink(url, INFO, open_timeout=2)
        feed(sink, 0, 40)
        sink.close()
        assert listener.wait(timeout=15) == 0, "closing the restream did not end the receiver's stream"
    finally:
        listener.kill()
        listener.wait()
    frames, _, _ = read_frames(received)
    assert len(frames) >= 35
    assert frames[-1].shape == (180, 320, 3) and abs(float(frames[-1][..., 2].mean()) - 200) < 10
    # Tagged square pixels (what the sources hand over), not left to a player's guess.
    assert ffprobe(received, "stream=sample_aspect_ratio").strip() == "1:1"


def test_a_slow_rtsp_restream_repeats_each_picture_once(tmp_path) -> None:
    # FFmpeg's RTSP readers hold a picture until the next one starts; at 5 processed frames per second that
    # would be 200 ms. The sink sends each picture once more a frame interval (40 ms) later instead.
    url, received = f"rtsp://127.0.0.1:{free_port()}/anon", tmp_path / "received.mkv"
    listener = ffmpeg_rtsp_listener(url, received)
    try:
        sink = StreamSink(url, INFO, open_timeout=2)
        feed(sink, 0, 10, fps=5)
        sink.close()
        assert listener.wait(timeout=15) == 0
    finally:
        listener.kill()
        listener.wait()
    frames, _, _ = read_frames(received)  # (ffmpeg -c copy re-times what it receives; counts and pixels hold)
    assert sink.describe()["repeated"] == 10  # the last picture too: feed() waits 200 ms after it
    assert len(frames) == 20
    assert all(np.abs(frames[i].astype(int) - frames[i + 1]).mean() < 2 for i in range(0, 20, 2))


def test_a_restream_that_drops_reconnects_without_blocking_the_run(tmp_path) -> None:
    server = RtmpRelay(tmp_path / "nginx").start()
    try:
        sink = StreamSink(server.url(), INFO, open_timeout=2, reconnect=Backoff(initial=0.2, maximum=0.5))
        feed(sink, 0, 10)
        server.kill()  # the relay goes away mid-stream
        longest = feed(sink, 10, 30)
        assert not sink.describe()["connected"]
        server.start()  # back on the same port
        with StreamReader(server.url(), timeout=10).start() as reader:
            feed(sink, 40, 60)
            assert reader.wait_frames(10, timeout=10), reader.error
        sink.close()
    finally:
        server.stop()
    described = sink.describe()
    assert described["reconnects"] >= 1
    assert described["dropped"] > 0  # frames written during the outage were dropped, not queued
    assert longest < 0.05, "write() blocked while the relay was down"


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("ftp://u:hunter2@host/x", ConfigError, "ftp://***@host/x: cannot stream to ftp://"),
        ("rtmp://u:hunter2@127.0.0.1:{port}/x/y", StreamError, "rtmp://***@127.0.0.1:{port}/x/***: cannot stream"),
        ("rtsp://u:hunter2@127.0.0.1:{port}/x", StreamError, "rtsp://***@127.0.0.1:{port}/x: cannot stream there"),
    ],
)
def test_a_bad_restream_target_fails_at_once_without_credentials(target: str, error: type, message: str) -> None:
    port = free_port()
    with pytest.raises(error) as info:
        StreamSink(target.format(port=port), INFO, open_timeout=2)
    assert str(info.value).startswith(message.format(port=port))
    assert "hunter2" not in str(info.value)


class Ticker:
    """A thread that notes the longest gap between its 20 ms ticks: long gaps mean something held the GIL."""

    def __init__(self) -> None:
        self.longest, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            self.longest, last = max(self.longest, now - last), now

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_server_that_stalls_after_the_handshake_fails_the_connect_in_time() -> None:
    # FFmpeg waits forever for the answer to its RTMP connect, holding the GIL: the whole process froze.
    with StallingRtmpServer().start() as server, Ticker() as ticker:
        t0 = time.monotonic()
        with pytest.raises(StreamError) as info:
            StreamSink(server.url("hunter2"), INFO, open_timeout=1.5)
        elapsed = time.monotonic() - t0
    assert server.stalled == 1  # it did get past the handshake
    assert str(info.value) == f"rtmp://127.0.0.1:{server.port}/live/***: cannot stream there (no answer within 1.5 s)"
    assert elapsed < 15
    assert ticker.longest < 1.0, "the rest of the process stood still while the restream connected"


def noise(i: int, shape=(360, 640, 3)) -> np.ndarray:
    """Random pixels: megabytes per second after x264, so a server that stops reading blocks the sender soon."""
    return np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8)


def test_a_server_that_freezes_mid_stream_is_dropped_and_the_sink_still_closes_in_time(tmp_path, caplog) -> None:
    info = SourceInfo(uri="x", kind="stream", width=640, height=360, fps=Fraction(25), time_base=Fraction(1, 90000),
                      live=True)
    images = [noise(i) for i in range(10)]
    server = RtmpRelay(tmp_path / "nginx").start()
    try:
        sink = StreamSink(server.url(), info, open_timeout=1.5, reconnect=Backoff(initial=0.2, maximum=0.5))
        server.proc.send_signal(signal.SIGSTOP)  # the relay hangs: connections stay open, nothing is read
        with caplog.at_level(logging.WARNING, logger="camouflage_video"):
            longest = 0.0
            for i in range(150):  # 6 s at 25 fps
                t0 = time.monotonic()
                sink.write(Frame(images[i % 10], i, pts=i * 3600, time_base=info.time_base), images[i % 10])
                longest = max(longest, time.monotonic() - t0)
                time.sleep(0.04)
            t0 = time.monotonic()
            sink.close()
            closing = time.monotonic() - t0
    finally:
        server.proc.send_signal(signal.SIGCONT)
        server.stop()
    assert "restream lost (the server took nothing for 1.5 s); reconnecting" in caplog.text
    assert longest < 0.05, "write() blocked while the relay was frozen"
    assert closing < 5
    assert not sink.describe()["connected"]
