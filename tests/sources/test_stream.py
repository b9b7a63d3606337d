"""Live sources against a real RTSP camera stand-in (gst-rtsp-server) on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from camouflage_video.errors import ConfigError, InputNotFoundError, StreamError
from camouflage_video.sources import open_source
from camouflage_video.sources.stream import StreamOptions, StreamSource
from camouflage_video.streaming import Backoff
from tests.live_servers import RtspCamera, free_port


def take(source: StreamSource, count: int, timeout: float = 20) -> list:
    frames, deadline = [], time.monotonic() + timeout
    for frame in source:
        frames.append(frame)
        if len(frames) >= count or time.monotonic() > deadline:
            break
    return frames


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_feed_is_a_live_stream_with_monotonic_timestamps(camera: RtspCamera, transport: str) -> None:
    with open_source(camera.url(), transport=transport, open_timeout=10) as src:
        assert (src.info.kind, src.info.live, src.info.width, src.info.height) == ("stream", True, 640, 360)
        assert src.info.fps == 25
        frames = take(src, 25)
    assert len(frames) == 25
    assert all(np.diff([f.pts for f in frames]) > 0)
    assert frames[0].image.std() > 20  # real pictures, not the black outage frames


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("refused", "Connection refused"), ("silent", "no answer within 1.5 s")],
)
def test_nothing_behind_the_url_is_a_clear_error_after_the_timeout(kind: str, expected: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the connection and never says a word
        port = silent.getsockname()[1] if kind == "silent" else free_port()
        t0 = time.monotonic()
        with pytest.raises(StreamError) as info:
            StreamSource(f"rtsp://admin:hunter2@127.0.0.1:{port}/cam", open_timeout=1.5)
        elapsed = time.monotonic() - t0
    message = str(info.value)
    assert expected in message
    assert message == f"rtsp://***@127.0.0.1:{port}/cam: cannot open stream ({expected})"
    assert "hunter2" not in message and info.value.__cause__ is None and info.value.__suppress_context__
    assert elapsed < 6


def test_a_missing_webcam_is_named() -> None:
    with pytest.raises(InputNotFoundError, match="/dev/video99: no such capture device"):
        open_source("/dev/video99")


@pytest.mark.parametrize(
    "kwargs", [{"transport": "sctp"}, {"open_timeout": 0}, {"read_timeout": -1}]
)
def test_bad_stream_options_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        StreamOptions(**kwargs)


def test_lost_feed_sends_black_frames_then_reconnects(camera_frames) -> None:
    cam = RtspCamera(camera_frames, 640, 360).start()
    try:
        src = StreamSource(cam.url(), open_timeout=5, read_timeout=2, reconnect=Backoff(initial=0.3, maximum=1))
        frames = iter(src)
        before = [next(frames) for _ in range(10)]
        cam.kill()  # the camera loses power
        outage = []
        for frame in frames:
            if frame.image.max() == 0:
                outage.append(frame)
            if len(outage) >= 10:
                break
        cam.start()  # same port
        after = []
        deadline = time.monotonic() + 20
        for frame in frames:
            if frame.image.max() > 0:
                after.append(frame)
            if len(after) >= 10 or time.monotonic() > deadline:
                break
        counters = src.counters()
        src.close()
    finally:
        cam.stop()
    assert len(after) == 10, "no pictures after the camera came back"
    assert counters["reconnects"] == 1 and counters["outage_frames"] >= 10 and counters["connected"]
    pts = [f.pts for f in before + outage + after]
    assert all(np.diff(pts) > 0), "timestamps went backwards across the reconnect"
    # Outage frames keep the nominal rate (25 fps), so a restream stays alive.
    gaps = np.diff([f.time for f in outage[2:]]).astype(float)
    assert 0.02 < float(np.median(gaps)) < 0.1


def test_giving_up_ends_the_feed_with_the_reason(camera_frames) -> None:
    cam = RtspCamera(camera_frames, 640, 360).start()
    try:
        src = StreamSource(cam.url(), open_timeout=2, read_timeout=2,
                           reconnect=Backoff(initial=0.1, maximum=0.2, attempts=2))
        cam.kill()
        frames = list(take(src, 10_000, timeout=30))
    finally:
        cam.stop()
    counters = src.counters()
    src.close()
    assert frames, "the frames before the drop and the outage frames still come out"
    assert counters["reconnect_attempts"] == 2 and counters["reconnects"] == 0
    assert counters["errors"] == [f"rtsp://127.0.0.1:{cam.port}/cam: gave up after 2 reconnect attempts"]


def test_a_slow_consumer_gets_fresh_frames_and_drops_are_counted(camera: RtspCamera) -> None:
    delay = 0.25
    with StreamSource(camera.url()) as src:
        ages = []
        for i, frame in enumerate(src):
            ages.append(src.clock() - float(frame.time))  # how old a frame is when the consumer gets it
            time.sleep(delay)  # processing four times slower than the feed
            if i == 12:
                break
        counters = src.counters()
    assert counters["frames_dropped"] >= 12 * (delay / 0.04 - 1) * 0.5
    # A frame that waited in a queue behind the consumer would be at least one delay (0.25 s) old; the bound
    # leaves room for a loaded 2-core machine (0.13 s was seen under load) and still catches that.
    assert max(ages[2:]) < 0.2, f"stale frames reached the consumer: {ages}"


def test_a_webcam_is_opened_through_v4l2_with_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    # No V4L2 device can exist in this container (v4l2loopback is a kernel module), so av.open is replaced
    # by a recorder here; what is checked is the demuxer and options a real /dev/videoN would get.
    import av

    from camouflage_video.sources import stream

    calls = []

    def fake_open(url, **kwargs):
        calls.append((url, kwargs))
        raise av.FFmpegError(16, "Device or resource busy")

    monkeypatch.setattr(stream.av, "open", fake_open)
    monkeypatch.setattr(stream.Path, "exists", lambda self: True)
    with pytest.raises(StreamError, match=r"^/dev/video0: cannot open stream \(Device or resource busy\)$"):
        open_source("/dev/video0", input_options={"video_size": "1280x720", "framerate": "30"}, open_timeout=3)
    url, kwargs = calls[0]
    assert url == "/dev/video0" and kwargs["format"] == "v4l2"
    assert kwargs["options"]["video_size"] == "1280x720" and kwargs["options"]["framerate"] == "30"
    assert kwargs["timeout"][0] == 3


SOUND_THEN_PICTURES = """
import sys, time
from fractions import Fraction
import av, numpy as np
url = sys.argv[1]
for _ in range(200):
    try:
        out = av.open(url, "w", format="mpegts", container_options={"max_interleave_delta": "50000"})
        break
    except av.FFmpegError:
        time.sleep(0.1)
