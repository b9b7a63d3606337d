"""The restream's own process: one connection to a streaming server, fed with frames through a pipe.

PyAV holds Python's GIL while it connects an output, writes its header and writes its trailer, and FFmpeg
gives the RTMP connect/publish exchange no timeout that PyAV lets us set. A server that completes the
handshake and then stays silent would freeze every thread of the process that connects to it, signal
handlers included: only ``kill -9`` stopped the tool, and the recording beside the restream was lost.
So every restream connection lives in a process of its own, which
:class:`~camouflage_video.sinks.stream.StreamSink` starts, feeds and, when the server stalls, kills. This
process encodes (x264 here runs beside the anonymizer, not under its GIL) and sends; it never decides
anything about reconnecting.

Protocol, run with ``python -m camouflage_video.sinks.stream_worker`` (secrets travel on stdin, never in
the command line, which every user of the machine can read):

- stdin: one JSON line (:class:`PublishSettings`), then records: a :data:`RECORD` header (kind, pts,
  index) followed, for frames, by ``height * width * 3`` bytes of RGB; for audio (pts: the track's first
  sample, index: the number of samples) by that many int16 samples of each channel, interleaved. End of
  input closes the connection after sending what is pending and flushing the encoder; an ``ABORT`` record
  closes it without flushing.
- stdout: JSON lines ``{"event": ...}``: ``ready`` (imports done), ``connected``, ``failed`` (with
  ``error``, the exception type, and ``message``), ``progress`` and ``closed`` (with the ``frames``,
  ``repeated`` and ``dropped`` counters) and ``lost`` (with ``reason``).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import IO
from urllib.parse import urlsplit

import av
import numpy as np

from camouflage_video.errors import ConfigError, StreamError
from camouflage_video.redact import redact_url
from camouflage_video.sinks.base import encoder_frame, tag_colors
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.base import ColorTags
from camouflage_video.streaming import LatestSlot

#: Record header on stdin: kind, pts (frames without one: :data:`NO_PTS`), frame index.
RECORD = struct.Struct("<Bqq")
FRAME, ABORT, AUDIO = 1, 2, 3
NO_PTS = -(2**63)
PROGRESS_INTERVAL = 0.2  # seconds between progress reports


@dataclass(frozen=True)
class PublishSettings:
    """What one connection needs to know: where to, the picture geometry and timing, the encoder.

    Attributes:
        uri: The target URL, with its credentials (it travels on stdin only).
        format: FFmpeg muxer: ``flv``, ``rtsp`` or ``mpegts``.
        width: Frame width in pixels (even).
        height: Frame height in pixels (even).
        fps: Frame rate, as ``"num/den"``.
        time_base: Unit of the frames' ``pts``, as ``"num/den"``.
        color: The source's colour tags (space, primaries, transfer).
        encoder: :class:`EncoderOptions` fields.
        open_timeout: Seconds the server has to answer.
        parent: Process id of the tool; this process ends when that one is gone.
        audio: The audio track's ``rate`` and ``channels``, sent as AAC; ``None`` for video only.
    """

    uri: str
    format: str
    width: int
    height: int
    fps: str
    time_base: str
    color: tuple[int, int, int]
    encoder: dict
    open_timeout: float
    parent: int
    audio: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PublishSettings:
        fields = json.loads(text)
        fields["color"] = tuple(fields["color"])
        return cls(**fields)


def configure_encoder(context: av.CodecContext, settings: PublishSettings) -> int:
    """Set up a connection's video encoder from ``settings``; returns the colour matrix its pictures are
    converted with (see ``encoder_frame``)."""
    enc = EncoderOptions(**settings.encoder)
    context.width, context.height, context.pix_fmt = settings.width, settings.height, enc.pix_fmt
    context.time_base = Fraction(settings.time_base)
    context.framerate = Fraction(settings.fps)
    # Sources hand over square pixels (an anamorphic input is resampled): say so, or a player may guess.
    context.sample_aspect_ratio = Fraction(1)
    space = tag_colors(context, ColorTags(*settings.color))
    context.gop_size = enc.gop
    if enc.threads:
        context.thread_count = enc.threads
    options = {} if enc.crf is None else {"crf": str(enc.crf)}
    if enc.codec in ("libx264", "libx265"):
        options.update(preset=enc.preset, tune="zerolatency")
    context.options = options
    return space


def check_encoder(settings: PublishSettings) -> None:
    """Open the encoder a connection would get, without connecting: settings it refuses (a codec that is not
    a video encoder, a pixel format it lacks) fail before any work, in one line (``ConfigError``)."""
    enc = EncoderOptions(**settings.encoder)
    try:
        kind = av.codec.Codec(enc.codec, "w").type
        context = av.CodecContext.create(enc.codec, "w") if kind == "video" else None
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigError(f"unknown or unavailable video codec {enc.codec!r} ({exc})") from None
    if context is None:
        raise ConfigError(f"{enc.codec!r} is an {kind} encoder, not a video one")
    try:
        configure_encoder(context, settings)
        context.open(strict=False)  # as the connection opens it: options it lacks are ignored
    except (av.FFmpegError, ValueError) as exc:
        raise ConfigError(f"{redact_url(settings.uri)}: the {enc.codec} encoder refuses {enc.pix_fmt} pictures "
                          f"({getattr(exc, 'strerror', None) or exc})") from None


class Publisher:
    """One connection with a fresh encoder: a keyframe and the codec headers go out first.

    Connecting happens in the constructor and raises a one-line :class:`StreamError` (or a
    :class:`ConfigError` for an unusable codec). ``send`` raises ``av.FFmpegError`` or ``OSError`` when the
    connection breaks.
    """

    def __init__(self, settings: PublishSettings) -> None:
        self.settings, self.redacted = settings, redact_url(settings.uri)
        self.fps, self.time_base = Fraction(settings.fps), Fraction(settings.time_base)
        self.encoder = EncoderOptions(**settings.encoder)
        self.width, self.height = settings.width, settings.height
        self.frames_written = self.frames_repeated = 0
        self._pts0: int | None = None
        self._last_key: int | None = None
        self.last_pts: int | None = None
        self._key_interval = self.encoder.gop / self.fps  # seconds
        self._audio: av.AudioStream | None = None
        self._audio_next = 0  # the next audio sample on this connection's timeline
        self._container = self._connect()

    def _connect(self) -> av.container.OutputContainer:
        settings, timeout = self.settings, self.settings.open_timeout
        options: dict[str, str] = {}
        if settings.format == "rtsp":
            options.update(rtsp_transport="tcp", timeout=str(round(timeout * 1e6)))
        if settings.format == "flv":
            options["flvflags"] = "no_duration_filesize"  # a live flv cannot seek back to patch its header
        if settings.audio:
            # Audio comes with each picture, up to its time: waiting for audio past it to interleave (FFmpeg's
            # default waits up to 10 s) would only delay the picture.
            options["max_interleave_delta"] = "50000"
        if settings.uri.lower().startswith("rtmp://"):
            reason = rtmp_handshake_problem(settings.uri, timeout)  # a silent server: a clear reason, at once
            if reason is not None:
                raise StreamError(f"{self.redacted}: cannot stream there ({reason})")
        started = time.monotonic()
        container = None
        try:
            container = av.open(settings.uri, mode="w", format=settings.format, options=options)
            self._video = self._add_video_stream(container)
            if settings.audio:
                self._audio = container.add_stream("aac", rate=int(settings.audio["rate"]))
                self._audio.layout = "mono" if int(settings.audio["channels"]) == 1 else "stereo"
            container.start_encoding()  # RTSP announces (and RTMP publishes) now, so failures surface here
        except (av.FFmpegError, OSError) as exc:
            if container is not None:
                close_quietly(container)
            if time.monotonic() - started >= 0.95 * timeout:
                reason = f"no answer within {timeout:g} s"
            else:
                reason = redact_url((getattr(exc, "strerror", None) or str(exc)).splitlines()[0])
            raise StreamError(f"{self.redacted}: cannot stream there ({reason})") from None
        return container

    def _add_video_stream(self, container: av.container.OutputContainer) -> av.VideoStream:
        try:
            stream = container.add_stream(self.encoder.codec, rate=self.fps)
        except (av.FFmpegError, ValueError) as exc:
            raise ConfigError(f"unknown or unavailable video codec {self.encoder.codec!r} ({exc})") from None
        self._space = configure_encoder(stream.codec_context, self.settings)
        stream.time_base = self.time_base
        return stream

    def send(self, image: np.ndarray, pts: int | None, index: int, *, repeat: bool = False) -> None:
        time_base = self._video.codec_context.time_base
        if repeat:
            pts = self.last_pts + round(1 / self.fps / time_base)
        else:
            source_pts = pts if pts is not None else round(index / self.fps / time_base)
            if self._pts0 is None:
                self._pts0 = source_pts  # each connection starts its timeline at 0
            pts = source_pts - self._pts0
            if self.last_pts is not None and pts <= self.last_pts:
                pts = self.last_pts + 1  # a real frame right after repeats: keep timestamps increasing
        vf = encoder_frame(image, self.encoder.pix_fmt, self._space)
        vf.pts, vf.time_base = pts, time_base
        if self._last_key is None or (pts - self._last_key) * time_base >= self._key_interval:
            vf.pict_type = av.video.frame.PictureType.I  # keyframes by time, whatever the processing rate
            self._last_key = pts
        self._container.mux(self._video.encode(vf))
        self.last_pts = pts
        if repeat:
            self.frames_repeated += 1
        else:
            self.frames_written += 1

    def send_audio(self, start: int, pcm: np.ndarray) -> None:
        """Encode audio that starts at the track's sample ``start``; what comes before the connection's first
        picture is dropped, and the connection's audio stays contiguous."""
        if self._audio is None or self._pts0 is None:
            return
        rate = self._audio.rate
        first = start - round(self._pts0 * self._video.codec_context.time_base * rate)
        if first < self._audio_next:
            pcm, first = pcm[self._audio_next - first :], self._audio_next
        elif first > self._audio_next:  # cannot happen with a contiguous track; keep the encoder's clock right
            pcm = np.concatenate([np.zeros((first - self._audio_next, pcm.shape[1]), np.int16), pcm])
        if not len(pcm):
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1), format="s16",
                                           layout=self._audio.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, self._audio_next, Fraction(1, rate)
        self._audio_next += len(pcm)
        self._mux_audio(self._audio.encode(frame))

    def _mux_audio(self, packets: list[av.Packet]) -> None:
        # FLV refuses a packet older than the first one written (the first picture, at 0): the encoder's
        # priming packet, at -1024 samples, goes (a decoder then warms up on 21 ms of the first audio).
        self._container.mux([p for p in packets if p.dts is None or p.dts >= 0])

    def finish(self, *, flush: bool) -> str | None:
        """Flush the encoder (if asked) and close the connection; a reason if flushing failed."""
        problem = None
        try:
            if flush:
                self._container.mux(self._video.encode(None))
                if self._audio is not None:
                    self._mux_audio(self._audio.encode(None))
        except (av.FFmpegError, OSError) as exc:
            problem = redact_url(str(exc))
        close_quietly(self._container)
        return problem


