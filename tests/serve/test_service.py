"""The service end to end: three cameras (two gst-rtsp-server cameras, one feed through nginx-rtmp) in one run.

One run of ``camouflage-video serve`` of about a minute, shared by the tests below: a camera is killed and
restarted while the others keep recording, one camera's process stalls and the service kills and restarts
it, /metrics is scraped over HTTP, and SIGTERM ends it. Segments are checked with ffprobe. Margins are wide:
on the 2-core CI machine the cameras, the relay, the feed's publisher and the three cameras' processes share
the cores.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, ffprobe
from tests.live_servers import FlashBeepFeed, RtmpRelay, RtspCamera, free_port

SECRET = "hunter2"
SEGMENT = 4.0

def start_service(config: Path, log: Path) -> subprocess.Popen:
    """``camouflage-video serve CONFIG`` from this checkout, its stderr going to ``log``."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "camouflage_video", "serve", str(config)], stderr=err,
                                stdout=subprocess.DEVNULL, env=env)


def scrape(port: int) -> tuple[str, str]:
    """The /metrics page and its content type ('' if the service does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return answer.read().decode(), answer.headers["Content-Type"]
    except OSError:
        return "", ""


def value(page: str, series: str, camera: str) -> float:
    match = re.search(rf'^{series}\{{camera="{camera}"\}} (\S+)$', page, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


def wait_for(port: int, check, timeout: float) -> str:  # noqa: ANN001 - (page) -> bool
    deadline = time.monotonic() + timeout
    page = ""
    while time.monotonic() < deadline:
        page = scrape(port)[0]
        if page and check(page):
            return page
        time.sleep(0.5)
    return page


def camera_process(service: int, recording_stem: str) -> int | None:
    """The pid of the service's camera process that has a file of ``recording_stem`` open."""
    for child in Path(f"/proc/{service}/task/{service}/children").read_text().split():
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir()]
        except OSError:
            continue
        if any(f"/.{recording_stem}." in link for link in links):
            return int(child)
    return None


