"""Live audio end to end through a real nginx-rtmp relay: in sync, across an outage, in recordings and restreams.

A flash-and-beep feed (25 fps H.264 + AAC; a one-frame white flash and a beep at every whole second) is
published to the relay by Debian's ffmpeg; the tool pulls it, records it and restreams it to the same relay,
from which ffmpeg copies the restream into a file. Sync is the time between each flash and its beep. Two
frame intervals (80 ms) is the bound; margins stay wide because the 2-core CI machine runs the publisher, the
relay, the tool and the recorder at once.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.live_servers import (
    FlashBeepFeed,
    RtmpRelay,
    av_offsets,
    beep_times,
    black_spans,
    finish,
    flash_beep_args,
    start_cli,
)

SYNC_BOUND = 0.080  # seconds: two frame intervals at 25 fps

TOOL = """
import sys
from camouflage_video.api import anonymize
from camouflage_video.streaming import Backoff
audio = sys.argv[1] == "audio"
try:
    anonymize(sys.argv[2], sys.argv[3:], method="blur", verify=False, audio=audio,
              source_options={"read_timeout": 2.0, "reconnect": Backoff(initial=0.3, maximum=1.0)})
except KeyboardInterrupt:
    sys.exit(130)
"""


def start_tool(mode: str, url: str, *outputs: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", TOOL, mode, url, *outputs], stderr=subprocess.PIPE, text=True,
                            env=env)


def copy_stream(url: str, path: Path, seconds: float, until: float) -> None:
    """Debian ffmpeg copying a stream from the relay into ``path`` once it is published (retried until then)."""
    while time.monotonic() < until and not path.exists():
        subprocess.run(["ffmpeg", "-v", "quiet", "-y", "-i", url, "-t", str(seconds), "-c", "copy", str(path)],
                       stdin=subprocess.DEVNULL, timeout=seconds + 30, check=False)
        if not path.exists() or path.stat().st_size < 10_000:
            path.unlink(missing_ok=True)
            time.sleep(0.5)


def duration(path: Path, kind: str) -> float:
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(**{kind: 0}))
    return float(frames[-1].time - frames[0].time)


@pytest.fixture(scope="module")
def sync_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of about 25 s: recorded and restreamed, the feed gone for 4 s in the middle."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    tmp = tmp_path_factory.mktemp("audio")
    recording, restream = tmp / "recording.mp4", tmp / "restream.mkv"
    with RtmpRelay(tmp / "nginx").start() as relay:
        feed = FlashBeepFeed(relay.url("feed")).start()
        try:
            time.sleep(1.5)  # the relay has the feed
            tool = start_tool("audio", relay.url("feed"), str(recording), relay.url("anon"))
            recorder = threading.Thread(target=copy_stream, args=(relay.url("anon"), restream, 14.0,
                                                                  time.monotonic() + 40), daemon=True)
            recorder.start()
            time.sleep(10)
            feed.kill()
            time.sleep(4)
            feed.start()
            time.sleep(10)
            code, err = finish(tool, timeout=40)
            recorder.join(timeout=40)
        finally:
            feed.stop()
    return {"recording": recording, "restream": restream, "code": code, "stderr": err}


def test_live_audio_is_recorded_in_sync_with_the_pictures(sync_run: dict) -> None:
    assert sync_run["code"] == 130, sync_run["stderr"][-2000:]
    offsets = [o for _, o in av_offsets(sync_run["recording"])]
    assert len(offsets) >= 8, f"only {len(offsets)} flashes paired with beeps: {sync_run['stderr'][-2000:]}"
    assert abs(statistics.median(offsets)) <= SYNC_BOUND, offsets


def test_audio_is_silent_during_an_outage_and_in_sync_after_it(sync_run: dict) -> None:
    recording = sync_run["recording"]
    outages = [(a, b) for a, b in black_spans(recording) if b - a > 2]  # the feed's 4 s away
    assert len(outages) == 1, f"no single outage in the recording: {black_spans(recording)}"
    start, end = outages[0]
    # Silence while the pictures are black.
    assert not [b for b in beep_times(recording) if start + 0.2 < b < end - 0.2]
    # No drift after the reconnect: the flashes after it are still in sync.
    after = [o for flash, o in av_offsets(recording) if flash > end]
    assert len(after) >= 4 and abs(statistics.median(after)) <= SYNC_BOUND, after
    # One track from start to end: the audio lasts as long as the pictures, outage included.
    assert abs(duration(recording, "audio") - duration(recording, "video")) < 0.25


def test_a_restream_carries_the_audio_in_sync(sync_run: dict) -> None:
    restream = sync_run["restream"]
    assert restream.exists(), "the restream could not be read back from the relay"
    offsets = [o for _, o in av_offsets(restream)]
    assert len(offsets) >= 4, offsets
    assert abs(statistics.median(offsets)) <= SYNC_BOUND, offsets


def test_hls_audio_is_carried_in_sync(tmp_path: Path) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from camouflage_video.api import anonymize
    from camouflage_video.streaming import Backoff

    playlist = tmp_path / "hls" / "index.m3u8"
    playlist.parent.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", *flash_beep_args(seconds=10), "-f", "hls", "-hls_time", "1",
                    "-hls_list_size", "0", str(playlist)], check=True, timeout=60)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(playlist.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    recording = tmp_path / "hls.mp4"
    try:  # the playlist ends: no reconnect, the run ends with it
        anonymize(f"http://127.0.0.1:{server.server_address[1]}/index.m3u8", recording, method="blur",
                  verify=False, det_size=320, source_options={"reconnect": Backoff(attempts=0)})
    finally:
        server.shutdown()
        server.server_close()
    offsets = [o for _, o in av_offsets(recording)]
    # A flash is one picture: on a loaded machine the newest-frame policy drops some of them.
    assert len(offsets) >= 2 and abs(statistics.median(offsets)) <= SYNC_BOUND, offsets


def test_no_audio_on_the_command_line_drops_the_live_audio(tmp_path: Path) -> None:
    recording = tmp_path / "silent.mp4"
    with RtmpRelay(tmp_path / "nginx").start() as relay, FlashBeepFeed(relay.url("feed")).start():
        time.sleep(1.5)
        tool = start_cli(relay.url("feed"), "-o", str(recording), "--no-audio", "--no-verify", "-q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(tmp_path.glob(".silent.*")):
            time.sleep(0.2)
        time.sleep(3)
        code, err = finish(tool, timeout=40)
    assert code == 130, err[-2000:]
    import av

    with av.open(str(recording)) as container:
        assert container.streams.video and not container.streams.audio