def close_quietly(container: av.container.OutputContainer) -> None:
    try:
        container.close()
    except (av.FFmpegError, OSError):
        pass  # the connection is gone either way; the sink reports what it saw before


def rtmp_handshake_problem(uri: str, timeout: float) -> str | None:
    """Whether an RTMP server answers the start of a handshake within ``timeout``; None if it does.

    Sends C0 and C1 (version 3, a zero 1536-byte block: the simple handshake every server accepts) and waits
    for S0 and S1, then hangs up. FFmpeg itself would wait forever for them.
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


# -- the process --------------------------------------------------------------------------------------


class _Inbox:
    """Reads records from stdin on a thread and keeps the newest frame (a slow server costs dropped frames)."""

    def __init__(self, stream: IO[bytes], width: int, height: int, channels: int = 2) -> None:
        self.slot = LatestSlot()
        self.audio: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self.ended = threading.Event()
        self.aborted = False
        self._stream, self._size, self._shape = stream, width * height * 3, (height, width, 3)
        self._channels = channels
        threading.Thread(target=self._read, name="camouflage-restream-inbox", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                header = self._stream.read(RECORD.size)
                if len(header) < RECORD.size:
                    return
                kind, pts, index = RECORD.unpack(header)
                if kind == ABORT:
                    self.aborted = True
                    return
                if kind == AUDIO:
                    data = self._stream.read(index * self._channels * 2)
                    if len(data) < index * self._channels * 2:
                        return
                    self.audio.append((pts, np.frombuffer(data, np.int16).reshape(index, self._channels)))
                    continue
                data = self._stream.read(self._size)
                if len(data) < self._size:
                    return
                image = np.frombuffer(data, np.uint8).reshape(self._shape)
                self.slot.put((image, None if pts == NO_PTS else pts, index))
        finally:
            self.ended.set()
            self.slot.wake()


def _emit(out: IO[str], event: str, **fields: object) -> None:
    out.write(json.dumps({"event": event, **fields}) + "\n")
    out.flush()


def _die_with_parent(parent: int) -> bool:
    """Have the kernel kill this process when the tool dies (even kill -9); False if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux); elsewhere the end of stdin stops us
    except (OSError, AttributeError):
        pass
    return os.getppid() == parent


