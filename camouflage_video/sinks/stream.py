"""Restreams: push anonymized video to an RTSP server, an RTMP relay (flv) or a UDP/TCP MPEG-TS peer.

A restream must never hold up the rest of the run (a recording written beside it, or the live
latency), so each stream sink encodes and sends on its own thread and always takes the newest frame:
a slow or dead server costs dropped restream frames, counted, not a stalled pipeline. When the server
goes away the sink reconnects with bounded exponential backoff; each connection starts with a fresh
encoder, so viewers get a keyframe and codec headers at once. Encoding is tuned for latency (x264
``zerolatency``: no B-frames, no lookahead) with a keyframe every second of stream time by default, also
when processing runs slower than the feed (a keyframe interval counted in frames would then stretch).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from fractions import Fraction
from urllib.parse import urlsplit

import av
import numpy as np

from camouflage_video.errors import ConfigError, StreamError
from camouflage_video.frame import Frame
from camouflage_video.live import Backoff, LatestSlot, redact_url
from camouflage_video.sinks.base import Sink, encoder_frame, tag_colors
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.base import SourceInfo

logger = logging.getLogger(__name__)

#: Container format per URL scheme.
FORMATS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "tcp": "mpegts"}


class StreamSink(Sink):
    """Encode frames with low-latency settings and push them to a streaming server.

    Connecting happens in the constructor, so a wrong address fails before any work with a one-line
    :class:`StreamError`. Later failures are logged (credentials redacted) and retried in the background.

    Args:
        uri: ``rtsp://host:port/path``, ``rtmp://host/app/key``, ``udp://host:port`` or ``tcp://host:port``.
        info: The source description (frame size and rate).
        encoder: Codec settings; ``zerolatency`` is always on here; ``gop`` (frames at the source's rate)
            sets the keyframe interval, one second by default.
        open_timeout: Seconds to wait for the server on each connection attempt.
        reconnect: Backoff between reconnection attempts; ``attempts=None`` retries forever.

    PyAV holds the GIL while it connects an output and has no timeout there for RTMP, so before each RTMP
    connection a plain socket checks, within ``open_timeout``, that the server answers the RTMP handshake:
    a server that accepts and then stays silent is a failed attempt, not a hung run. See docs/live.md.

    Examples:
        >>> sink = StreamSink("rtmp://127.0.0.1/live/anon", src.info)  # doctest: +SKIP
        >>> sink.write(frame, anonymized)  # doctest: +SKIP
        >>> sink.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        uri: str,
        info: SourceInfo,
        *,
        encoder: EncoderOptions | None = None,
        open_timeout: float = 5.0,
        reconnect: Backoff | None = None,
    ) -> None:
        scheme = uri.split("://", 1)[0].lower()
        if scheme not in FORMATS:
            raise ConfigError(
                f"{redact_url(uri)}: cannot stream to {scheme}://; use one of {', '.join(s + '://' for s in FORMATS)}"
            )
        self.uri, self.redacted, self.format = uri, redact_url(uri), FORMATS[scheme]
        self.info = info
        self.fps = info.fps or Fraction(25)
        enc = encoder or EncoderOptions()
        self.encoder = EncoderOptions(
            codec=enc.codec or "libx264", crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt or "yuv420p",
            gop=enc.gop or max(1, round(self.fps)), zerolatency=True, threads=enc.threads,
        )
        self.open_timeout = open_timeout
        self.reconnect = reconnect or Backoff(initial=1.0, maximum=10.0)
        self._repeat_once = self.format != "flv"  # FLV packets are whole pictures; readers need no nudge
        # 4:2:0 needs even sizes; dropping a last odd row or column is invisible and keeps players happy.
        self.width, self.height = info.width - info.width % 2, info.height - info.height % 2
        self.frames_written = 0
        self.reconnects = 0
        self.frames_repeated = 0
        self._offline_drops = 0
        self._attempt, self._next_try = 0, 0.0
        self._slot = LatestSlot()
        self._closing = threading.Event()
        self._flush = True
        self._video: av.VideoStream | None = None
        self._pts0: int | None = None
        self._last_key: int | None = None
        self._last_pts: int | None = None
        self._key_interval = self.encoder.gop / self.fps  # seconds
        self._container: av.container.OutputContainer | None = self._connect()
        self._thread = threading.Thread(target=self._send_loop, name="camouflage-restream", daemon=True)
        self._thread.start()

    # -- what the runner calls --------------------------------------------------------------------

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Hand a frame to the sending thread; never blocks (a frame not sent yet is replaced)."""
        self._slot.put((frame, image))

    @property
    def dropped(self) -> int:
        """Frames not sent: replaced while the sender was busy, or written while disconnected."""
        return self._slot.dropped + self._offline_drops

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
        return {
            "uri": self.redacted,
            "kind": "stream",
            "format": self.format,
            "codec": self.encoder.codec,
            "frames": self.frames_written,
            "repeated": self.frames_repeated,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "connected": self._container is not None,
        }

    # -- the sending thread -----------------------------------------------------------------------

    def _shutdown(self, *, flush: bool) -> None:
        if self._closing.is_set():
            return
        self._flush = flush
        self._closing.set()
        self._slot.wake()
        self._thread.join(timeout=2 * self.open_timeout + 1)

    def _connect(self) -> av.container.OutputContainer:
        """Open a connection with a fresh encoder; a one-line StreamError on failure."""
        options: dict[str, str] = {}
        if self.format == "rtsp":
            options.update(rtsp_transport="tcp", timeout=str(round(self.open_timeout * 1e6)))
        if self.format == "flv":
            options["flvflags"] = "no_duration_filesize"  # a live flv cannot seek back to patch its header
        if self.uri.lower().startswith("rtmp://"):
            reason = rtmp_handshake_problem(self.uri, self.open_timeout)
            if reason is not None:
                raise StreamError(f"{self.redacted}: cannot stream there ({reason})")
        started = time.monotonic()
        container = None
        try:
            container = av.open(self.uri, mode="w", format=self.format, options=options)
            self._video = self._add_video_stream(container)
            container.start_encoding()  # RTSP announces (and RTMP publishes) now, so failures surface here
        except (av.FFmpegError, OSError) as exc:
            if container is not None:
                _close_quietly(container)
            if time.monotonic() - started >= 0.95 * self.open_timeout:
                reason = f"no answer within {self.open_timeout:g} s"
            else:
                reason = redact_url((getattr(exc, "strerror", None) or str(exc)).splitlines()[0])
            raise StreamError(f"{self.redacted}: cannot stream there ({reason})") from None
        self._pts0 = self._last_key = self._last_pts = None
        return container

    def _add_video_stream(self, container: av.container.OutputContainer) -> av.VideoStream:
        enc = self.encoder
        try:
            stream = container.add_stream(enc.codec, rate=self.fps)
        except (av.FFmpegError, ValueError) as exc:
            raise ConfigError(f"unknown or unavailable video codec {enc.codec!r} ({exc})") from None
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, enc.pix_fmt
        time_base = self.info.time_base or 1 / self.fps
        stream.time_base = stream.codec_context.time_base = time_base
        self._space = tag_colors(stream.codec_context, self.info.color)
        stream.codec_context.gop_size = enc.gop
        if enc.threads:
            stream.codec_context.thread_count = enc.threads
        options = {} if enc.crf is None else {"crf": str(enc.crf)}
        if enc.codec in ("libx264", "libx265"):
            options.update(preset=enc.preset, tune="zerolatency")
        stream.codec_context.options = options
        return stream

    def _send_loop(self) -> None:
        interval = float(1 / self.fps)
        last: tuple[Frame, np.ndarray] | None = None
        last_was_repeat = False
        while True:
            item = self._slot.take(timeout=interval)
            if self._closing.is_set() and (item is None or not self._flush):
                break
            if self._container is None and not self._closing.is_set():
                self._reconnect_when_due()
            if self._container is None:
                self._offline_drops += item is not None  # nowhere to send it; a reconnect starts from the newest
                continue
            repeat = item is None
            if repeat:
                # Nothing new a frame interval after the last picture (processing is slower than the feed). RTSP
                # and MPEG-TS readers built on FFmpeg hold each picture until the next one starts, so send the
                # last one once more: they then show it one frame interval late at most, not one processing time.
                if not self._repeat_once or last is None or last_was_repeat or self._last_pts is None:
                    continue  # FLV, nothing sent on this connection yet, or repeated once already
                item = last
            try:
                self._send(*item, repeat=repeat)
            except (av.FFmpegError, OSError) as exc:
                reason = redact_url((getattr(exc, "strerror", None) or str(exc)).splitlines()[0])
                logger.warning("%s: restream lost (%s); reconnecting", self.redacted, reason)
                _close_quietly(self._container)
                self._container, self._next_try = None, time.monotonic() + self.reconnect.delay(0)
                continue
            last, last_was_repeat = item, repeat
        self._finish()

    def _reconnect_when_due(self) -> None:
        if time.monotonic() < self._next_try:
            return
        if self.reconnect.exhausted(self._attempt):
            self._next_try = float("inf")
            logger.error("%s: restream gave up after %d reconnect attempts", self.redacted, self._attempt)
            return
        self._attempt += 1
        try:
            self._container = self._connect()
        except StreamError as exc:
            delay = self.reconnect.delay(self._attempt)
            self._next_try = time.monotonic() + delay
            logger.warning("restream reconnect attempt %d failed: %s; next in %.1f s", self._attempt, exc, delay)
            return
        self.reconnects += 1
        self._attempt = 0
        logger.warning("%s: restream reconnected", self.redacted)

    def _send(self, frame: Frame, image: np.ndarray, *, repeat: bool = False) -> None:
        time_base = self._video.codec_context.time_base
        if repeat:
            pts = self._last_pts + round(1 / self.fps / time_base)
        else:
            source_pts = frame.pts if frame.pts is not None else round(frame.index / self.fps / time_base)
            if self._pts0 is None:
                self._pts0 = source_pts  # each connection starts its timeline at 0
            pts = source_pts - self._pts0
            if self._last_pts is not None and pts <= self._last_pts:
                pts = self._last_pts + 1  # a real frame right after repeats: keep timestamps increasing
        vf = encoder_frame(image[: self.height, : self.width], self.encoder.pix_fmt, self._space)
        vf.pts, vf.time_base = pts, time_base
        if self._last_key is None or (pts - self._last_key) * time_base >= self._key_interval:
            vf.pict_type = av.video.frame.PictureType.I  # keyframes by time, whatever the processing rate
            self._last_key = pts
        self._container.mux(self._video.encode(vf))
        self._last_pts = pts
        if repeat:
            self.frames_repeated += 1
        else:
            self.frames_written += 1

    def _finish(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        try:
            if self._flush:
                container.mux(self._video.encode(None))
        except (av.FFmpegError, OSError) as exc:
            logger.warning("%s: restream flush failed (%s)", self.redacted, redact_url(str(exc)))
        _close_quietly(container)


def _close_quietly(container: av.container.OutputContainer) -> None:
    try:
        container.close()
    except (av.FFmpegError, OSError) as exc:
        logger.debug("closing a restream failed: %s", redact_url(str(exc)))


def rtmp_handshake_problem(uri: str, timeout: float) -> str | None:
    """Whether an RTMP server answers the start of a handshake within ``timeout``; None if it does.

    Sends C0 and C1 (version 3, a zero 1536-byte block: the simple handshake every server accepts) and waits
    for S0 and S1, then hangs up. FFmpeg itself would wait forever for them, holding Python's GIL.
    """
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname or "", parts.port or 1935
    except ValueError:
        return "the URL's port is not a number"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"\x03" + bytes(1536))
            need = 1 + 1536
            while need > 0:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(need)
                if not chunk:
                    return "the server closed the connection during the RTMP handshake"
                need -= len(chunk)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
