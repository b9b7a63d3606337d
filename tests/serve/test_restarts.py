"""How the service handles a camera process that ended: its segments are published off the watch loop, and the
next process starts only after that.

The camera process itself is stood in for by a finished ``python -c pass`` and ``start`` is recorded instead of
run (the restart is not what is checked here; ``test_service.py`` and ``test_failures.py`` run real cameras). The
recovery is held on an event to stand in for a long one: a real segment of an hour takes seconds to cut and check.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from camouflage_video.serve import service
from camouflage_video.serve.config import parse_config


def ended_camera(tmp_path: Path, monkeypatch, names: list[str]):  # noqa: ANN001
    config = parse_config({"method": "pixelate", "camera": [
        {"name": name, "input": "rtsp://127.0.0.1:9/none", "outputs": [str(tmp_path / f"{name}.mp4")]}
        for name in names]})
    cameras = [service.CameraProcess(c, stall_timeout=30.0) for c in config.cameras]
    for camera in cameras:
        camera.proc = subprocess.Popen([sys.executable, "-c", "pass"])
        camera.proc.wait()
        camera.started = []
        monkeypatch.setattr(camera, "start", lambda c=camera: c.started.append(time.monotonic()))
    return cameras


def test_a_long_recovery_does_not_hold_up_watching_the_other_cameras(tmp_path, monkeypatch):
    release, recovering = threading.Event(), []

    def slow_recovery(base: Path):
        recovering.append(base.name)
        release.wait(10)
        return [], []

    monkeypatch.setattr(service, "recover_stale_segments", slow_recovery)
    door, yard = ended_camera(tmp_path, monkeypatch, ["door", "yard"])
    began = time.monotonic()
    door.poll(time.monotonic())
    yard.poll(time.monotonic())
    assert time.monotonic() - began < 5  # both polls returned while both recoveries are still held
    deadline = time.monotonic() + 5
    while len(recovering) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(recovering) == ["door.mp4", "yard.mp4"] and door.recovering and yard.recovering
    for camera in (door, yard):
        camera.poll(time.monotonic() + 3600)  # its backoff long over
    assert door.started == yard.started == []  # not while its segments are being published
    release.set()
    door._recovery.join(10)
    yard._recovery.join(10)
    door.poll(time.monotonic() + 3600)
    yard.poll(time.monotonic() + 3600)
    assert len(door.started) == len(yard.started) == 1


def test_stopping_waits_for_a_recovery_in_progress(tmp_path, monkeypatch):
    finished = []

    def slow_recovery(base: Path):
        time.sleep(0.5)
        finished.append(base.name)
        return [], []

    monkeypatch.setattr(service, "recover_stale_segments", slow_recovery)
    (door,) = ended_camera(tmp_path, monkeypatch, ["door"])
    door.poll(time.monotonic())
    door.wait(time.monotonic() + 5)
    assert finished == ["door.mp4"] and not door.recovering


def test_a_recovery_that_fails_is_logged_and_the_camera_still_restarts(tmp_path, monkeypatch, caplog):
    def broken_recovery(base: Path):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(service, "recover_stale_segments", broken_recovery)
    (door,) = ended_camera(tmp_path, monkeypatch, ["door"])
    door.poll(time.monotonic())
    door._recovery.join(10)
    door.poll(time.monotonic() + 3600)
    assert len(door.started) == 1
    assert "could not recover the segments of" in caplog.text and "disk gone" in caplog.text


def test_stopping_gives_up_a_recovery_that_outlasts_the_stop_deadline(tmp_path, monkeypatch, caplog):
    """A recovery cut off leaves the killed writer's file whole under its temporary name (it only ever publishes
    a checked copy, or a file it cut at a fragment's end), so the next start recovers it again."""
    release = threading.Event()

    def stuck_recovery(base: Path):
        release.wait(60)
        return [], []

    monkeypatch.setattr(service, "recover_stale_segments", stuck_recovery)
    monkeypatch.setattr(service, "_RECOVERY_GRACE", 0.5)
    (door,) = ended_camera(tmp_path, monkeypatch, ["door"])
    door.poll(time.monotonic())
    began = time.monotonic()
    try:
        door.wait(time.monotonic() + 1.0)
        assert time.monotonic() - began < 10 and door.recovering
        assert "still publishing what its ended process wrote" in caplog.text
    finally:
        release.set()