def publish(settings: PublishSettings, stdin: IO[bytes], out: IO[str]) -> int:
    """Connect, then send frames from ``stdin`` until it ends; returns the exit code."""
    try:
        publisher = Publisher(settings)
    except (StreamError, ConfigError) as exc:
        _emit(out, "failed", error=type(exc).__name__, message=str(exc))
        return 1
    _emit(out, "connected")
    inbox = _Inbox(stdin, settings.width, settings.height, int((settings.audio or {}).get("channels", 2)))
    # FLV packets are whole pictures; RTSP and MPEG-TS readers built on FFmpeg hold each picture until the next
    # one starts, so when nothing new comes a frame interval after the last picture (processing is slower than
    # the feed), it goes out once more: they then show it one frame interval late at most.
    repeat_once = settings.format != "flv"
    interval = float(1 / publisher.fps)
    last, last_was_repeat = None, False
    reported, reported_at = -1, 0.0

    def report(event: str = "progress") -> None:
        _emit(out, event, frames=publisher.frames_written, repeated=publisher.frames_repeated,
              dropped=inbox.slot.dropped)

    while True:
        item = inbox.slot.take(timeout=interval)
        sent = publisher.frames_written + publisher.frames_repeated
        if sent != reported and time.monotonic() - reported_at >= PROGRESS_INTERVAL:
            report()  # also when idle: the sink takes a frame it handed over and never saw sent for a stall
            reported, reported_at = sent, time.monotonic()
        if inbox.ended.is_set() and (item is None or inbox.aborted):
            break
        repeat = item is None
        if repeat:
            if not repeat_once or last is None or last_was_repeat:
                continue
            item = last
        try:
            publisher.send(*item, repeat=repeat)
            while inbox.audio:  # the audio up to this picture came before it
                publisher.send_audio(*inbox.audio.popleft())
        except (av.FFmpegError, OSError) as exc:
            _emit(out, "lost", reason=redact_url((getattr(exc, "strerror", None) or str(exc)).splitlines()[0]))
            return 1
        last, last_was_repeat = item, repeat
    problem = publisher.finish(flush=not inbox.aborted)
    if problem is not None:
        _emit(out, "lost", reason=f"flushing failed: {problem}")
    report("closed")
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the tool, which closes us in order
    settings = PublishSettings.from_json(sys.stdin.buffer.readline().decode())
    if not _die_with_parent(settings.parent):
        return 1
    _emit(sys.stdout, "ready")
    return publish(settings, sys.stdin.buffer, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