video = out.add_stream("libx264", rate=25)
video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
video.codec_context.options = {"tune": "zerolatency", "preset": "ultrafast", "g": "25"}
audio = out.add_stream("aac", rate=48000)
audio.layout = "mono"
start, sample = time.monotonic(), 0
if sys.argv[2] == "stall":
    plan = [True] * 50 + [False] * 100 + [True] * 75  # 2 s of pictures, 4 s of sound alone, 3 s of pictures
else:  # a slow camera: a picture every 1.6 s, sound all along
    plan = [i % 40 == 0 for i in range(650)]
for i, pictures in enumerate(plan):
    time.sleep(max(0.0, start + i / 25 - time.monotonic()))
    while sample < (i + 1) * 1920:
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, sample
        sample += 1024
        out.mux(audio.encode(frame))
    if pictures:
        image = np.full((96, 160, 3), 200, np.uint8)
        image[:, (i * 3) % 160] = 30
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
out.close()
"""


def test_a_feed_that_sends_only_sound_gets_black_pictures_until_its_pictures_come_back(caplog) -> None:
    """A camera whose video stops while its audio goes on (its sound keeps the connection alive): the outputs
    get black pictures at the feed's rate, not a hole, and its pictures again when they come back."""
    port = free_port()
    feed = subprocess.Popen([sys.executable, "-c", SOUND_THEN_PICTURES, f"tcp://127.0.0.1:{port}", "stall"])
    try:
        src = StreamSource(f"tcp://127.0.0.1:{port}?listen=1", open_timeout=30, read_timeout=1.5)
        kinds, deadline = [], time.monotonic() + 40
        for frame in src:
            black = frame.image.max() < 10
            if not kinds or kinds[-1][0] != black:
                kinds.append([black, 0])
            kinds[-1][1] += 1
            if len(kinds) >= 3 and kinds[2][1] >= 10 or time.monotonic() > deadline:
                break  # pictures, black, pictures again
        counters = src.counters()
        src.close()
    finally:
        feed.kill()
        feed.wait()
    assert [black for black, _ in kinds[:3]] == [False, True, False], kinds
    # 4 s of sound alone, less the 1.5 s it takes to tell: black at about the feed's 25 pictures a second
    assert 25 <= kinds[1][1] <= 100 and counters["outage_frames"] == kinds[1][1], (kinds, counters)
    assert counters["reconnects"] == 0  # the connection was never lost
    assert "no picture for 1.5 s" in caplog.text and "pictures are back" in caplog.text


def test_a_camera_slower_than_the_read_timeout_gets_no_black_pictures_between_its_own() -> None:
    """A picture every 1.6 s with sound all along, read timeout 1 s: once its pace is known (the first pictures
    come in a burst, read while the connection is probed), a picture that has not come yet is no stalled feed."""
    port = free_port()
    feed = subprocess.Popen([sys.executable, "-c", SOUND_THEN_PICTURES, f"tcp://127.0.0.1:{port}", "slow"])
    try:
        src = StreamSource(f"tcp://127.0.0.1:{port}?listen=1", open_timeout=30, read_timeout=1.0)
        pictures, line, black_after, deadline = 0, None, 0, time.monotonic() + 40
        for frame in src:
            if frame.image.max() < 10:
                black_after += pictures >= 6
            elif int(np.argmin(frame.image[0, :, 0])) != line:  # the dark line moves with each picture
                line, pictures = int(np.argmin(frame.image[0, :, 0])), pictures + 1
            if pictures >= 11 or time.monotonic() > deadline:
                break
        src.close()
    finally:
        feed.kill()
        feed.wait()
    assert pictures >= 11 and black_after == 0, (pictures, black_after)