@pytest.fixture(scope="module")
def service_run(camera_frames: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("serve")
    recordings = tmp / "recordings"
    recordings.mkdir()
    door_cam = RtspCamera(camera_frames, 640, 360).start()
    yard_cam = RtspCamera(camera_frames, 640, 360).start()
    relay = RtmpRelay(tmp / "nginx").start()
    feed = FlashBeepFeed(relay.url("hall")).start()
    port = free_port()
    config = tmp / "cameras.toml"
    config.write_text(f"""
metrics = "127.0.0.1:{port}"
verify = false
det_size = 320          # three cameras on two cores
read_timeout = 2
reconnect_delay = 0.3
reconnect_max_delay = 1
stall_timeout = 8       # a camera's process that reports nothing this long is killed and restarted

[[camera]]
name = "door"
input = "{door_cam.url(f'admin:{SECRET}@')}"
outputs = ["{recordings}/door.mp4", "{relay.url('door-' + SECRET)}"]
segment = "{SEGMENT:g}s"

[[camera]]
name = "yard"
input = "{yard_cam.url()}"
outputs = ["{recordings}/yard.mp4", "rtmp://127.0.0.1:{free_port()}/live/nobody-there"]
method = "pixelate"

[[camera]]
name = "hall"
input = "{relay.url('hall')}"
outputs = ["{recordings}/hall.mkv"]
segment = "{SEGMENT:g}s"
""")
    log = tmp / "service.log"
    run: dict = {"recordings": recordings}
    service = start_service(config, log)
    try:
        page = wait_for(port, lambda p: all(value(p, "camouflage_frames_written_total", c) > 10
                                            for c in ("door", "yard", "hall")), timeout=90)
        run["started"] = page
        # One camera goes away: the others keep recording.
        door_cam.kill()
        time.sleep(1)
        before = scrape(port)[0]
        time.sleep(4)
        run["door_down"] = during = scrape(port)[0]
        run["others_during_outage"] = {
            c: value(during, "camouflage_frames_written_total", c) - value(before, "camouflage_frames_written_total", c)
            for c in ("yard", "hall")
        }
        door_cam.start()  # same port
        run["door_back"] = wait_for(port, lambda p: value(p, "camouflage_reconnects_total", "door") >= 1
                                    and value(p, "camouflage_camera_connected", "door") == 1, timeout=30)
        # One camera's process stalls (stopped: as stuck as a process gets): the others go on, the service
        # kills it after stall_timeout and starts it again.
        pid = camera_process(service.pid, "yard")
        run["yard_pid"] = pid
        before = scrape(port)[0]
        written = value(before, "camouflage_frames_written_total", "yard")
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(5)
        during = scrape(port)[0]
        run["others_during_stall"] = {
            c: value(during, "camouflage_frames_written_total", c) - value(before, "camouflage_frames_written_total", c)
            for c in ("door", "hall")
        }
        run["yard_restarted"] = wait_for(port, lambda p: value(p, "camouflage_camera_restarts_total", "yard") == 1
                                         and value(p, "camouflage_frames_written_total", "yard") > written + 10,
                                         timeout=60)
        run["page"], run["content_type"] = scrape(port)
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        run["code"] = service.wait(timeout=60)
        run["stop_seconds"] = time.monotonic() - started
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        for server in (feed, relay, door_cam, yard_cam):
            server.stop()
    run["log"] = log.read_text()
    return run


def test_three_cameras_run_in_one_service(service_run: dict) -> None:
    page = service_run["started"]
    for camera in ("door", "yard", "hall"):
        assert value(page, "camouflage_frames_written_total", camera) > 10, service_run["log"][-3000:]
        assert value(page, "camouflage_camera_up", camera) == 1
    assert value(page, "camouflage_faces_total", "door") > 0  # the cameras show a face; the feed does not
    assert value(page, "camouflage_faces_total", "hall") == 0


def test_a_camera_that_goes_away_does_not_stop_the_others_and_comes_back(service_run: dict) -> None:
    assert all(n >= 10 for n in service_run["others_during_outage"].values()), service_run["others_during_outage"]
    down = service_run["door_down"]
    assert value(down, "camouflage_camera_connected", "door") == 0
    assert value(down, "camouflage_outage_frames_total", "door") > 0  # black frames kept its outputs alive
    back = service_run["door_back"]
    assert value(back, "camouflage_reconnects_total", "door") >= 1, service_run["log"][-3000:]


def test_a_restream_server_that_is_not_there_does_not_stop_the_recording(service_run: dict) -> None:
    assert "the other outputs go on" in service_run["log"]
    assert value(service_run["started"], "camouflage_frames_written_total", "yard") > 10


def test_a_stalled_camera_process_does_not_stop_the_others_and_is_restarted(service_run: dict) -> None:
    assert service_run["yard_pid"] is not None, "no camera process had the yard recording open"
    assert all(n >= 10 for n in service_run["others_during_stall"].values()), service_run["others_during_stall"]
    page = service_run["yard_restarted"]
    assert value(page, "camouflage_camera_restarts_total", "yard") == 1, service_run["log"][-3000:]
    assert value(page, "camouflage_camera_restarts_total", "door") == 0
    assert "[yard] no report for 8 s" in service_run["log"]
    assert "[yard] the camera's process ended" in service_run["log"]


def test_metrics_are_served_over_http_in_prometheus_text_format(service_run: dict) -> None:
    page = service_run["page"]
    assert service_run["content_type"].startswith("text/plain; version=0.0.4")
    for series in ("camouflage_frames_received_total", "camouflage_frames_processed_total",
                   "camouflage_frames_dropped_total", "camouflage_reconnects_total",
                   "camouflage_fallback_frames_total", "camouflage_faces_total",
                   "camouflage_turn_wait_seconds_total", "camouflage_turns_given_up_total"):
        assert f"# TYPE {series} counter" in page
        assert all(value(page, series, c) >= 0 for c in ("door", "yard", "hall")), series
    assert re.search(r'^camouflage_latency_seconds\{camera="hall",quantile="0.5"\} [0-9.]+$', page, re.MULTILINE)


def test_credentials_never_reach_the_metrics_or_the_log(service_run: dict) -> None:
    assert SECRET not in service_run["page"] and "rtsp://" not in service_run["page"]
    assert SECRET not in service_run["log"]
    assert "rtsp://***@127.0.0.1" in service_run["log"]  # the outage was logged, redacted


def test_sigterm_finalizes_every_recording(service_run: dict) -> None:
    assert service_run["code"] == 130, service_run["log"][-3000:]
    assert service_run["stop_seconds"] < 30
    recordings = service_run["recordings"]
    assert not list(recordings.glob(".*")), "a recording was left under its temporary name"
    names = sorted(p.name for p in recordings.iterdir())
    # yard's stalled process was killed: what it recorded was recovered as yard.mp4, and its next process
    # recorded into yard-1.mp4 instead of replacing it.
    assert "yard.mp4" in names and "yard-1.mp4" in names, names
    assert any(n.startswith("door_") for n in names) and any(n.startswith("hall_") for n in names)
    for path in recordings.iterdir():
        frames = ffprobe(path, "stream=codec_type,nb_read_frames").split()
        assert any(line.startswith("video,") and int(line.split(",")[1]) > 0 for line in frames), (path, frames)


def first_picture(path: Path) -> str:
    """``key_frame,pts_time`` of a file's first picture, as Debian's ffprobe reads it."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries",
         "frame=key_frame,pts_time", "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


def segments(recordings: Path, camera: str) -> list[tuple[float, float, Path]]:
    """(start on the run's clock, length, path) of a camera's segments, in order. The length runs from the
    file's time 0 to its end: the format's duration also counts the AAC encoder's priming samples, which
    start 1024 samples (21 ms) before time 0 and are not played."""
    found = []
    for path in sorted(recordings.glob(f"{camera}_*")):
        out = ffprobe(path, "format=start_time,duration:format_tags=comment").strip().split("\n")[0]
        first, duration, comment = out.split(",", 2)
        start = float(re.search(r"starts ([0-9.]+) s", comment).group(1))
        found.append((start, float(first) + float(duration), path))
    return sorted(found)


@pytest.mark.parametrize("camera", ["door", "hall"])
def test_segments_follow_each_other_without_gap_or_overlap_and_each_plays(service_run: dict, camera: str) -> None:
    parts = segments(service_run["recordings"], camera)
    assert len(parts) >= 3, parts
    for (start, duration, path), (next_start, _, _) in zip(parts, parts[1:], strict=False):
        assert abs(start + duration - next_start) < 0.03, (path, start, duration, next_start)  # one AAC frame
        assert SEGMENT - 0.05 <= duration < SEGMENT + 1.0, (path, duration)
    for _, _, path in parts:
        first = first_picture(path)  # each segment starts with a keyframe at 0: it plays on its own
        assert first.startswith("1,0.0"), (path, first)
    if camera == "hall":  # the feed has sound: every segment carries it
        assert all("audio" in ffprobe(p, "stream=codec_type") for _, _, p in parts)
