"""Real streaming peers on 127.0.0.1 for the live tests and the latency benchmark.

- :class:`RtspCamera`: a camera stand-in, Debian's gst-rtsp-server serving a real clip (servers/rtsp_camera.py,
  run with Debian's python3 because the GStreamer bindings come from Debian packages).
- :class:`RtmpRelay`: Debian nginx with libnginx-mod-rtmp; publish flv to it, pull it back with PyAV.
- :class:`StallingRtmpServer`: completes the RTMP handshake, then never answers (a hung relay or a middlebox).
- :class:`FlashBeepFeed`: Debian ffmpeg publishing 25 fps H.264 + AAC with a white flash and a beep at the start
  of every second to a relay; :func:`av_offsets` measures how far apart they are in a recording.
- :class:`StreamReader`: pulls a stream with PyAV on a thread (optionally in FFmpeg's RTSP listen mode, the
  restream target without a server), keeping decoded frames and their arrival times.

Every class is a context manager that kills its process or thread on exit; tests skip with the package
names to install when a peer is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
CAMERA_SCRIPT = HERE / "servers" / "rtsp_camera.py"
DEBIAN_PYTHON = "/usr/bin/python3"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
GST_PACKAGES = (
    "gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
)
STAMP_BITS, STAMP_BLOCK = 32, 8  # must match servers/rtsp_camera.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gst_rtsp_available() -> bool:
    if not Path(DEBIAN_PYTHON).exists():
        return False
    probe = (
        "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "assert all(Gst.ElementFactory.find(e) for e in ('appsrc','x264enc','rtph264pay','videoconvert'))"
    )
    return subprocess.run([DEBIAN_PYTHON, "-c", probe], capture_output=True, timeout=30, check=False).returncode == 0


def require_gst_rtsp() -> None:
    if not gst_rtsp_available():
        pytest.skip(f"gst-rtsp-server camera stand-in not installed (apt-get install {GST_PACKAGES})")


def require_nginx_rtmp() -> None:
    if shutil.which("nginx") is None or not RTMP_MODULE.exists():
        pytest.skip("RTMP relay not installed (apt-get install nginx libnginx-mod-rtmp)")


def write_raw_frames(path: Path, frames) -> Path:
    with open(path, "wb") as f:
        f.writelines(np.ascontiguousarray(frame, np.uint8).tobytes() for frame in frames)
    return path


def read_stamp(image: np.ndarray) -> int | None:
    """The camera's CLOCK_MONOTONIC milliseconds (low 24 bits) drawn into a frame; None if no copy is clean."""
    h, w = image.shape[:2]
    span = STAMP_BITS * STAMP_BLOCK
    for top in (0, h - STAMP_BLOCK):
        for left in (0, w - span):
            band = image[top + 2 : top + STAMP_BLOCK - 2, left : left + span].astype(np.float32)
            blocks = band.mean(axis=(0, 2)).reshape(STAMP_BITS, STAMP_BLOCK)[:, 2:-2].mean(axis=1)
            if np.any((blocks > 60) & (blocks < 195)):
                continue  # blurred or half covered
            code = int("".join("1" if b > 128 else "0" for b in blocks), 2)
            millis = code >> 8
            if code & 0xFF == ((millis >> 16) + (millis >> 8) + millis + 0xA5) & 0xFF:
                return millis
    return None


def now_millis() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFF



