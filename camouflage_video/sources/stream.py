"""Live feeds: RTSP, RTMP, HTTP(S) and HLS through FFmpeg, and webcams (``/dev/videoN``) through V4L2.

A live feed never ends, may drop at any time and cannot wait for slow processing. So a grabber thread
reads and decodes the feed on its own and keeps only the newest picture: when processing is slower
than the feed, stale pictures are dropped (and counted) instead of queueing up, and latency stays
bounded. When the feed drops, the grabber reconnects with bounded exponential backoff while the
source keeps the output alive with black frames at the feed's frame rate (no original pixel can be in
them). Frame timestamps are the frames' arrival times on a monotonic clock, so they never go
backwards across reconnects and a recording shows real time. The feed's audio is decoded on the same
thread and placed on that clock (:class:`~camouflage_video.audio.AudioTimeline`), with silence where the
feed has none, so outputs carry it in sync whatever the processing drops.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError, InputNotFoundError, StreamError
from camouflage_video.frame import Frame
from camouflage_video.options import flag
from camouflage_video.redact import redact_url
from camouflage_video.sources.base import ColorTags, DamageWatch, Source, SourceInfo, fit_picture
from camouflage_video.sources.video import AspectWatch, picture, sample_aspect
from camouflage_video.streaming import Backoff, LatestSlot

logger = logging.getLogger(__name__)

#: Output timestamps count in the MPEG 90 kHz clock.
TIME_BASE = Fraction(1, 90000)
_DEFAULT_FPS = Fraction(25)
_TRANSPORTS = ("tcp", "udp")
#: Seconds audio may lag the pictures before the gap counts as missing audio and is filled with silence.
AUDIO_LAG = 1.0
#: Pictures whose arrival-minus-media-time offsets place the audio (their smallest is the least delayed).
_OFFSET_WINDOW = 50
LIVE = "live streams"  # the help's option group


@dataclass(frozen=True)
class StreamOptions:
    """How a live feed is opened, read and reconnected.

    Attributes:
        transport: RTSP transport, ``"tcp"`` (default: survives lossy networks) or ``"udp"``.
        open_timeout: Seconds to wait for a connection and the first picture.
        read_timeout: Seconds without data after which the feed counts as lost; a connected feed that sends
            no picture this long (its audio alone goes on) gets black pictures until its pictures come back.
        reconnect: Backoff between reconnection attempts; ``attempts=None`` retries forever.
        pace: Release frames no faster than their own timestamps. ``None``: on for http(s) sources,
            which may deliver faster than real time (HLS segments arrive in bursts), off for cameras.
        input_format: FFmpeg demuxer name; ``None`` guesses it (``v4l2`` for ``/dev/video*``).
        input_options: Extra FFmpeg demuxer or protocol options, e.g. ``{"video_size": "1280x720"}``.
        audio: Decode the feed's audio (if it has any when opened) so outputs can carry it.

    Examples:
        >>> StreamOptions(transport="udp", reconnect=Backoff(initial=0.5, maximum=5)).transport
        'udp'
    """

    transport: str = field(default="tcp", metadata=flag(
        "RTSP transport", name="rtsp-transport", choices=_TRANSPORTS, group=LIVE))
    open_timeout: float = field(default=10.0, metadata=flag(
        "seconds to wait for a stream to connect", metavar="S", group=LIVE))
    read_timeout: float = field(default=5.0, metadata=flag(
        "seconds without data before a feed counts as lost", metavar="S", group=LIVE))
    reconnect: Backoff = field(default_factory=Backoff)
    pace: bool | None = None
    input_format: str | None = None
    input_options: dict[str, str] = field(default_factory=dict)
    audio: bool = True

    def __post_init__(self) -> None:
        if self.transport not in _TRANSPORTS:
            raise ConfigError(f"RTSP transport must be one of {', '.join(_TRANSPORTS)}, got {self.transport!r}")
        if self.open_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError(
                f"stream timeouts must be > 0 seconds, got open {self.open_timeout} and read {self.read_timeout}"
            )


class StreamSource(Source):
    """A live feed that reconnects, drops stale frames and never ends on its own.

    Opening connects and decodes the first picture (within ``open_timeout``), so a wrong URL fails at
    once with a one-line :class:`StreamError` instead of after the outputs were created. Iteration ends
    only when the source is closed or reconnection gives up (``counters()["errors"]`` says why).

    Args:
        uri: ``rtsp://``, ``rtmp://``, ``http(s)://`` (HLS too) URL or a ``/dev/videoN`` webcam.
        options: Connection settings; keyword arguments override single fields.

    Examples:
        >>> with StreamSource("rtsp://user:pass@cam.local/stream1", open_timeout=5) as src:  # doctest: +SKIP
        ...     print(src.info.uri)  # rtsp://***@cam.local/stream1
        ...     for frame in src:
        ...         ...
    """

    def __init__(self, uri: str, options: StreamOptions | None = None, **changes: object) -> None:
        self.uri = uri
        self.options = replace(options or StreamOptions(), **changes)  # type: ignore[arg-type]
        self.redacted = redact_url(uri)
        self.webcam = uri.startswith("/dev/video")
        if self.webcam and not Path(uri).exists():
            raise InputNotFoundError(f"{uri}: no such capture device")
        self.pace = self.options.pace if self.options.pace is not None else uri.lower().startswith(("http:", "https:"))
        self.corrupt_frames = 0
        self.damage = DamageWatch(self.redacted)  # pictures built from damaged data
        self.frames_received = 0
        self.outage_frames = 0
        self.reconnects = 0
        self.reconnect_attempts = 0
        self.errors: list[str] = []
        self._newest = LatestSlot()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._finished = threading.Event()
        self._resize_warned = False
        self._origin = time.monotonic()
        self._last_picture = self._origin  # when the grabber last offered a picture
        self._intervals: collections.deque[float] = collections.deque(maxlen=20)  # between the last pictures
        self._usual_interval = 0.0  # their median (the grabber's; read by the consumer)
        self._last_pts = -1
        #: The feed's audio on the frames' clock; None when it has none (or audio is off).
        self.audio: AudioTimeline | None = None
        self._offsets: collections.deque[float] = collections.deque(maxlen=_OFFSET_WINDOW)
        self._audio_pending: list[tuple[float | None, np.ndarray]] = []
        self._resampler: av.AudioResampler | None = None

        container = self._open()
        try:
            first, damaged = self._first_picture(container)
        except BaseException:
            container.close()
            raise
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate or _DEFAULT_FPS
        self.fps = Fraction(fps) if 1 <= fps <= 240 else _DEFAULT_FPS  # RTSP may report 90000 "fps"
        self._rotation = round(getattr(first, "rotation", 0) or 0)
        sar = sample_aspect(stream)
        image = picture(first, self._rotation, sar)  # square pixels: faces at their true shape
        audio = self._audio_stream(container)
        if audio is not None:
            self.audio = AudioTimeline(audio.rate or 48000, 1 if audio.channels == 1 else 2)
        self.info = SourceInfo(
            uri=self.redacted,
            kind="stream",
            width=image.shape[1],
            height=image.shape[0],
            fps=self.fps,
            time_base=TIME_BASE,
            codec=stream.codec_context.name,
            has_audio=self.audio is not None,
            live=True,
            color=ColorTags.of(first),
            sample_aspect=sar,
        )
        if sar != 1:
            logger.warning("%s: anamorphic %dx%d picture (sample aspect ratio %d:%d); resampled to %dx%d square pixels",
                           self.redacted, first.width, first.height, sar.numerator, sar.denominator,
                           image.shape[1], image.shape[0])
        self._origin = time.monotonic()
        self._note_offset(first, self._origin)
        self._place_pending_audio()
        self._newest.put((first, self._origin, sar, damaged))
        self._last_picture = time.monotonic()
        self._connected.set()
        self._grabber = threading.Thread(target=self._grab, args=(container,), name="camouflage-grab", daemon=True)
        self._grabber.start()

    # -- connecting -------------------------------------------------------------------------------

    def _open(self) -> av.container.InputContainer:
        """Connect; raise a one-line StreamError (credentials redacted) on failure."""
        opts = self.options
        ffmpeg_options = {"flags": "low_delay"}  # not fflags=nobuffer: it throws away the probed packets (HLS)
        if self.uri.lower().startswith(("rtsp:", "rtsps:")):
            ffmpeg_options["rtsp_transport"] = opts.transport
        ffmpeg_options.update(opts.input_options)
        fmt = opts.input_format or ("v4l2" if self.webcam else None)
        started = time.monotonic()
        try:
            container = av.open(
                self.uri, format=fmt, options=ffmpeg_options, timeout=(opts.open_timeout, opts.read_timeout),
                metadata_errors="ignore",
            )
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            timed_out = time.monotonic() - started >= 0.95 * opts.open_timeout
            raise StreamError(f"{self.redacted}: cannot open stream ({self._reason(exc, timed_out)})") from None
        if not container.streams.video:
            container.close()
            raise StreamError(f"{self.redacted}: the stream has no video")
        # One decoding thread: frame threads hold back a picture each (40 ms apiece at 25 fps).
        container.streams.video[0].codec_context.thread_count = 1
        return container

    def _first_picture(self, container: av.container.InputContainer) -> tuple[av.VideoFrame, bool]:
        try:
            for frame in self._decode(container):
                return frame
        except (av.FFmpegError, OSError) as exc:
            raise StreamError(f"{self.redacted}: no picture from stream ({self._reason(exc)})") from None
        raise StreamError(f"{self.redacted}: the stream ended before its first picture")

    def _reason(self, exc: BaseException, timed_out: bool = False) -> str:
        """One redacted line; PyAV reports an expired timeout as "Immediate exit requested" or worse."""
        if isinstance(exc, av.ExitError) or timed_out:
            limit = self.options.open_timeout if timed_out else self.options.read_timeout
            return f"no answer within {limit:g} s"
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return redact_url(text.splitlines()[0])

    # -- the grabber thread -----------------------------------------------------------------------

    def _audio_stream(self, container: av.container.InputContainer) -> av.AudioStream | None:
        if not self.options.audio or not container.streams.audio:
            return None
        return container.streams.audio[0]

    def _decode(self, container: av.container.InputContainer) -> Iterator[tuple[av.VideoFrame, bool]]:
        """Decoded pictures and whether each is damaged (``DamageWatch``); a packet that fails to decode (a lost
        UDP packet) is skipped and counted.

        Audio packets on the way are decoded and placed on the audio track.
        """
        stream = container.streams.video[0]
        audio = self._audio_stream(container) if self.audio is not None or not hasattr(self, "info") else None
        self._resampler = None
        for packet in container.demux(*(s for s in (stream, audio) if s is not None)):
            if self._stop.is_set():
                return
            if packet.stream.type == "audio":
                self._take_audio(packet)
                continue
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self.corrupt_frames += 1
                self.damage.failed()
                continue
            for frame in decoded:
                yield frame, self.damage.frame(frame)

    # -- audio ------------------------------------------------------------------------------------

    def _take_audio(self, packet: av.Packet) -> None:
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return  # a lost audio packet: the track gets silence there
        for frame in frames:
            if self._resampler is None:
                rate = self.audio.rate if self.audio is not None else frame.sample_rate
                layout = self.audio.layout if self.audio is not None else (
                    "mono" if len(frame.layout.channels) == 1 else "stereo")
                self._resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
            media = None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base)
            for out in self._resampler.resample(frame):
                pcm = out.to_ndarray().reshape(-1, len(out.layout.channels))
                self._place_audio(media, pcm)
                if media is not None:
                    media += len(pcm) / out.sample_rate

    def _note_offset(self, frame: av.VideoFrame, arrival: float) -> None:
        """Remember how far this picture's arrival (on the frames' clock) is from its media time."""
        if frame.time is not None:
            self._offsets.append(arrival - self._origin - float(frame.time))

    def _place_audio(self, media: float | None, pcm: np.ndarray) -> None:
        if self.audio is None:  # still opening: the track is made once the first picture is in
            if len(self._audio_pending) < 500:
                self._audio_pending.append((media, pcm))
            return
        if media is None:  # no timestamps: the samples are taken to end now
            self.audio.add(pcm, self.clock() - len(pcm) / self.audio.rate)
        elif self._offsets:
            self.audio.add(pcm, media + min(self._offsets))
        elif len(self._audio_pending) < 500:  # audio before this connection's first picture
            self._audio_pending.append((media, pcm))

    def _place_pending_audio(self) -> None:
        pending, self._audio_pending = self._audio_pending, []
        for media, pcm in pending:
            self._place_audio(media, pcm)

    def _grab(self, container: av.container.InputContainer | None) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                if container is None:
                    container = self._reconnect(attempt)
                    attempt = 0 if container is not None else attempt + 1
                    if container is None:
                        if self._finished.is_set():
                            return
                        continue
                reason = self._read(container)
                container.close()
                container = None
                self._offsets.clear()  # the next connection has its own media clock
                self._audio_pending = []
                if self._stop.is_set():
                    return
                self._connected.clear()
                logger.warning("%s: feed lost (%s); sending black frames until it is back", self.redacted, reason)
        finally:
            if container is not None:
                container.close()
            self._finished.set()
            self._newest.wake()

    def _read(self, container: av.container.InputContainer) -> str:
        """Offer every decoded picture until the feed ends or fails; returns why it stopped."""
        try:
            anchor: tuple[float, float] | None = None
            aspect = AspectWatch(container.streams.video[0])  # the connection's, and a change mid-stream
            for frame, damaged in self._decode(container):
                sar = aspect.current()
                now = time.monotonic()
                if self.pace and frame.time is not None:
                    anchor = self._wait_until_due(frame.time, now, anchor)
                    now = time.monotonic()
                self.frames_received += 1
                self._note_offset(frame, now)
                if self._audio_pending:
                    self._place_pending_audio()
                self._newest.put((frame, now, sar, damaged))
                self._intervals.append(now - self._last_picture)
                if len(self._intervals) >= 3:
                    self._usual_interval = sorted(self._intervals)[len(self._intervals) // 2]
                self._last_picture = now
        except (av.FFmpegError, OSError) as exc:
            return self._reason(exc)
        return "the stream ended"

    def _wait_until_due(self, media_time: float, now: float, anchor: tuple[float, float] | None) -> tuple[float, float]:
        """Hold a picture until its own timestamp is due; re-anchor after a jump in either clock."""
        if anchor is not None:
            due = anchor[1] + (media_time - anchor[0])
            if -1.0 < due - now < 5.0:
                self._stop.wait(max(0.0, due - now))
                return anchor
        return media_time, now

    def _reconnect(self, attempt: int) -> av.container.InputContainer | None:
        backoff = self.options.reconnect
        if backoff.exhausted(attempt):
            message = f"{self.redacted}: gave up after {attempt} reconnect attempts"
            logger.error("%s", message)
            self.errors.append(message)
            self._finished.set()
            return None
        delay = backoff.delay(attempt)
        limit = f"/{backoff.attempts}" if backoff.attempts is not None else ""
        logger.warning("%s: reconnect attempt %d%s in %.1f s", self.redacted, attempt + 1, limit, delay)
        if self._stop.wait(delay):
            return None
        self.reconnect_attempts += 1
        try:
            container = self._open()
        except StreamError as exc:
            logger.warning("reconnect attempt %d failed: %s", attempt + 1, exc)
            return None
        self.reconnects += 1
        self.damage.restart()  # a fresh decoder holds no damaged picture
        self._last_picture = time.monotonic()
        self._intervals.clear()
        self._usual_interval = 0.0
        self._connected.set()
        logger.warning("%s: reconnected", self.redacted)
        return container

    # -- what the runner sees ---------------------------------------------------------------------

    def wait_for_picture(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until a new picture can be taken; whether one can."""
        return self._newest.wait(timeout)

    def __iter__(self) -> Iterator[Frame]:
        interval = float(1 / self.fps)
        index, stalled = 0, False
        while not self._stop.is_set():
            item = self._newest.take(timeout=interval)
            if item is not None:
                vf, arrival, sar, damaged = item
                image = self._fit(picture(vf, self._rotation, sar))
                if stalled:
                    stalled = False
                    logger.warning("%s: pictures are back", self.redacted)
            elif self._finished.is_set():
                return
            elif not self._connected.is_set() or time.monotonic() - self._last_picture > self._stall_after():
                # Keep the outputs alive during an outage, or while a connected feed sends no picture (its
                # audio alone goes on): a black frame carries no original pixel.
                if self._connected.is_set() and not stalled:
                    stalled = True
                    logger.warning("%s: no picture for %.3g s (the feed sends only audio, or nothing decodes); "
                                   "sending black frames until pictures come back", self.redacted,
                                   self._stall_after())
                image, arrival = np.zeros((self.info.height, self.info.width, 3), np.uint8), time.monotonic()
                damaged = False
                self.outage_frames += 1
            else:
                continue  # connected, the next picture is just late
            frame = Frame(image, index=index, pts=self._stamp(arrival), time_base=TIME_BASE, damaged=damaged)
            if self.audio is not None:  # no audio this long behind the pictures: there is none (an outage)
                self.audio.fill_until(float(frame.time) - AUDIO_LAG)
            yield frame
            index += 1

    def _stall_after(self) -> float:
        """Seconds without a picture after which a connected feed's pictures count as stopped: the read
        timeout, or three of its usual intervals for a camera slower than that (a picture every few seconds)."""
        return max(self.options.read_timeout, 3 * self._usual_interval)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Fit pictures into the size the outputs were opened with (a camera may come back different), at their
        own shape: a face squeezed to another aspect is one the detector may miss."""
        h, w = image.shape[:2]
        if (w, h) != (self.info.width, self.info.height) and not self._resize_warned:
            self._resize_warned = True
            logger.warning("%s: picture size changed to %dx%d; fitting it into %dx%d", self.redacted, w, h,
                           self.info.width, self.info.height)
        return fit_picture(image, self.info.width, self.info.height)

    def _stamp(self, arrival: float) -> int:
        pts = max(self._last_pts + 1, round((arrival - self._origin) / TIME_BASE))
        self._last_pts = pts
        return pts

    def clock(self) -> float:
        """Seconds on the clock frame timestamps count on (``frame.time`` is a frame's arrival)."""
        return time.monotonic() - self._origin

    def counters(self) -> dict:
        """Live counters for the stats: frames received, dropped as stale, black outage frames, ..."""
        return {
            "frames_received": self.frames_received,
            "frames_dropped": self._newest.dropped,
            "outage_frames": self.outage_frames,
            "corrupt_packets": self.corrupt_frames,
            "reconnects": self.reconnects,
            "reconnect_attempts": self.reconnect_attempts,
            "connected": self._connected.is_set(),
            "errors": list(self.errors),
        }

    def close(self) -> None:
        self._stop.set()
        self._newest.wake()
        grabber = getattr(self, "_grabber", None)
        if grabber is not None and grabber is not threading.current_thread():
            # A read blocked on a silent network returns within the read timeout; the thread is a daemon.
            grabber.join(timeout=self.options.read_timeout + 1)
