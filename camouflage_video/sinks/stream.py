"""Restreams: push anonymized video to an RTSP server, an RTMP relay (flv) or a UDP/TCP MPEG-TS peer.

A restream must never hold up the rest of the run (a recording written beside it, the live latency, a
Ctrl-C or a service manager's SIGTERM), so each connection is owned by a process of its own
(:mod:`camouflage_video.sinks.stream_worker`), which encodes and sends. PyAV holds the GIL while it
connects, and FFmpeg waits without a timeout on a server that completes the RTMP handshake and then goes
silent: in this process that froze every thread, signal handlers included. A process can be killed; a
thread stuck in FFmpeg cannot. This sink hands the newest frame to the connection's process through a pipe
and watches it: no answer within ``open_timeout`` when connecting, or nothing sent for ``open_timeout``
once connected, and the process is killed and the connection counted as lost.

A slow or dead server costs dropped restream frames, counted, not a stalled pipeline. When the server
goes away the sink reconnects with bounded exponential backoff; each connection starts with a fresh
encoder, so viewers get a keyframe and codec headers at once. Encoding is tuned for latency (x264
``zerolatency``: no B-frames, no lookahead) with a keyframe every second of stream time by default, also
when processing runs slower than the feed (a keyframe interval counted in frames would then stretch).

A live feed's audio goes along: each frame handed over takes the audio track up to its time with it, and the
connection's process encodes it to AAC. Audio is never dropped with a replaced frame, so it stays
contiguous and in step with the pictures however many of them the sender skips.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError, StreamError
from camouflage_video.frame import Frame
from camouflage_video.redact import redact_url
from camouflage_video.sinks.base import Sink
from camouflage_video.sinks.stream_worker import ABORT, AUDIO, FRAME, NO_PTS, RECORD, PublishSettings, check_encoder
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.base import SourceInfo
from camouflage_video.streaming import Backoff, LatestSlot

logger = logging.getLogger(__name__)

#: Container format per URL scheme.
FORMATS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "tcp": "mpegts"}
#: Seconds a connection's process may take to start (import PyAV, NumPy) on a loaded machine.
STARTUP_TIMEOUT = 30.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def publish_settings(
    uri: str,
    info: SourceInfo,
    encoder: EncoderOptions | None = None,
    *,
    open_timeout: float = 5.0,
    audio: AudioTimeline | None = None,
) -> PublishSettings:
    """What each connection of a restream of ``info`` to ``uri`` is opened with (see :class:`StreamSink`).

    Raises:
        ConfigError: A scheme that cannot be streamed to, or a timeout that is not positive.
    """
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in FORMATS:
        raise ConfigError(
            f"{redact_url(uri)}: cannot stream to {scheme}://; use one of {', '.join(s + '://' for s in FORMATS)}"
        )
    if open_timeout <= 0:
        raise ConfigError(f"restream open_timeout must be > 0 seconds, got {open_timeout}")
    fps = info.fps or Fraction(25)
    enc = encoder or EncoderOptions()
    enc = EncoderOptions(
        codec=enc.codec or "libx264", crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt or "yuv420p",
        gop=enc.gop or max(1, round(fps)), zerolatency=True, threads=enc.threads,
    )
    color = info.color
    return PublishSettings(
        # 4:2:0 needs even sizes; dropping a last odd row or column is invisible and keeps players happy.
        uri=uri, format=FORMATS[scheme], width=info.width - info.width % 2, height=info.height - info.height % 2,
        fps=str(fps), time_base=str(info.time_base or 1 / fps), color=(color.space, color.primaries, color.transfer),
        encoder={name: getattr(enc, name) for name in enc.__dataclass_fields__},
        open_timeout=open_timeout, parent=os.getpid(),
        audio=None if audio is None else {"rate": audio.rate, "channels": audio.channels},
    )


def check_restream(uri: str, info: SourceInfo, encoder: EncoderOptions | None = None) -> None:
    """Refuse, before any work, a restream that could never be sent: a scheme that cannot be streamed to or
    encoder settings the encoder refuses (``ConfigError``). Nothing connects: the server may come later."""
    check_encoder(publish_settings(uri, info, encoder))


class StreamSink(Sink):
    """Encode frames with low-latency settings and push them to a streaming server.

    Connecting happens in the constructor, so a wrong address fails before any work with a one-line
    :class:`StreamError`. Later failures are logged (credentials redacted) and retried in the background.
    Nothing here waits on the network without a deadline: a Ctrl-C or SIGTERM stops the run at any time, and
    closing takes at most ``open_timeout`` (a stalled connection is then dropped).

    Args:
        uri: ``rtsp://host:port/path``, ``rtmp://host/app/key``, ``udp://host:port`` or ``tcp://host:port``.
        info: The source description (frame size and rate).
        encoder: Codec settings; ``zerolatency`` is always on here; ``gop`` (frames at the source's rate)
            sets the keyframe interval, one second by default.
        open_timeout: Seconds the server has to accept a connection, to take each frame once connected,
            and to close.
        reconnect: Backoff between reconnection attempts; ``attempts=None`` retries forever.
        audio: A live source's audio track, sent along (AAC); ``None`` sends video only.

    Examples:
        >>> sink = StreamSink("rtmp://127.0.0.1/live/anon", src.info)  # doctest: +SKIP
        >>> sink.write(frame, anonymized)  # doctest: +SKIP
        >>> sink.close()  # doctest: +SKIP
    """

    remote = True

    def __init__(
        self,
        uri: str,
        info: SourceInfo,
        *,
        encoder: EncoderOptions | None = None,
        open_timeout: float = 5.0,
        reconnect: Backoff | None = None,
        audio: AudioTimeline | None = None,
    ) -> None:
        self._settings = publish_settings(uri, info, encoder, open_timeout=open_timeout, audio=audio)
        self.uri, self.redacted, self.format = uri, redact_url(uri), self._settings.format
        self.info = info
        self.fps = Fraction(self._settings.fps)
        self.encoder = EncoderOptions(**self._settings.encoder)
        self.open_timeout = open_timeout
        self.reconnect = reconnect or Backoff(initial=1.0, maximum=10.0)
        self.width, self.height = self._settings.width, self._settings.height
        self._audio = audio.subscribe() if audio is not None else None
        self._audio_out: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self.reconnects = 0
        self._done = {"frames": 0, "repeated": 0, "dropped": 0}  # counters of the connections that ended
        self._offline_drops = 0
        self._attempt, self._next_try = 0, 0.0
        self._slot = LatestSlot()
        self._closing = threading.Event()
        self._close_by = float("inf")
        self._flush = True
        self._worker: _Worker | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        # One long-lived thread starts every connection's process: the kernel kills a child when the thread
        # that started it ends (PR_SET_PDEATHSIG), and this one lives as long as the sink.
        self._thread = threading.Thread(target=self._run, name="camouflage-restream", daemon=True)
        self._thread.start()
        try:
            self._opened.wait()  # interruptible: Ctrl-C while the server makes us wait
        except BaseException:
            self.abort()
            raise
        if self._open_error is not None:
            self._thread.join(timeout=1)
            if self._audio is not None:
                self._audio.close()  # a sink that never was must not keep collecting audio
            raise self._open_error

    # -- what the runner calls --------------------------------------------------------------------

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Hand a frame to the sending thread; never blocks (a frame not sent yet is replaced)."""
        if self._audio is not None and frame.time is not None:
            start = self._audio.position
            pcm = self._audio.read(round(frame.time * self._audio.rate))
            if len(pcm):
                self._audio_out.append((start, pcm))
        self._slot.put((frame, image))

    @property
    def frames_written(self) -> int:  # type: ignore[override]
        return self._done["frames"] + (self._worker.frames if self._worker else 0)

    @property
    def frames_repeated(self) -> int:
        return self._done["repeated"] + (self._worker.repeated if self._worker else 0)

    @property
    def dropped(self) -> int:
        """Frames not sent: replaced while the sender was busy, or written while disconnected."""
        worker = self._worker.dropped if self._worker else 0
        return self._slot.dropped + self._offline_drops + self._done["dropped"] + worker

    def close(self, *, interrupted: bool = False) -> None:
        """Send what is pending, flush the encoder and close the connection. Never raises for network trouble.

        Args:
            interrupted: Accepted for the sink interface; a restream ends the same way either way.
        """
        self._shutdown(flush=True)

    def abort(self) -> None:
        """Close the connection without flushing."""
        self._shutdown(flush=False)

    def describe(self) -> dict:
        worker = self._worker
        return {
            "uri": self.redacted,
            "kind": "stream",
            "format": self.format,
            "codec": self.encoder.codec,
            "frames": self.frames_written,
            "repeated": self.frames_repeated,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "connected": worker is not None and not worker.ended.is_set(),
        }

    # -- the sending thread -----------------------------------------------------------------------

    def _shutdown(self, *, flush: bool) -> None:
        if self._closing.is_set():
            return
        self._flush = flush
        self._close_by = time.monotonic() + self.open_timeout
        self._closing.set()
        self._slot.wake()
        self._thread.join(timeout=self.open_timeout + 5)  # every wait in the thread ends by _close_by
        if self._audio is not None:
            self._audio.close()

    def _run(self) -> None:
        try:
            self._worker = self._start_worker()
        except Exception as exc:  # noqa: BLE001 - raised in the constructor's thread, where the caller is
            self._open_error = exc
            return
        finally:
            self._opened.set()
        try:
            self._send_loop()
        finally:
            self._finish()

    def _start_worker(self) -> _Worker:
        """A connection's process, connected; a one-line StreamError (or ConfigError) if it is not."""
        try:
            worker = _Worker(self._settings, self.redacted, stall_timeout=self.open_timeout)
        except OSError as exc:
            raise StreamError(f"{self.redacted}: cannot start the restream process ({exc.strerror or exc})") from None
        problem = worker.wait_connected(self.open_timeout, self._closing)
        if problem is not None:
            worker.kill()
            raise problem
        return worker

    def _send_loop(self) -> None:
        while True:
            item = self._slot.take(timeout=0.1)
            worker = self._worker
            if worker is not None and (reason := worker.trouble()) is not None:
                if self._closing.is_set():
                    break  # nothing more to send; _finish reports how the connection ended
                self._lost(reason)
                worker = None
            if self._closing.is_set() and (item is None or not self._flush):
                break
            if worker is None and not self._closing.is_set():
                self._reconnect_when_due()
                worker = self._worker
            if worker is None:
                self._offline_drops += item is not None  # nowhere to send it; a reconnect starts from the newest
                self._audio_out.clear()
                continue
            if item is not None and not self._send_audio(worker):
                if self._closing.is_set():
                    break
                self._lost(worker.trouble() or "the restream process stopped reading")
                continue
            if item is not None and not worker.send(*item, self._give_up):
                if self._closing.is_set():
                    break
                self._lost(worker.trouble() or "the restream process stopped reading")

    def _send_audio(self, worker: _Worker) -> bool:
        """The audio that goes with the next frame (all of it up to that frame's time)."""
        while self._audio_out:
            start, pcm = self._audio_out.popleft()
            if not worker.send_audio(start, pcm, self._give_up):
                return False
        return True

    def _give_up(self) -> bool:
        """Whether a frame on its way to the connection's process should be abandoned."""
        return self._closing.is_set() and (not self._flush or time.monotonic() > self._close_by)

    def _lost(self, reason: str) -> None:
        logger.warning("%s: restream lost (%s); reconnecting", self.redacted, reason)
        self._retire(self._worker, kill=True)
        self._next_try = time.monotonic() + self.reconnect.delay(0)

    def _retire(self, worker: _Worker | None, *, kill: bool) -> None:
        if worker is None:
            return
        if self._worker is worker:
            self._worker = None
        if kill:
            worker.kill()
        for name in self._done:
            self._done[name] += getattr(worker, name)

    def _reconnect_when_due(self) -> None:
        if time.monotonic() < self._next_try:
            return
        if self.reconnect.exhausted(self._attempt):
            self._next_try = float("inf")
            logger.error("%s: restream gave up after %d reconnect attempts", self.redacted, self._attempt)
            return
        self._attempt += 1
        try:
            self._worker = self._start_worker()
        except (StreamError, ConfigError) as exc:
            if self._closing.is_set():
                return
            delay = self.reconnect.delay(self._attempt)
            self._next_try = time.monotonic() + delay
            logger.warning("restream reconnect attempt %d failed: %s; next in %.1f s", self._attempt, exc, delay)
            return
        self.reconnects += 1
        self._attempt = 0
        logger.warning("%s: restream reconnected", self.redacted)

    def _finish(self) -> None:
        worker = self._worker
        if worker is None:
            return
        closed = worker.close(flush=self._flush, until=max(self._close_by, time.monotonic() + 0.5))
        if not closed:
            logger.warning(
                "%s: restream did not close within %g s (the server stalled); connection dropped",
                self.redacted, self.open_timeout,
            )
        elif worker.reason is not None:
            logger.warning("%s: restream ended badly (%s)", self.redacted, worker.reason)
        self._retire(worker, kill=not closed)


class _Worker:
    """The parent's handle on one connection's process: feeds it frames, reads its events, kills it."""

    def __init__(self, settings: PublishSettings, redacted: str, *, stall_timeout: float) -> None:
        self.redacted, self.stall_timeout = redacted, stall_timeout
        self.frames = self.repeated = self.dropped = 0
        self.reason: str | None = None  # why the connection ended, when it did not end on request
        self.ready, self.connected, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.failure: BaseException | None = None
        self.last_progress = time.monotonic()
        self.waiting_since: float | None = None  # a frame went to the process and nothing was sent since
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camouflage_video.sinks.stream_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the tool only, which closes this in order
        )
        try:
            self.proc.stdin.write(settings.to_json().encode() + b"\n")  # before the pipe turns non-blocking
        except OSError:
            self.kill()
            raise
        self._stdin = self.proc.stdin.fileno()
        os.set_blocking(self._stdin, False)
        self._record_size = settings.width * settings.height * 3
        self._size = (settings.height, settings.width)
        for target, name in ((self._read_events, "events"), (self._read_log, "log")):
            threading.Thread(target=target, name=f"camouflage-restream-{name}", daemon=True).start()

    # -- the process's two outputs ----------------------------------------------------------------

    def _read_events(self) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "ready":
                self.ready.set()
            elif kind == "connected":
                self.last_progress = time.monotonic()
                self.connected.set()
            elif kind == "failed":
                error = ConfigError if event.get("error") == "ConfigError" else StreamError
                self.failure = error(redact_url(str(event.get("message", ""))))
            elif kind == "lost":
                self.reason = redact_url(str(event.get("reason", "")))
            elif kind in ("progress", "closed"):
                sent = int(event.get("frames", 0)) + int(event.get("repeated", 0))
                if sent > self.frames + self.repeated:
                    self.last_progress, self.waiting_since = time.monotonic(), None
                self.frames, self.repeated = int(event.get("frames", 0)), int(event.get("repeated", 0))
                self.dropped = int(event.get("dropped", 0))
        self.ended.set()
        self.ready.set()

    def _read_log(self) -> None:
        for line in self.proc.stderr:  # FFmpeg and Python messages of the process; secrets redacted
            logger.debug("restream process: %s", redact_url(line.decode(errors="replace").rstrip()))

    # -- what the sink does with it ---------------------------------------------------------------

    def wait_connected(self, timeout: float, closing: threading.Event) -> BaseException | None:
        """None once connected; else the error to report. Gives up when ``closing`` is set."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.ready.wait(0.1):
            if closing.is_set():
                return StreamError(f"{self.redacted}: closed before it connected")
            if time.monotonic() > deadline:
                return StreamError(f"{self.redacted}: cannot stream there (the restream process did not start)")
        # The process's own timeouts are ``timeout`` too; its reasons are more precise, so they go first.
        deadline = time.monotonic() + timeout + 1.0
        while not self.connected.wait(0.1):
            if self.ended.is_set():
                self.proc.wait(timeout=5)
                code = self.proc.returncode
                return self.failure or StreamError(
                    f"{self.redacted}: cannot stream there (the restream process ended with exit code {code})"
                )
            if closing.is_set():
                return StreamError(f"{self.redacted}: closed before it connected")
            if time.monotonic() > deadline:
                return StreamError(f"{self.redacted}: cannot stream there (no answer within {timeout:g} s)")
        return None

    def trouble(self) -> str | None:
        """Why this connection is no use any more (ended, or nothing sent for ``stall_timeout``), or None."""
        if self.ended.is_set():
            if self.reason is not None:
                return self.reason
            return f"the restream process ended with exit code {self.proc.poll()}"
        waiting = self.waiting_since
        if waiting is not None and time.monotonic() - max(waiting, self.last_progress) > self.stall_timeout:
            return f"the server took nothing for {self.stall_timeout:g} s"
        return None

    def send(self, frame: Frame, image: np.ndarray, give_up) -> bool:  # noqa: ANN001 - () -> bool
        """Write one frame record to the process; False if it could not (ended, stalled or ``give_up()``)."""
        h, w = self._size
        pts = NO_PTS if frame.pts is None else int(frame.pts)
        pixels = np.ascontiguousarray(image[:h, :w], dtype=np.uint8)
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()
        return self._write(RECORD.pack(FRAME, pts, frame.index), give_up) and self._write(
            memoryview(pixels).cast("B"), give_up
        )

    def send_audio(self, start: int, pcm: np.ndarray, give_up) -> bool:  # noqa: ANN001 - () -> bool
        """Write one audio record (``pcm`` starts at the track's sample ``start``)."""
        data = np.ascontiguousarray(pcm, dtype=np.int16)
        return self._write(RECORD.pack(AUDIO, start, len(data)), give_up) and self._write(
            memoryview(data).cast("B"), give_up
        )

    def _write(self, data: bytes | memoryview, give_up) -> bool:  # noqa: ANN001 - () -> bool
        view = memoryview(data)
        while view:
            if give_up() or self.trouble() is not None:
                return False
            if not select.select([], [self._stdin], [], 0.1)[1]:
                continue
            try:
                view = view[os.write(self._stdin, view) :]
            except BlockingIOError:
                continue
            except OSError:  # the process is gone (broken pipe)
                return False
        return True

    def close(self, *, flush: bool, until: float) -> bool:
        """End the connection (flushing or not) by ``until``; False if the process had to be killed."""
        if not flush:
            try:
                os.write(self._stdin, RECORD.pack(ABORT, 0, 0))
            except OSError:
                pass  # full or gone: closing the pipe ends it the same way
        self._close_stdin()
        try:
            self.proc.wait(timeout=max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        self.ended.wait(1)  # the events thread has read the final counters
        return True

    def kill(self) -> None:
        self._close_stdin()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.ended.wait(1)

    def _close_stdin(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass  # a broken pipe: the process is gone
