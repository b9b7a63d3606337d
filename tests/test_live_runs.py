"""Live runs end to end: a real RTSP camera stand-in in, real RTMP/RTSP servers out, the CLI in a subprocess.

Each test starts its own servers on 127.0.0.1 (see tests/live_servers.py) and kills them in teardown.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from camouflage_video.annotators.faces import CenterFaceDetector
from camouflage_video.monitor import LiveMonitor
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.runner import Runner
from camouflage_video.samples import sample_frames
from camouflage_video.sinks.base import Sink
from camouflage_video.sources import open_source
from camouflage_video.sources.stream import StreamSource
from tests.conftest import ffprobe, read_frames, run_cli, run_cli_failing_with
from tests.live_servers import (
    RtmpRelay,
    RtspCamera,
    StallingRtmpServer,
    StreamReader,
    ffmpeg_rtsp_listener,
    finish,
    free_port,
    start_cli,
)

SECRET = "hunter2"


def test_stream_in_anonymized_stream_out(camera: RtspCamera, relay: RtmpRelay) -> None:
    tool = start_cli(camera.url(), "-o", relay.url(), "-q")
    try:
        # What a viewer of the camera itself sees (same decoding), to compare the anonymized pictures with.
        direct, out = StreamReader(camera.url(), keep=60), StreamReader(relay.url(), timeout=20)
        with direct.start(), out.start():
            arrived = out.wait_frames(12, timeout=25) and direct.wait_frames(60, timeout=10)
            frames, references = list(out.frames), np.stack([f[::4, ::4] for f in direct.frames]).astype(np.int16)
    finally:
        code, err = finish(tool)
    assert arrived, f"no anonymized frames came out of the relay: {out.error} {err}"
    assert code == 130, err
    detector = CenterFaceDetector(thresh=0.3)
    assert all(len(detector.detect(f)) for f in sample_frames(50))  # the camera shows a face in every frame
    seen = [len(detector.detect(f)) for f in frames]
    assert sum(seen) == 0, f"a face is recognisable in {sum(n > 0 for n in seen)} of {len(frames)} output frames"
    # The camera's pictures came through intact, not black and not decoder garbage (which has no face either):
    # apart from the blurred face, each output frame matches a frame of the camera pixel for pixel.
    for frame in frames:
        assert frame.shape == (360, 640, 3)
        difference = np.median(np.abs(references - frame[::4, ::4].astype(np.int16)), axis=(1, 2, 3)).min()
        assert difference < 6, f"an output frame matches no camera frame (median difference {difference})"


@pytest.fixture(scope="module")
def camera_restart_run(camera_frames: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI run with credentials in the camera URL and --debug, the camera killed and restarted mid-stream."""
    tmp = tmp_path_factory.mktemp("restart")
    cam = RtspCamera(camera_frames, 640, 360).start()
    server = RtmpRelay(tmp / "nginx").start()
    recording, stats = tmp / "recording.mp4", tmp / "stats.json"
    tool = start_cli(
        cam.url(f"admin:{SECRET}@"), "-o", server.url(), "-o", str(recording), "--stats", str(stats),
        "--stats-interval", "0.5", "--read-timeout", "2", "--reconnect-delay", "0.3", "--reconnect-max-delay", "1",
        "--debug",
    )
    run: dict = {"port": cam.port, "recording": recording}
    try:
        with StreamReader(server.url(), timeout=20).start() as reader:
            run["before"] = reader.wait_frames(10, timeout=25)
            cam.kill()
            n = len(reader.arrivals)
            run["during_outage"] = reader.wait_frames(n + 15, timeout=15)  # the restream stays alive
            run["outage_black"] = float(np.max(reader.frames[-1]))
            time.sleep(1)
            cam.start()  # same port
            resumed_at = len(reader.arrivals)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                f.std() > 20 for f in reader.frames[-(len(reader.arrivals) - resumed_at) or len(reader.frames) :]
            ):
                time.sleep(0.1)
            run["resumed"] = any(f.std() > 20 for f in reader.frames[-5:])
            run["live_stats"] = json.loads(stats.read_text()) if stats.exists() else {}
    finally:
        try:
            run["code"], run["stderr"] = finish(tool)
        finally:  # a tool that would not stop must not leave the servers running either
            server.stop()
            cam.stop()
    run["stats"] = json.loads(stats.read_text())
    return run