class _Process:
    """A server subprocess that is always killed on exit."""

    proc: subprocess.Popen | None = None

    def kill(self) -> None:
        """Kill it hard (a camera losing power): clients see the connection break."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RtspCamera(_Process):
    """gst-rtsp-server serving raw RGB frames from ``frames`` (looping) at ``fps`` on 127.0.0.1.

    Examples:
        >>> with RtspCamera(raw, 640, 360).start() as cam:  # doctest: +SKIP
        ...     av.open(cam.url)
    """

    def __init__(self, frames: Path, width: int, height: int, fps: int = 25, *, port: int = 0, stamp: bool = False,
                 broken_slices: bool = False):
        self.frames, self.width, self.height, self.fps, self.port, self.stamp = frames, width, height, fps, port, stamp
        self.broken_slices = broken_slices  # no picture decodes clean (see servers/rtsp_camera.py)
        self.path = "/cam"

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials}127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 20) -> RtspCamera:
        require_gst_rtsp()
        args = [DEBIAN_PYTHON, str(CAMERA_SCRIPT), "--frames", str(self.frames), "--width", str(self.width),
                "--height", str(self.height), "--fps", str(self.fps), "--port", str(self.port), "--path", self.path]
        if self.stamp:
            args.append("--stamp")
        if self.broken_slices:
            args.append("--broken-slices")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        deadline = time.monotonic() + timeout
        while True:  # a port freed by a killed camera may linger for a moment
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            line = _read_line(self.proc, timeout)
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                return self
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.kill()
            if time.monotonic() > deadline:
                raise RuntimeError(f"camera stand-in did not start: {line!r} {err[-500:]}")
            time.sleep(0.3)

    def __enter__(self) -> RtspCamera:
        return self


class RtmpRelay(_Process):
    """nginx + libnginx-mod-rtmp relaying ``rtmp://127.0.0.1:PORT/live/<key>`` (one process, no daemon)."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir, self.port = Path(workdir), port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)

    def url(self, key: str = "anon") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self, timeout: float = 10) -> RtmpRelay:
        require_nginx_rtmp()
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            f"load_module {RTMP_MODULE};\n"
            "daemon off;\nmaster_process off;\nworker_processes 1;\n"
            f"error_log {self.workdir}/error.log warn;\npid {self.workdir}/nginx.pid;\n"
            "events { worker_connections 64; }\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port}; chunk_size 4096;\n"
            "  application live { live on; record off; wait_key on; } } }\n"
        )
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.proc.stderr.read()[-500:]!r}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("nginx did not open its RTMP port")

    def __enter__(self) -> RtmpRelay:
        return self


class FlashBeepFeed(_Process):
    """Debian ffmpeg publishing a live sync test feed to ``url`` in real time (``-re``): 640x360 at 25 fps
    H.264 and 48 kHz stereo AAC, dark grey (level 64, so the tool's black outage frames stand out) and silent
    but for a flash (white, fading over five pictures: :data:`FLASH_LEVELS`) and a 100 ms 1 kHz beep that start
    together at every whole second."""

    def __init__(self, url: str, *, fps: int = 25, seconds: float = 3600) -> None:
        self.url, self.fps, self.seconds = url, fps, seconds

    def start(self) -> FlashBeepFeed:
        self.proc = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-re", *flash_beep_args(self.fps, self.seconds), "-f", "flv", self.url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return self

    def __enter__(self) -> FlashBeepFeed:
        return self


#: Levels of the flash's pictures, the first at the whole second (the background is 64).
FLASH_LEVELS = (255, 227, 199, 171, 143)


