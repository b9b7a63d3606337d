"""Credential redaction, reconnection backoff, the newest-frame mailbox and live stats (no servers needed)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.monitor import LiveMonitor
from camouflage_video.redact import RedactingFilter, redact_url
from camouflage_video.stats import RunStats
from camouflage_video.streaming import Backoff, LatestSlot

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:s3cret@cam.local:554/stream1", "rtsp://***@cam.local:554/stream1"),
        ("rtmp://user:p@ss@relay/live", "rtmp://***@relay/live"),  # an unencoded @ in the password
        ("rtsp://token@cam/s", "rtsp://***@cam/s"),
        # Passwords with the characters that end an authority for a parser: hidden whole, never in part.
        ("rtsp://admin:hun#ter2@cam:554/s", "rtsp://***@cam:554/s"),
        ("rtsp://admin:hun/ter2@cam:554/s", "rtsp://***@cam:554/s"),
        ("rtsp://admin:hun?ter2@cam:554/s", "rtsp://***@cam:554/s"),
        ("rtsp://admin:hun ter2@cam:554/s", "rtsp://***@cam:554/s"),
        ("rtsp://admin:h@u#n/t?e r2@cam:554/s", "rtsp://***@cam:554/s"),
        ("rtsp://admin:hunter2@[::1]:8554/s", "rtsp://***@[::1]:8554/s"),
        ("rtsp://admin:p%40ss@cam/s", "rtsp://***@cam/s"),  # percent-encoded
        ("rtsp://admin:hunter2@/s", "rtsp://***@/s"),  # no host
        # Secret query (and fragment) parameters, in any case; other parameters stay.
        ("http://cam/video.m3u8?user=bob&password=hunter2&q=1", "http://cam/video.m3u8?user=***&password=***&q=1"),
        ("https://cdn/live.m3u8?access_token=hunter2&fps=25", "https://cdn/live.m3u8?access_token=***&fps=25"),
        ("https://cdn/x?API_KEY=hunter2", "https://cdn/x?API_KEY=***"),
        ("rtsp://cam/s?streamKey=hunter2", "rtsp://cam/s?streamKey=***"),
        ("https://s3/x.mp4?X-Amz-Signature=hunter2&X-Amz-Credential=hunter2", "https://s3/x.mp4?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("https://cam/x?sig=hunter2&secret=hunter2&pwd=hunter2&auth=hunter2", "https://cam/x?sig=***&secret=***&pwd=***&auth=***"),
        ("https://app/cb#access_token=hunter2&state=1", "https://app/cb#access_token=***&state=1"),
        ("https://cdn/live.m3u8?hdnts=exp=1~acl=/*~hmac=hunter2&fps=25", "https://cdn/live.m3u8?hdnts=***&fps=25"),
        ("https://cdn/live.m3u8?hmac=hunter2&jwt=hunter2", "https://cdn/live.m3u8?hmac=***&jwt=***"),
        ("srt://relay:9000?streamid=publish:live/hunter2&latency=200", "srt://relay:9000?streamid=***&latency=200"),
        # RTMP stream keys: the last path segment after the application.
        ("rtmp://a.rtmp.youtube.com/live2/hunter2-ab12-cd34", "rtmp://a.rtmp.youtube.com/live2/***"),
        ("rtmps://live.twitch.tv:443/app/live_123_hunter2", "rtmps://live.twitch.tv:443/app/***"),
        ("rtmp://relay:1935/app/instance/hunter2?sig=hunter2", "rtmp://relay:1935/app/instance/***?sig=***"),
        ("rtmp://u:hunter2@relay/live/hunter2", "rtmp://***@relay/live/***"),
        ("RTMP://relay/live/hunter2", "RTMP://relay/live/***"),
        ("rtmp://relay:live/hunter2", "rtmp://relay:live/***"),  # a mistyped port
        ("rtmp://relay/live", "rtmp://relay/live"),  # an application and no key
        ("rtmp://relay/live/", "rtmp://relay/live/"),
        # Secrets in the path of any URL: camera firmwares' NAME=VALUE segments, /token/<secret>/, random-looking
        # segments (CDN tokens, signed paths, UUIDs, JWTs) and random-looking query values whatever their name.
        ("rtsp://cam:554/user=admin&password=hunter2&channel=1&stream=0.sdp?",
         "rtsp://cam:554/user=***&password=***&channel=1&stream=0.sdp?"),
        ("rtsp://cam:554/user=admin_password=hunter2_channel=1_stream=0.sdp?real_stream",
         "rtsp://cam:554/user=***?real_stream"),
        ("rtsp://cam/channel=1_password=hunter2_stream=0.sdp", "rtsp://cam/channel=1_password=***"),
        ("https://cdn/token/hunter2/live.m3u8", "https://cdn/token/***/live.m3u8"),
        ("https://cdn/auth/hunter2/secret/hunter2/x.ts", "https://cdn/auth/***/secret/***/x.ts"),
        ("https://cdn/hls/3f9a8c7d2e1b4a5f6c7d8e9f0a1b2c3d/index.m3u8", "https://cdn/hls/***/index.m3u8"),
        ("https://cdn/v/123e4567-e89b-12d3-a456-426614174000/seg.ts", "https://cdn/v/***/seg.ts"),
        ("https://cdn/live/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJodW50ZXIyIn0.c2ln/p.m3u8", "https://cdn/live/***/p.m3u8"),
        ("https://cdn/s/hUnTer2Xq7Lm9Pz3/index.m3u8", "https://cdn/s/***/index.m3u8"),
        ("http://nginx/clip.mp4?md5=hUnTer2Xq7Lm9Pz3Ab&expires=1700000000",
         "http://nginx/clip.mp4?md5=***&expires=1700000000"),
        ("https://cdn/x;jsessionid=hunter2?x=1", "https://cdn/x;jsessionid=***?x=1"),
        ("http://cam/videostream.cgi?loginuse=admin&loginpas=hunter2&res=0",
         "http://cam/videostream.cgi?loginuse=***&loginpas=***&res=0"),
        ("http://cam/snapshot.cgi?usr=admin&pw=hunter2", "http://cam/snapshot.cgi?usr=***&pw=***"),
        # Camera and CDN paths that hold no secret stay readable.
        ("rtsp://cam/Streaming/Channels/101", "rtsp://cam/Streaming/Channels/101"),
        ("rtsp://cam/cam/realmonitor?channel=1&subtype=0", "rtsp://cam/cam/realmonitor?channel=1&subtype=0"),
        ("rtsp://cam/live/ch00_0", "rtsp://cam/live/ch00_0"),
        ("https://cdn/front_door_camera_main_stream_high/segment_00001.ts",
         "https://cdn/front_door_camera_main_stream_high/segment_00001.ts"),
        ("https://cdn/2024-01-15/20240115120000.ts?fps=25", "https://cdn/2024-01-15/20240115120000.ts?fps=25"),
        # URLs inside messages, log lines and tracebacks; the punctuation after a URL stays.
        (
            "error: Connection refused: 'rtsp://a:b@h/x' then 'rtmp://c:d@h/y'",
            "error: Connection refused: 'rtsp://***@h/x' then 'rtmp://***@h/y'",
        ),
        ("rtmp://relay/live/hunter2: cannot stream there", "rtmp://relay/live/***: cannot stream there"),
        ("StreamError('rtsp://admin:hun ter2@cam/s: refused')", "StreamError('rtsp://***@cam/s: refused')"),
        ('  File "x.py", line 3\n    rtsp://a:hunter2@h/x\nnext@line', '  File "x.py", line 3\n    rtsp://***@h/x\nnext@line'),
        ("options token=hunter2 api_key=hunter2 timeout=5", "options token=*** api_key=*** timeout=5"),
        ("API_KEY=hunter2 TOKEN=HUNTER2X", "API_KEY=*** TOKEN=***"),
        ("input_options={'api_key': 'hunter2', \"Token\": \"hunter2\", 'fps': '25'}",
         "input_options={'api_key': '***', \"Token\": \"***\", 'fps': '25'}"),
        ("--input-option: expected KEY=VALUE", "--input-option: expected KEY=VALUE"),  # usage text, no secret
        # Nothing to hide.
        ("rtsp://cam.local/stream1", "rtsp://cam.local/stream1"),
        ("rtsp://cam.local:554/s?fps=25#t=3", "rtsp://cam.local:554/s?fps=25#t=3"),
        ("/dev/video0", "/dev/video0"),
        ("clip.mp4", "clip.mp4"),
        ("me@example.org wrote", "me@example.org wrote"),  # not a URL: left alone
    ],
)
def test_redact_url_hides_credentials_and_keeps_the_rest(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert SECRET not in expected
    assert redact_url(expected) == expected  # twice is the same as once


def test_redacting_filter_cleans_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "lost %s", ("rtsp://u:hunter2@cam/s",), None)
    try:
        raise ConnectionError("rtsp://u:hunter2@cam/s refused")
    except ConnectionError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2" not in text
    assert "rtsp://***@cam/s" in text


def test_backoff_grows_exponentially_and_is_capped() -> None:
    backoff = Backoff(initial=0.5, maximum=4, factor=2, attempts=5)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert not backoff.exhausted(4) and backoff.exhausted(5)
    assert not Backoff().exhausted(10_000)  # default: retry forever


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"attempts": -1}]
)
def test_backoff_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kwargs)


def test_latest_slot_keeps_the_newest_and_counts_what_it_replaced() -> None:
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(timeout=0) == 4
    assert slot.dropped == 4
    assert slot.take(timeout=0.01) is None

    threading.Timer(0.05, slot.put, args=("late",)).start()
    t0 = time.monotonic()
    assert slot.take(timeout=5) == "late"  # a waiting consumer wakes as soon as an item arrives
    assert time.monotonic() - t0 < 2


class _FakeSource:
    def __init__(self) -> None:
        self.origin = time.monotonic()

    def clock(self) -> float:
        return time.monotonic() - self.origin

    def counters(self) -> dict:
        return {"frames_received": 10, "frames_dropped": 3, "reconnects": 1, "errors": ["gave up"]}


class _FakeSink:
    def describe(self) -> dict:
        return {"uri": "rtmp://***@relay/live"}


def test_live_monitor_rewrites_the_stats_file_with_latency_percentiles(tmp_path) -> None:
    source = _FakeSource()
    path = tmp_path / "stats.json"
    seen = []
    monitor = LiveMonitor(source, [_FakeSink()], path, interval=0.05, then=lambda s: seen.append(s.frames_out))
    stats = RunStats()
    for _ in range(3):
        stats.last_frame_time = source.clock() - 0.1  # each frame handed over 100 ms after it arrived
        stats.frames_out += 1
        monitor(stats)
        time.sleep(0.06)
    written = json.loads(path.read_text())
    live = written["live"]
    assert live["frames_dropped"] == 3 and live["reconnects"] == 1
    assert 90 <= live["latency"]["p50_ms"] < 500
    assert written["outputs"] == [{"uri": "rtmp://***@relay/live"}]
    assert "gave up" in written["errors"]
    assert seen == [1, 2, 3]  # the caller's own on_frame still runs


def test_live_monitor_rejects_a_zero_interval() -> None:
    with pytest.raises(ConfigError):
        LiveMonitor(_FakeSource(), [], None, interval=0)


def test_stats_json_never_shows_a_stream_secret(tmp_path) -> None:
    stats = RunStats(
        input={"uri": f"rtsp://admin:{SECRET}@cam/s", "kind": "stream"},
        outputs=[{"uri": f"rtmp://relay/live/{SECRET}", "frames": 3}, {"uri": "rec.mp4"}],
    )
    stats.note_error(f"restream lost: 'rtmp://relay/live/{SECRET}?token={SECRET}': Broken pipe")
    stats.live = {"errors": [f"https://cdn/x.m3u8?access_token={SECRET}: 403"]}
    path = tmp_path / "stats.json"
    stats.write(path)
    text = path.read_text()
    assert SECRET not in text
    written = json.loads(text)
    assert written["input"]["uri"] == "rtsp://***@cam/s"
    assert [o["uri"] for o in written["outputs"]] == ["rtmp://relay/live/***", "rec.mp4"]
    assert written["outputs"][0]["frames"] == 3