def test_camera_killed_and_restarted_reconnects_and_output_resumes(camera_restart_run: dict) -> None:
    run = camera_restart_run
    assert run["before"], run["stderr"]
    assert run["during_outage"], "the restream stopped while the camera was gone"
    assert run["outage_black"] < 30, "outage frames should be black"
    assert run["resumed"], f"no pictures after the camera came back: {run['stderr'][-2000:]}"
    assert run["code"] == 130
    live = run["stats"]["live"]
    assert live["reconnects"] >= 1 and live["outage_frames"] > 0
    assert "feed lost" in run["stderr"] and "reconnect attempt 1" in run["stderr"] and "reconnected" in run["stderr"]
    # The recording spans the outage with timestamps that never go backwards.
    _, pts, _ = read_frames(run["recording"])
    assert len(pts) == run["stats"]["frames_out"] and all(np.diff(pts) > 0)


def test_credentials_never_appear_in_logs_or_stats(camera_restart_run: dict) -> None:
    run = camera_restart_run
    assert "reconnect attempt" in run["stderr"]  # the run did log about the URL, many times
    assert f"rtsp://***@127.0.0.1:{run['port']}/cam" in run["stderr"]
    assert SECRET not in run["stderr"]
    assert SECRET not in json.dumps(run["stats"]) and SECRET not in json.dumps(run["live_stats"])
    assert run["stats"]["input"]["uri"] == f"rtsp://***@127.0.0.1:{run['port']}/cam"


def test_live_stats_are_rewritten_during_the_run(camera_restart_run: dict) -> None:
    live = camera_restart_run["live_stats"]["live"]  # read while the tool was still running
    assert live["frames_received"] > 0 and "frames_dropped" in live
    assert {"p50_ms", "p90_ms", "p99_ms", "max_ms"} <= set(live["latency"])
    assert camera_restart_run["live_stats"]["frames_out"] > 0


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_nothing_behind_the_url_is_one_clear_line(kind: str, tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1] if kind == "silent" else free_port()
        out = tmp_path / "out.mp4"
        t0 = time.monotonic()
        result = run_cli("anonymize", f"rtsp://admin:{SECRET}@127.0.0.1:{port}/cam", "-o", str(out),
                         "--open-timeout", "1.5", "-q", timeout=60)
        elapsed = time.monotonic() - t0
    reason = "Connection refused" if kind == "refused" else "no answer within 1.5 s"
    assert result.returncode == 1
    assert result.stderr == f"camouflage-video: error: rtsp://***@127.0.0.1:{port}/cam: cannot open stream ({reason})\n"
    assert elapsed < 20
    assert list(tmp_path.iterdir()) == []  # no output, not even a temporary one


