"""Credential redaction, reconnection backoff, the newest-frame mailbox and live stats (no servers needed)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.live import Backoff, LatestSlot, LiveMonitor, RedactingFilter, redact_url
from camouflage_video.stats import RunStats


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:s3cret@cam.local:554/stream1", "rtsp://***@cam.local:554/stream1"),
        ("rtmp://user:p@ss@relay/live/key", "rtmp://***@relay/live/key"),  # an unencoded @ in the password
        ("rtsp://token@cam/s", "rtsp://***@cam/s"),
        ("http://cam/video.m3u8?user=bob&password=hunter2&q=1", "http://cam/video.m3u8?user=***&password=***&q=1"),
        (
            "error: Connection refused: 'rtsp://a:b@h/x' then 'rtmp://c:d@h/y'",
            "error: Connection refused: 'rtsp://***@h/x' then 'rtmp://***@h/y'",
        ),
        ("rtsp://cam.local/stream1", "rtsp://cam.local/stream1"),
        ("/dev/video0", "/dev/video0"),
        ("me@example.org wrote", "me@example.org wrote"),  # not a URL: left alone
    ],
)
def test_redact_url_hides_credentials(text: str, expected: str) -> None:
    assert redact_url(text) == expected


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