def flash_beep_args(fps: int = 25, seconds: float = 3600) -> list[str]:
    """Debian ffmpeg's inputs and codecs for the flash-and-beep feed (see :class:`FlashBeepFeed`)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    # The flash fades over FLASH_FRAMES pictures, each a known level below white: a recording whose first white
    # picture was dropped (the newest-frame policy) still tells when the flash started.
    fade = ",".join(f"drawbox=c=0x{level:02X}{level:02X}{level:02X}:t=fill:enable='eq(mod(n\\,{fps})\\,{k})'"
                    for k, level in enumerate(FLASH_LEVELS))
    video = f"color=c=0x404040:s=640x360:r={fps},{fade}"
    audio = "aevalsrc='0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.1)':s=48000:c=stereo"
    return ["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-t", str(seconds), "-c:v", "libx264",
            "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(fps), "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-b:a", "96k"]


def flash_times(path: Path, fps: int = 25) -> list[float]:
    """Start times of the flashes in a recording's video: the first bright picture of each, moved back by as
    many pictures as its level says it comes after the white one."""
    import av

    times, previous = [], 0.0
    step = (FLASH_LEVELS[0] - FLASH_LEVELS[-1]) / (len(FLASH_LEVELS) - 1)
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            level = float(frame.to_ndarray(format="gray").mean())
            if level > 128 and previous <= 128:
                late = min(len(FLASH_LEVELS) - 1, max(0, round((FLASH_LEVELS[0] - level) / step)))
                times.append(float(frame.time) - late / fps)
            previous = level
    return times


def beep_times(path: Path) -> list[float]:
    """Start times of the beeps in a recording's audio (the 2 ms envelope rising past a fifth of full scale)."""
    import av

    chunks, rate, start = [], None, None
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        for frame in container.decode(audio=0):
            if start is None:
                start, rate = float(frame.time or 0.0), frame.sample_rate
            chunks.append(np.abs(frame.to_ndarray().astype(np.float64)).max(axis=0))
    if not chunks:
        return []
    level = np.concatenate(chunks)
    level = level / max(1.0, np.abs(level).max()) if level.dtype.kind == "i" else level
    block = max(1, rate // 500)
    envelope = level[: len(level) // block * block].reshape(-1, block).max(axis=1)
    loud = envelope > 0.2
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    return [start + i * block / rate for i in onsets]


def av_offsets(path: Path) -> list[tuple[float, float]]:
    """``(flash time, audio minus video time)`` in seconds for each flash in a recording paired with the beep
    nearest to it (within half a second); a positive offset: the sound comes late."""
    beeps = np.array(beep_times(path))
    offsets = []
    for flash in flash_times(path):
        if len(beeps):
            nearest = beeps[np.argmin(np.abs(beeps - flash))]
            if abs(nearest - flash) < 0.5:
                offsets.append((flash, float(nearest - flash)))
    return offsets


def black_spans(path: Path, *, level: float = 10.0) -> list[tuple[float, float]]:
    """``(first, last)`` times of each run of black pictures (mean level under ``level``) in a recording."""
    import av

    spans: list[tuple[float, float]] = []
    start = last = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            if float(frame.to_ndarray(format="gray").mean()) < level:
                start = t if start is None else start
                last = t
            elif start is not None:
                spans.append((start, last))
                start = None
    if start is not None:
        spans.append((start, last))
    return spans


class StallingRtmpServer:
    """An RTMP server on 127.0.0.1 that completes the handshake (C0/C1/C2, S0/S1/S2) and then says nothing.

    It keeps reading (FFmpeg's connect command, then whatever comes), so the client waits for a ``_result``
    that never arrives. ``stalled`` counts the clients that got that far (FFmpeg; not a pre-flight check that
    hangs up after S1). It stops by itself after ``lifetime`` seconds, so a test that goes wrong cannot
    leave it running.
    """

    def __init__(self, port: int | None = None, *, lifetime: float = 120) -> None:
        self.port, self.lifetime = port or free_port(), lifetime
        self.stalled = 0
        self._sock: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._stop = threading.Event()

    def url(self, key: str = "anon") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self) -> StallingRtmpServer:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port a relay just left
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()
        timer = threading.Timer(self.lifetime, self.stop)
        timer.daemon = True
        timer.start()
        return self

    def wait_stalled(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.stalled < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.stalled >= count

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._clients.append(client)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        received = b""
        try:
            while len(received) < 1 + 1536 and not self._stop.is_set():  # C0 + C1
                received += self._recv(client)
            client.sendall(b"\x03" + bytes(1536) + received[1 : 1 + 1536])  # S0, S1, S2 (echoes C1)
            received = received[1 + 1536 :]
            while len(received) < 1536 + 1 and not self._stop.is_set():  # C2, then the connect command
                received += self._recv(client)
            if len(received) > 1536:
                self.stalled += 1
            while not self._stop.is_set():  # read and say nothing
                self._recv(client)
        except (OSError, EOFError):
            pass
        finally:
            client.close()

    def _recv(self, client: socket.socket) -> bytes:
        try:
            data = client.recv(65536)
        except TimeoutError:
            return b""
        if not data:
            raise EOFError
        return data

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> StallingRtmpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StreamReader:
    """Pull a stream on a thread with PyAV; keeps ``(arrival_monotonic, rgb_frame)`` pairs and notes the end.

    With ``listen=True`` it waits as an RTSP server for one publisher (FFmpeg's listen mode).
    ``keep`` bounds memory: only every frame's arrival time is kept, pixels of the last ``keep`` frames.
    """

    def __init__(self, url: str, *, listen: bool = False, timeout: float = 20, keep: int = 400, stamps: bool = False):
        self.url, self.listen, self.timeout, self.keep, self.stamps = url, listen, timeout, keep, stamps
        self.frames: list[np.ndarray] = []
        self.arrivals: list[float] = []
        self.latencies_ms: list[int] = []  # glass to here, for each new picture (camera stamps, 24-bit ms clock)
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        import av

        # RTMP announces an audio stream that never comes; do not wait 5 s of probing for it.
        options = {"rtsp_transport": "tcp", "flags": "low_delay", "analyzeduration": "500000"}
        if self.listen:
            options.update(rtsp_flags="listen", listen_timeout=str(int(self.timeout)))
        try:
            with av.open(self.url, options=options, timeout=(self.timeout, self.timeout)) as container:
                container.streams.video[0].codec_context.thread_count = 1  # no picture held back (latency)
                self.opened.set()
                last_stamp = None
                for frame in container.decode(video=0):
                    if self._stop.is_set():
                        return
                    image = frame.to_ndarray(format="rgb24")
                    self.arrivals.append(time.monotonic())
                    stamp = read_stamp(image) if self.stamps else None
                    if stamp is not None and stamp != last_stamp:  # a repeated picture is not a new one
                        latency = (now_millis() - stamp) % (1 << 24)
                        if latency < 60_000:  # the 8-bit check lets about one misread in 256 through
                            self.latencies_ms.append(latency)
                        last_stamp = stamp
                    self.frames.append(image)
                    if len(self.frames) > self.keep:
                        del self.frames[0]
        except Exception as exc:  # noqa: BLE001 - reported to the test through .error
            self.error = exc
        finally:
            self.ended.set()

    def wait_frames(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline and not self.ended.is_set():
            time.sleep(0.05)
        return len(self.arrivals) >= count

    def stop(self, timeout: float = 2) -> None:
        """Stop reading; a thread blocked on a silent server ends by itself within its read timeout."""
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ffmpeg_rtsp_listener(url: str, path: Path, timeout: int = 30) -> subprocess.Popen:
    """Debian ffmpeg in RTSP listen mode copying what it receives to ``path``; exits 0 when the publisher
    closes the stream (TEARDOWN). It runs in its own process because PyAV holds the GIL while it connects an
    output: a receiver thread in the publishing process could not answer. The caller kills it."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_flags", "listen", "-listen_timeout", str(timeout), "-i", url,
         "-c", "copy", str(path)],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    port, deadline = int(url.rsplit(":", 1)[1].split("/")[0]), time.monotonic() + 10
    while not _listening(port) and time.monotonic() < deadline:  # probing by connecting would use up its one accept
        time.sleep(0.1)
    return proc


def _listening(port: int) -> bool:
    wanted = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
            return True
    return False


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """First stdout line of ``proc`` within ``timeout`` seconds ('' if none)."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


# -- fixtures (import them into a test module to use them) ------------------------------------------


@pytest.fixture(scope="session")
def camera_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of the astronaut sample (a real face) at 640x360 as raw RGB, for the camera stand-in."""
    from camouflage_video.samples import sample_frames

    return write_raw_frames(tmp_path_factory.mktemp("camera") / "astronaut.rgb", sample_frames(50))


@pytest.fixture(scope="module")
def camera(camera_frames: Path):
    """A camera stand-in serving the astronaut clip at 25 fps on rtsp://127.0.0.1:PORT/cam."""
    with RtspCamera(camera_frames, 640, 360).start() as cam:
        yield cam


@pytest.fixture
def relay(tmp_path: Path):
    """An nginx RTMP relay on rtmp://127.0.0.1:PORT/live/<key>."""
    with RtmpRelay(tmp_path / "nginx").start() as server:
        yield server


REPO = Path(__file__).resolve().parents[1]


def start_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "camouflage_video", "anonymize", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)


def finish(tool: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
    """Stop a running tool the way a user or a service manager would; returns (exit code, stderr)."""
    if tool.poll() is None:
        tool.send_signal(sig)
    try:
        _, err = tool.communicate(timeout=timeout)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.communicate()
    return tool.returncode, err