def wait_for_frames(stats: Path, count: int, timeout: float = 40) -> int:
    """Frames out of a live run so far, once its stats say ``count`` (or at ``timeout``)."""
    deadline, frames = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and frames < count:
        try:
            frames = json.loads(stats.read_text())["frames_out"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return frames


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_finalizes_the_recording_and_closes_the_restream(camera: RtspCamera, tmp_path: Path, sig: int):
    recording, received = tmp_path / "recording.mp4", tmp_path / "received.mkv"
    url = f"rtsp://127.0.0.1:{free_port()}/anon"
    receiver = ffmpeg_rtsp_listener(url, received)
    stats = tmp_path / "stats.json"
    tool = start_cli(
        camera.url(), "-o", url, "-o", str(recording), "-q", "--stats", str(stats), "--stats-interval", "0.5"
    )
    try:
        wait_for_frames(stats, 10, timeout=25)  # until a few frames went out
        code, err = finish(tool, sig)
        receiver_code = receiver.wait(timeout=15)
    finally:
        receiver.kill()
        receiver.wait()
    assert code == 130, err
    assert receiver_code == 0, "the restream was not closed cleanly (the receiver did not see its end)"
    frames_out = json.loads(stats.read_text())["frames_out"]
    probe = ffprobe(recording, "stream=codec_name,width,height,nb_read_frames").strip()
    assert probe == f"h264,640,360,{frames_out}"  # playable: every frame decodes
    assert list(tmp_path.glob(".*")) == []  # no temporary left, of any kind
    assert len(read_frames(received)[0]) > 0


def test_the_recording_of_a_run_killed_outright_is_recovered_beside_the_next_ones(camera: RtspCamera, tmp_path):
    """kill -9 (or power loss) hours into a live recording must not lose it: what it wrote up to its last whole
    second is published by the next run to that name, beside the file that run writes, never under it."""
    recording, stats = tmp_path / "recording.mp4", tmp_path / "stats.json"
    tool = start_cli(camera.url(), "-o", str(recording), "-q", "--stats", str(stats), "--stats-interval", "0.3")
    try:
        killed_at = wait_for_frames(stats, 75)  # three seconds of the 25 fps camera: three fragments at least
    finally:
        tool.kill()  # SIGKILL: nothing in it runs any more, nothing is finalized
        tool.communicate()
    assert killed_at >= 75 and not recording.exists()
    assert len(list(tmp_path.glob(".recording*"))) == 1  # the fragmented temporary it was writing

    stats = tmp_path / "stats-2.json"
    tool = start_cli(camera.url(), "-o", str(recording), "--stats", str(stats), "--stats-interval", "0.3")
    try:
        wait_for_frames(stats, 10)
    finally:
        code, err = finish(tool)
    assert code == 130, err
    assert "recording-1.mp4: recovered what a stopped process was writing" in err, err
    recovered = tmp_path / "recording-1.mp4"
    frames, _, _ = read_frames(recovered)
    # All but the fragment in progress and the encoder's look-ahead (40 pictures): under three seconds.
    assert killed_at - 75 <= len(frames) <= killed_at + 30 and len(frames) > 0, (len(frames), killed_at)
    detector = CenterFaceDetector(thresh=0.3)  # the camera shows a face in every frame (see above)
    seen = [len(detector.detect(f)) for f in frames]
    assert sum(seen) == 0, f"a face is recognisable in {sum(n > 0 for n in seen)} of {len(frames)} recovered frames"
    second = json.loads(stats.read_text())["frames_out"]
    assert ffprobe(recording, "stream=nb_read_frames").strip() == str(second)  # the second run's own, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == ["recording-1.mp4", "recording.mp4"]


# -- the latency policy, in process with an injected delay -----------------------------------------


class SlowAnonymizer(Anonymizer):
    """The classic blur plus a fixed delay: processing four times slower than the feed."""

    name = "slow-blur"

    def __init__(self, delay: float) -> None:
        self.delay, self.blur = delay, ClassicObfuscator("blur")

    def __call__(self, ctx) -> np.ndarray:
        time.sleep(self.delay)
        return self.blur(ctx)


class TimingSink(Sink):
    """Records how old each frame is when it is handed to the outputs, and its timestamp."""

    def __init__(self, clock) -> None:
        self.clock, self.ages, self.times, self.frames_written = clock, [], [], 0

    def write(self, frame, image) -> None:
        self.ages.append(self.clock() - float(frame.time))
        self.times.append(frame.pts)
        self.frames_written += 1

    def describe(self) -> dict:
        return {"uri": "timing", "frames": self.frames_written}


def test_slow_processing_drops_stale_frames_and_keeps_latency_bounded(camera: RtspCamera) -> None:
    delay, seconds = 0.16, 6.0  # 4 feed frames per processed frame
    with StreamSource(camera.url()) as src:
        sink = TimingSink(src.clock)
        monitor = LiveMonitor(src, [sink])
        stop = threading.Timer(seconds, src.close)
        stop.start()
        stats = Runner(src, [sink], [], SlowAnonymizer(delay), on_frame=monitor).run()
        monitor.update(stats)
    live = stats.live
    assert live["frames_dropped"] > stats.frames_in, "processing 4x slower than the feed must drop most frames"
    assert stats.frames_out == len(sink.ages) >= 0.5 * seconds / delay
    ages = np.array(sink.ages[3:])
    # Fresh frames only: at most one processing interval of waiting, plus the processing itself.
    assert np.percentile(ages, 90) < 3 * delay, ages
    late, early = ages[len(ages) // 2 :], ages[: len(ages) // 2]
    assert np.median(late) < np.median(early) + delay, "latency grew over the run"
    assert all(np.diff(sink.times) > 0)
    assert live["latency"]["p50_ms"] < 3000 * delay


def test_files_never_drop_frames(sample_clip: Path) -> None:
    with open_source(sample_clip) as src:
        assert not src.info.live
        sink = TimingSink(lambda: 0.0)
        stats = Runner(src, [sink], [], SlowAnonymizer(0.01)).run()
    assert stats.frames_out == src.info.frame_count == 50
    assert stats.live == {}


def test_hls_over_http_is_paced_at_its_frame_rate(sample_clip: Path, tmp_path: Path) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import av

    playlist = tmp_path / "hls" / "index.m3u8"
    playlist.parent.mkdir()
    with av.open(str(sample_clip)) as src, av.open(str(playlist), "w", format="hls",
                                                    options={"hls_time": "1", "hls_list_size": "0"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(playlist.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
        with open_source(url) as src:
            assert src.info.fps == Fraction(25)
            t0, frames = time.monotonic(), []
            for frame in src:
                frames.append(frame)
                if len(frames) == 30:
                    break
            elapsed = time.monotonic() - t0
            dropped = src.counters()["frames_dropped"]
    finally:
        server.shutdown()
        server.server_close()
    # HLS arrives a segment at a time; pacing spreads it back out instead of dropping most of it.
    assert elapsed > 0.8 * 29 / 25
    assert dropped <= 3


def test_a_restream_server_that_never_answers_the_handshake_fails_in_time(sample_clip: Path, tmp_path: Path) -> None:
    """FFmpeg would wait forever for the RTMP handshake (holding the GIL); the pre-flight check gives up in 5 s."""
    with socket.socket() as silent:  # accepts connections (the kernel does), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        result = run_cli("anonymize", str(sample_clip), "-o", f"rtmp://user:{SECRET}@127.0.0.1:{port}/live/anon",
                         "-o", str(tmp_path / "rec.mp4"), "--open-timeout", "5", "-q", timeout=60)
        elapsed = time.monotonic() - t0
    assert result.returncode == 1
    assert result.stderr == (
        f"camouflage-video: error: rtmp://***@127.0.0.1:{port}/live/***: cannot stream there (no answer within 5 s)\n"
    )
    assert elapsed < 20
    assert list(tmp_path.iterdir()) == []


def test_a_restream_server_that_stalls_after_the_handshake_fails_in_time(sample_clip: Path, tmp_path: Path) -> None:
    """Past the handshake FFmpeg waits for the RTMP connect's answer without a timeout (and held the GIL)."""
    with StallingRtmpServer().start() as server:
        t0 = time.monotonic()
        result = run_cli("anonymize", str(sample_clip), "-o", server.url(SECRET), "-o", str(tmp_path / "rec.mp4"),
                         "--open-timeout", "5", "-q", timeout=60)
        elapsed = time.monotonic() - t0
    assert server.stalled == 1
    assert result.returncode == 1
    assert result.stderr == (
        f"camouflage-video: error: rtmp://127.0.0.1:{server.port}/live/***: cannot stream there "
        "(no answer within 5 s)\n"
    )
    assert elapsed < 30
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_a_run_whose_restream_stalls_while_connecting(sample_clip: Path, tmp_path: Path, sig: int):
    with StallingRtmpServer().start() as server:
        tool = start_cli(str(sample_clip), "-o", str(tmp_path / "rec.mp4"), "-o", server.url(), "-q")
        try:
            assert server.wait_stalled(1, timeout=30), "the restream never got past the handshake"
            t0 = time.monotonic()
            code, err = finish(tool, sig, timeout=20)
            elapsed = time.monotonic() - t0
        finally:
            if tool.poll() is None:
                tool.kill()
    assert code == 130, err
    assert elapsed < 10, "the tool did not stop while its restream was connecting"
    assert list(tmp_path.iterdir()) == []  # nothing was processed; the recording's temporary file is gone


def test_a_restream_that_stalls_at_a_reconnect_keeps_the_run_alive_and_stoppable(camera: RtspCamera, tmp_path: Path):
    recording, stats = tmp_path / "recording.mp4", tmp_path / "stats.json"
    relay = RtmpRelay(tmp_path / "nginx").start()
    stall = StallingRtmpServer(relay.port)
    tool = start_cli(camera.url(), "-o", relay.url(SECRET), "-o", str(recording), "--stats", str(stats),
                     "--stats-interval", "0.5", "--open-timeout", "5")

    def frames_out() -> int:
        try:
            return json.loads(stats.read_text())["frames_out"]
        except (OSError, ValueError):
            return 0

    try:
        deadline = time.monotonic() + 30
        while frames_out() < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        relay.kill()  # the relay dies and something that stalls after the handshake takes its port
        stall.start()
        # Two reconnects stall: the first has given up (a one-line warning), the second is stuck right now.
        stalled = stall.wait_stalled(2, timeout=40)
        before = frames_out()
        time.sleep(1.5)
        still_running = frames_out() > before  # the recording goes on meanwhile
        t0 = time.monotonic()
        code, err = finish(tool, signal.SIGTERM, timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        stall.stop()
        relay.stop()
    assert stalled, err
    assert code == 130, err
    assert still_running, "the run stood still while the restream reconnected"
    assert elapsed < 15, "SIGTERM did not stop the tool while its restream was reconnecting"
    url = f"rtmp://127.0.0.1:{relay.port}/live/***"
    assert f"{url}: restream lost" in err
    assert f"restream reconnect attempt 1 failed: {url}: cannot stream there (no answer within 5 s)" in err
    assert SECRET not in err
    probe = ffprobe(recording, "stream=codec_name,nb_read_frames").strip()
    assert probe == f"h264,{json.loads(stats.read_text())['frames_out']}"  # finalized, every frame decodes


def test_a_restream_url_with_a_bad_port_is_one_clear_line(sample_clip: Path, tmp_path: Path) -> None:
    result = run_cli("anonymize", str(sample_clip), "-o", "rtmp://127.0.0.1:live/anon", "-q", timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        "camouflage-video: error: rtmp://127.0.0.1:live/***: cannot stream there (the URL's port is not a number)\n"
    )


# -- secrets on the command line never reach stderr, --stats or --debug tracebacks ------------------

# Passwords and keys with the characters that stopped the old user-info pattern, in every place a stream
# secret goes: user-info, a token in the query, the RTMP stream key.
NASTY_PASSWORD = f"a#b/c?d {SECRET}@e"


def test_a_failing_run_never_shows_stream_secrets(tmp_path: Path) -> None:
    port = free_port()  # refused: the run fails at once, after logging about both URLs
    source = f"rtsp://admin:{NASTY_PASSWORD}@127.0.0.1:{port}/cam?access_token={SECRET}"
    stats = tmp_path / "stats.json"
    result = run_cli("anonymize", source, "-o", f"rtmp://127.0.0.1:{port}/live/{SECRET}", "--stats", str(stats),
                     "--open-timeout", "2", "--debug", timeout=60)
    assert result.returncode == 1
    assert "Traceback" in result.stderr  # --debug printed the traceback, redacted
    assert f"rtsp://***@127.0.0.1:{port}/cam?access_token=***: cannot open stream" in result.stderr
    assert SECRET not in result.stderr and "a#b" not in result.stderr


@pytest.mark.parametrize("path", [f"user=admin_password={SECRET}_channel=1_stream=0.sdp",
                                  "hls/3f9a8c7d2e1b4a5f6c7d8e9f0a1b2c3d/index.m3u8"], ids=["camera", "cdn-token"])
def test_a_failing_run_never_shows_a_secret_in_the_stream_path(tmp_path: Path, path: str) -> None:
    port = free_port()  # refused
    source = f"rtsp://127.0.0.1:{port}/{path}"
    stats = tmp_path / "stats.json"
    result = run_cli("anonymize", source, "-o", str(tmp_path / "out.mp4"), "--stats", str(stats),
                     "--open-timeout", "2", "--debug", timeout=60)
    assert result.returncode == 1
    assert f"rtsp://127.0.0.1:{port}/" in result.stderr  # the stream is still named
    secret = SECRET if SECRET in path else "3f9a8c7d2e1b4a5f6c7d8e9f0a1b2c3d"
    assert secret not in result.stderr
    assert not stats.exists() or secret not in stats.read_text()


def test_the_stats_of_a_restream_never_show_its_stream_key(sample_clip: Path, relay: RtmpRelay, tmp_path: Path):
    stats = tmp_path / "stats.json"
    result = run_cli("anonymize", str(sample_clip), "-o", relay.url(SECRET), "-o", str(tmp_path / "rec.mp4"),
                     "--stats", str(stats), "--debug", timeout=120)
    assert result.returncode == 0, result.stderr
    written = json.loads(stats.read_text())
    assert written["outputs"][0]["uri"] == relay.url("***")
    assert SECRET not in stats.read_text() and SECRET not in result.stderr
    assert relay.url("***") in result.stderr  # the summary line names the restream, without its key


def test_an_unexpected_error_traceback_under_debug_is_redacted(tmp_path: Path) -> None:
    # Any exception, not only ours, may quote a URL; --debug prints its traceback through the redaction.
    result = run_cli_failing_with(
        f"raise RuntimeError('lost rtmp://u:{NASTY_PASSWORD}@relay/live/{SECRET}?token={SECRET}')", "list", "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "rtmp://***@relay/live/***?token=***" in result.stderr
    assert SECRET not in result.stderr and "a#b" not in result.stderr


@pytest.mark.parametrize("option", [f"={SECRET}", f"{SECRET}"], ids=["no-key", "no-equals"])
def test_a_bad_input_option_is_shown_without_its_value(option: str) -> None:
    result = run_cli("anonymize", "rtsp://127.0.0.1:1/cam", "-o", "x.mp4", "--input-option", option, timeout=60)
    assert result.returncode == 1
    shown = "=***" if option.startswith("=") else "***"
    assert result.stderr == f"camouflage-video: error: --input-option {shown}: expected KEY=VALUE\n"
