"""A camera's process that fails keeps what it had recorded: the segment it was writing is published, playable.

Real processes against a real camera stand-in (gst-rtsp-server): a camera whose feed raises mid-segment (exit
1, the runner's failure path), and one that the service sees killed outright (``kill -9``: nothing is
finalized, the fragmented temporary is recovered by the service before it starts the camera again). Margins
are wide: the 2-core CI machine runs the camera, the service and the detector at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

from camouflage_video.annotators.faces import CenterFaceDetector
from tests.conftest import REPO
from tests.live_servers import RtspCamera, free_port
from tests.serve.test_service import start_service, value, wait_for

#: The camera's process with its feed failing for good after 40 pictures (what a source that raises does).
FAILING_CAMERA = """
import sys
from camouflage_video.errors import StreamError
from camouflage_video.serve import camera
from camouflage_video.sources.stream import StreamSource

pictures = StreamSource.__iter__

def fail_after_40(self):
    for index, frame in enumerate(pictures(self)):
        if index == 40:
            raise StreamError("the feed failed for good")
        yield frame

StreamSource.__iter__ = fail_after_40
raise SystemExit(camera.main())
"""

CAMERA = {"verify": False, "det_size": 320, "read_timeout": 2, "reconnect_delay": 0.3, "reconnect_max_delay": 1}


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def assert_anonymized(frames: list[np.ndarray]) -> None:
    """The camera's pictures (not black), with no face a detector finds (the camera shows one in each)."""
    detector = CenterFaceDetector(thresh=0.3)
    assert all(frame.mean() > 30 for frame in frames)
    seen = sum(len(detector.detect(frame)) > 0 for frame in frames)
    assert seen == 0, f"a face is recognisable in {seen} of {len(frames)} recorded pictures"


def test_a_camera_whose_feed_fails_publishes_the_segment_it_was_writing(camera_frames: Path, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    settings = {"camera": {"name": "door", "input": "", "outputs": [str(recordings / "door.mp4")],
                           "segment": "10m", **CAMERA}, "parent": os.getpid()}
    with RtspCamera(camera_frames, 640, 360).start() as cam:
        settings["camera"]["input"] = cam.url()
        run = subprocess.run([sys.executable, "-c", FAILING_CAMERA], input=json.dumps(settings) + "\n",
                             capture_output=True, text=True, timeout=240,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert run.returncode == 1, run.stderr[-3000:]
    assert "the feed failed for good" in run.stderr
    assert not list(recordings.glob(".*")), "a segment was left under its temporary name"
    (segment,) = recordings.glob("door_*.mp4")  # before: none, the 40 pictures were discarded
    frames = pictures(segment)
    assert 30 <= len(frames) <= 40, len(frames)
    assert_anonymized(frames)


def camera_pid(service: int) -> int | None:
    children = Path(f"/proc/{service}/task/{service}/children").read_text().split()
    return int(children[0]) if children else None


def test_a_killed_camera_process_keeps_its_segment_and_starts_a_new_one(camera_frames: Path, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    port = free_port()
    config = tmp_path / "cameras.toml"
    log = tmp_path / "service.log"
    with RtspCamera(camera_frames, 640, 360).start() as cam:
        config.write_text(f'metrics = "127.0.0.1:{port}"\nstall_timeout = 60\n'
                          + "".join(f"{k} = {json.dumps(v)}\n" for k, v in CAMERA.items())
                          + f'[[camera]]\nname = "door"\ninput = "{cam.url()}"\n'
                          f'outputs = ["{recordings}/door.mp4"]\nsegment = "10m"\n')
        service = start_service(config, log)
        try:
            # 80 pictures: at 25 a second, at least two complete one-second fragments on disk
            page = wait_for(port, lambda p: value(p, "camouflage_frames_written_total", "door") >= 80, timeout=120)
            written = value(page, "camouflage_frames_written_total", "door")
            assert written >= 80, log.read_text()[-3000:]
            pid = camera_pid(service.pid)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # nothing runs in it any more: no finalizing
            page = wait_for(port, lambda p: value(p, "camouflage_camera_restarts_total", "door") == 1
                            and value(p, "camouflage_frames_written_total", "door") > written + 25, timeout=120)
            assert value(page, "camouflage_camera_restarts_total", "door") == 1, log.read_text()[-3000:]
            time.sleep(1.5)  # past the second of its new segment's name
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=60) == 130
        finally:
            if service.poll() is None:
                service.kill()
                service.wait()
    text = log.read_text()
    assert "recovered what a stopped process was writing" in text, text[-3000:]
    assert not list(recordings.glob(".*")), "a segment was left under its temporary name"
    killed, restarted = sorted(recordings.glob("door_*.mp4"))  # before: only the one after the restart
    frames = pictures(killed)
    assert len(frames) >= 25, len(frames)  # its complete fragments: what was written up to the last second
    assert_anonymized(frames[::5])
    assert len(pictures(restarted)) > 0
