"""The /metrics page: Prometheus text format, one series per camera, counters that survive restarts."""

from __future__ import annotations

import re

from camouflage_video.serve.metrics import CameraMetrics, render

REPORT = {"frames_received": 100, "frames_processed": 80, "frames_written": 80, "frames_dropped": 20,
          "outage_frames": 5, "fallback_frames": 1, "faces": 70, "reconnects": 2, "connected": True,
          "latency": {"p50": 0.04, "p90": 0.06, "p99": 0.09}, "latency_sum": 3.2, "latency_count": 80,
          "turn_wait_seconds": 1.5, "turns_given_up": 1}
SAMPLE = re.compile(r'^[a-z_]+\{camera="[^"]+"(,quantile="[0-9.]+")?\} -?[0-9.e+-]+$')


def test_every_line_is_a_comment_or_a_sample_labelled_by_camera() -> None:
    door = CameraMetrics("door", up=True, report=dict(REPORT))
    page = render([door, CameraMetrics("yard")])
    for line in page.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE.match(line), line
    assert 'camouflage_frames_dropped_total{camera="door"} 20' in page
    assert 'camouflage_latency_seconds{camera="door",quantile="0.9"} 0.06' in page
    assert 'camouflage_camera_up{camera="yard"} 0' in page and page.endswith("\n")


def test_counters_add_up_over_a_cameras_restarts() -> None:
    door = CameraMetrics("door", up=True, report=dict(REPORT))
    door.process_ended()
    door.restarts, door.up, door.report = 1, True, {"frames_received": 10, "connected": True}
    page = render([door])
    assert 'camouflage_frames_received_total{camera="door"} 110' in page
    assert 'camouflage_camera_restarts_total{camera="door"} 1' in page
    assert 'camouflage_latency_seconds_count{camera="door"} 80' in page
    assert 'camouflage_turn_wait_seconds_total{camera="door"} 1.5' in page  # what the first process waited
    assert 'camouflage_turns_given_up_total{camera="door"} 1' in page


def test_a_camera_whose_process_is_down_is_not_connected() -> None:
    door = CameraMetrics("door", up=False, report={"connected": True})
    assert 'camouflage_camera_connected{camera="door"} 0' in render([door])
