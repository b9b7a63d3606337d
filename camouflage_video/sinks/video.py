"""Video files through PyAV, stamped with the source's own timestamps and carrying its audio.

A file's audio is remuxed from the input (re-encoded where the container does not take its codec); a live
feed's audio comes as PCM on the run's timeline (:mod:`camouflage_video.audio`) and is encoded to AAC (Opus
for WebM): silence already fills its outages, and re-timing it onto the arrival clock would break copied
packets anyway.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from camouflage_video.audio import AudioSubscription
from camouflage_video.errors import ConfigError, InputError, OutputError
from camouflage_video.frame import Frame
from camouflage_video.options import flag
from camouflage_video.sinks.base import Sink, claim, encoder_frame, publish, tag_colors, temporary_path
from camouflage_video.sinks.salvage import CLUSTERED_FORMATS, FRAGMENTED_FORMATS, place_free, salvage_recording
from camouflage_video.sources.base import SourceInfo, fit_picture
from camouflage_video.sources.sniff import carried_picture

logger = logging.getLogger(__name__)

#: Container format and default video codec per output extension.
FORMATS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".m4v": ("mp4", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".mov": ("mov", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
}

#: Audio codecs each container takes as they are; anything else is re-encoded to the first entry.
AUDIO_COPY: dict[str, tuple[str, ...]] = {
    "mp4": ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"),
    "mov": ("aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"),
    "matroska": ("aac", "opus", "vorbis", "flac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"),
    "webm": ("opus", "vorbis"),
}


_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


#: x264's and x265's presets, fastest first (the other encoders take none).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """Video encoder settings.

    Attributes:
        codec: FFmpeg encoder name; ``None`` picks the container's default (libx264, or libvpx-vp9 for webm).
        crf: Constant rate factor (quality); lower is better. ``None`` keeps the encoder default.
        preset: Speed/size trade-off for x264/x265 (``veryfast`` ... ``veryslow``).
        pix_fmt: Output pixel format; ``None`` picks yuv420p (yuv444p for odd frame sizes).
        gop: Keyframe interval in frames; ``None`` keeps the encoder default.
        zerolatency: Tune for live streaming (no lookahead, no B-frames).
        threads: Encoder threads, 0 for automatic.
        b_frames: ``False``: no B-frames, so pictures are stored in the order they are shown. A file then ends
            exactly where its last picture's duration says; with reordered pictures an MP4's length is counted
            in decode order and misses (or overshoots) that end by up to the reorder delay. Segments need it:
            each must end where the next starts.
    """

    codec: str | None = field(default=None, metadata=flag(
        "video encoder", default_text="libx264; libvpx-vp9 for .webm", group="output"))
    crf: int | None = field(default=18, metadata=flag("encoder quality, lower is better", group="output"))
    preset: str = field(default="veryfast", metadata=flag("x264/x265 preset", group="output"))
    pix_fmt: str | None = None
    gop: int | None = field(default=None, metadata=flag(
        "keyframe interval", metavar="FRAMES", default_text="1 s for restreams", group="live streams"))
    zerolatency: bool = False
    threads: int = 0
    b_frames: bool = True

    def __post_init__(self) -> None:
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise ConfigError(f"crf must be within 0..63, got {self.crf}")
        if self.preset not in PRESETS:  # x264 would print its own error line before ours
            raise ConfigError(f"unknown preset {self.preset!r}; use one of {', '.join(PRESETS)}")


def container_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()][0]
    except KeyError:
        raise ConfigError(
            f"{path}: unsupported output extension {path.suffix or '(none)'}; use one of {', '.join(FORMATS)}"
        ) from None


#: Muxer options of a recording in an MP4-family container: fragmented, one fragment a second (and at each
#: keyframe), each written out whole as soon as it is complete, so a killed writer leaves a playable prefix.
FRAGMENTED = {"movflags": "+frag_keyframe+empty_moov+delay_moov+default_base_moof", "frag_duration": "1000000",
              "flush_packets": "1"}
#: Muxer options of a Matroska/WebM recording: a cluster a second, written out when complete (by default a
#: cluster holds up to 5 s in memory, lost with a killed writer).
CLUSTERED = {"cluster_time_limit": "1000", "flush_packets": "1"}


def recording_options(path: Path) -> dict[str, str] | None:
    """The muxer options that make ``path``'s container recoverable after a kill (``None``: it cannot be)."""
    kind = container_format(path)
    return FRAGMENTED if kind in FRAGMENTED_FORMATS else CLUSTERED if kind in CLUSTERED_FORMATS else None


class VideoFileSink(Sink):
    """Encode anonymized frames into a video file next to the source's remuxed audio.

    Each frame keeps its source ``pts`` so frame count, timestamps, variable frame rate and duration
    match the input; the file is written under a hidden temporary name and renamed on ``close()``.
    ``recording``: written to survive a kill (fragmented, or a cluster a second: :func:`recording_options`),
    under a temporary name recovery knows (see ``temporary_path`` and ``sinks/segments.py``); a container that
    cannot be recovered (AVI) is written as any other file. A recording whose writing or finalizing fails keeps
    what of it reads back and plays (``salvage.salvage_recording``), never the file as it is.
    ``salvage``: ``abort()`` (what a run that failed elsewhere does) finalizes what was written instead of
    discarding it: a live feed's anonymized minutes cannot be made again, as a file's output can.
    ``overwrite``: ``close()`` replaces a file at ``path`` (a run's own output name), and what a failed run
    keeps goes beside it (``rec-1.mp4``, ...), where a rerun of the same command does not replace it; without
    it (a service's segments) every publication takes the first free name from ``path``, never over a file.

    Examples:
        >>> with VideoFileSource("in.mp4") as src, VideoFileSink("out.mp4", src.info) as sink:  # doctest: +SKIP
        ...     for frame in src:
        ...         sink.write(frame, frame.image)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        info: SourceInfo,
        *,
        encoder: EncoderOptions | None = None,
        audio_from: str | os.PathLike[str] | AudioSubscription | None = None,
        start: float = 0.0,
        metadata: dict[str, str] | None = None,
        recording: bool = False,
        salvage: bool = False,
        overwrite: bool = True,
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.encoder = encoder or EncoderOptions()
        self.format = container_format(self.path)
        self.frames_written = 0
        self.resized_frames = 0
        self._closed = False
        self._last_pts: int | None = None
        self._last_time = 0.0
        options = recording_options(self.path) if recording else None
        self.recording, self.salvage, self._broken = options is not None, salvage, False
        self.overwrite = overwrite
        self._spare = self.path if overwrite else None  # the name a failed run's leftovers never take
        self._temporary = temporary_path(self.path, recording=self.recording)
        # Held while it is written: no recovery or clean-up takes it for a dead run's, whatever process id
        # namespace (a container) or machine (a network share) it runs in.
        self._claim = claim(self._temporary)
        try:
            self._container = av.open(str(self._temporary), mode="w", format=self.format, options=options or {})
            self._container.metadata.update(metadata or {})
            self._video = self._add_video_stream()
            self._start_pts = round(start / self.time_base) if start else 0
            self._audio: AudioRemuxer | LiveAudioEncoder | None
            if isinstance(audio_from, AudioSubscription):
                self._audio = LiveAudioEncoder(audio_from, self._container, self.format, start=start,
                                               frame_seconds=float(1 / self.fps))
            else:
                self._audio = AudioRemuxer(audio_from, self._container, self.format) if audio_from else None
        except Exception as exc:
            self.abort()
            if isinstance(exc, (ConfigError, OutputError)):
                raise
            raise OutputError(f"{self.path}: cannot set up the encoder ({exc})") from exc

    def _add_video_stream(self) -> av.VideoStream:
        info, enc = self.info, self.encoder
        codec = enc.codec or FORMATS[self.path.suffix.lower()][1]
        self.fps = info.fps or Fraction(25)
        # Still images have no clock: put them on a grid at the nominal rate.
        self.time_base = info.time_base if info.time_base is not None else 1 / self.fps
        try:
            kind = av.codec.Codec(codec, "w").type
            stream = self._container.add_stream(codec, rate=self.fps) if kind == "video" else None
        except (av.FFmpegError, ValueError) as exc:
            raise ConfigError(f"unknown or unavailable video codec {codec!r} ({exc})") from exc
        if stream is None:
            raise ConfigError(f"{codec!r} is an {kind} encoder, not a video one")
        stream.width, stream.height = info.width, info.height
        # Sources hand over square pixels (an anamorphic input is resampled); say so, or a player may guess.
        stream.codec_context.sample_aspect_ratio = Fraction(1)
        odd = info.width % 2 or info.height % 2
        stream.pix_fmt = enc.pix_fmt or ("yuv444p" if odd and codec in ("libx264", "libx265") else
                                         _pixel_format(av.codec.Codec(codec, "w")))
        if odd and enc.pix_fmt is None:
            logger.warning("%s: odd frame size %dx%d, encoding 4:4:4 to keep it", self.path, info.width, info.height)
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        self._space = tag_colors(stream.codec_context, info.color)
        self._pix_fmt = stream.pix_fmt
        if not enc.zerolatency:
            # PyAV asks encoders for slice threads; x264 then splits each picture, using the cores less well
            # than FFmpeg's default frame threads (about 20% more wall time at 720p on 2 cores). Live output
            # (zerolatency) keeps slices: frame threads would add frames of delay.
            stream.codec_context.thread_type = "AUTO"
        if enc.threads:
            stream.codec_context.thread_count = enc.threads
        options: dict[str, str] = {}
        if enc.crf is not None:
            options["crf"] = str(enc.crf)
        if codec in ("libx264", "libx265"):
            options["preset"] = enc.preset
            if enc.zerolatency:
                options["tune"] = "zerolatency"
        if codec == "libx265":
            options["x265-params"] = "log-level=error"  # x265 prints 20 lines of its settings to the terminal
        elif codec == "libvpx-vp9":
            deadline = "realtime" if enc.zerolatency else "good"
            options.update({"b": "0", "deadline": deadline, "cpu-used": "8", "row-mt": "1"})
        if not enc.b_frames:
            options["bf"] = "0"  # libavcodec's own option (max_b_frames): every encoder takes it
        if enc.gop:
            stream.codec_context.gop_size = enc.gop
        stream.codec_context.options = options
        try:  # now, not at the first picture: settings the encoder refuses fail before any work
            stream.codec_context.open(strict=False)  # as encode() opens it: options it lacks are ignored
        except av.FFmpegError as exc:
            raise ConfigError(f"{self.path}: the {codec} encoder refuses {stream.pix_fmt} pictures with "
                              f"{options or 'its defaults'} ({exc.strerror or exc})") from None
        return stream

    def write(self, frame: Frame, image: np.ndarray) -> None:
        try:
            self._write(frame, image)
        except BaseException:
            self._broken = True  # the file's state is unknown: never finalized as it is
            raise

    def _write(self, frame: Frame, image: np.ndarray) -> None:
        pts = frame.pts
        if pts is None or frame.time_base is None:
            pts = frame.index
        elif frame.time_base != self.time_base:
            pts = round(frame.pts * frame.time_base / self.time_base)
        pts -= self._start_pts
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # muxers refuse repeated timestamps; one tick keeps the order
        if image.shape[:2] != (self.info.height, self.info.width):
            if not self.resized_frames:
                logger.warning("%s: frame %d is %dx%d, the output %dx%d: fitting it (and any later ones) into it at "
                               "its own shape, black bars around it",
                               self.path, frame.index, image.shape[1], image.shape[0], self.info.width,
                               self.info.height)
            self.resized_frames += 1
            image = fit_picture(image, self.info.width, self.info.height)
        vf = encoder_frame(image, self._pix_fmt, self._space)
        vf.pts, vf.time_base = pts, self.time_base
        self._last_pts = pts
        self._last_time = float(pts * self.time_base)
        if self._audio is not None:
            self._audio.mux_until(self._last_time)
        self._mux(self._video.encode(vf))
        self.frames_written += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as exc:
            raise OutputError(f"{self.path}: writing failed ({exc})") from exc

    def close(self, *, interrupted: bool = False, end: float | None = None) -> None:
        """Flush the encoder, add the remaining audio and publish the file under its final name.

        Args:
            interrupted: End the audio with the last video frame written instead of copying it to its end.
            end: Where a live feed's audio ends, in seconds of this file (the next segment's start); by
                default with the last picture.
        """
        if self._closed:
            return
        self._closed = True
        self._finish(interrupted, end)
        try:
            if self.overwrite:
                publish(self._temporary, self.path)
            else:
                self.path = place_free(self._temporary, self.path, None)
        finally:
            self._let_go()  # a publish that failed must not keep the file held either

    def _finish(self, interrupted: bool, end: float | None) -> None:
        """Flush the encoder and the audio and close the container; on failure, keep what of a recording
        plays (:meth:`_discard`) and raise."""
        try:
            self._mux(self._last_lasting(self._video.encode(None), end))
            if isinstance(self._audio, LiveAudioEncoder):
                self._audio.finish(end)  # a live track ends with the last picture, interrupted or not
            elif self._audio is not None:
                self._audio.finish(self._last_time if interrupted else None)
            self._container.close()
        except BaseException:
            self._discard(salvage=self.recording)
            raise

    def _last_lasting(self, packets: list[av.Packet], end: float | None) -> list[av.Packet]:
        """The flushed packets, the last picture lasting until ``end`` (a segment ends where the next starts;
        a live feed's pictures come at uneven intervals, so the frame rate does not say how long it lasts)."""
        if end is not None and self._last_pts is not None:
            end_pts = round(end / self.time_base)
            for packet in packets:
                if packet.pts == self._last_pts and end_pts > packet.pts:
                    packet.duration = end_pts - packet.pts
        return packets

    def abort(self) -> None:
        """Discard the file; with ``salvage``, finalize what was written instead (what of it plays, if its
        writing failed)."""
        if self._closed:
            return
        self._closed = True
        if not (self.salvage and self.frames_written and not self._broken):
            self._discard(salvage=self.salvage and self.frames_written > 0)
            return
        try:
            self._finish(True, None)
        except Exception as exc:  # noqa: BLE001 - _finish kept what of the file plays; the run's failure is raised
            logger.warning("%s: could not be finalized (%s)", self.path, exc)
            return
        try:
            final = place_free(self._temporary, self.path, self._spare)
        except OSError as exc:
            logger.warning("%s: the run failed, and what was recorded could not be published (%s); it is left "
                           "under its temporary name for 'camouflage-video recover'", self.path,
                           exc.strerror or exc)
        else:
            logger.warning("%s: the run failed; what was recorded up to then is kept as %s", self.path, final)
            self.path = final
        finally:
            self._let_go()

    def _discard(self, *, salvage: bool = False) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - what it wrote is checked below, or thrown away
                logger.debug("closing a discarded output failed", exc_info=True)
        if getattr(self, "_audio", None) is not None:
            self._audio.close()
        if salvage and self.recording:
            try:
                final = salvage_recording(self._temporary, self.path, self.format, self._spare)
            except BaseException as exc:  # left whole for a recovery once this process is gone
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "interrupted"
                logger.warning("%s: its writing failed, and what was written could not be checked now (%s); it is "
                               "left under its temporary name for 'camouflage-video recover' once this process "
                               "has ended", self.path, reason)
                logger.debug("checking what was written failed", exc_info=True)
                self._let_go()
                if not isinstance(exc, Exception):
                    raise  # Ctrl-C: the notice above is given, the file kept whole
                return
            if final is not None:
                logger.warning("%s: its writing failed; what was written up to then is kept as %s",
                               self.path, final)
                self.path = final  # what describe() (the stats) reports
        self._temporary.unlink(missing_ok=True)
        self._let_go()

    def _let_go(self) -> None:
        claimed, self._claim = getattr(self, "_claim", None), None
        if claimed is not None:
            os.close(claimed)

    def describe(self) -> dict:
        return {
            "uri": str(self.path),
            "kind": "video",
            "format": self.format,
            "codec": self._video.codec_context.name,
            "pix_fmt": self._video.pix_fmt,
            "frames": self.frames_written,
            "resized_frames": self.resized_frames,
            "audio": self._audio.mode if self._audio else None,
        }


def _pixel_format(codec: av.codec.Codec) -> str:
    """4:2:0 as players expect, the first the encoder lists (MJPEG's full-range yuvj420p: it refuses yuv420p
    without -strict), else yuv420p, else the encoder's first."""
    formats = [f.name for f in codec.video_formats or ()]
    return next((name for name in formats if name in ("yuv420p", "yuvj420p", "nv12")),
                "yuv420p" if not formats or "yuv420p" in formats else formats[0])


class AudioRemuxer:
    """Carry the source's audio streams into an output container, interleaved with the video.

    The source is opened a second time for its audio alone, so audio moves packet by packet alongside
    the video (constant memory on any length). Packets are copied when the container accepts their
    codec and re-encoded (AAC, or Opus for webm) when it does not.
    """

    def __init__(self, source: str | os.PathLike[str], output: av.container.OutputContainer, fmt: str) -> None:
        self._source = source
        self._input = av.open(os.fspath(source), mode="r", metadata_errors="ignore")
        self._output = output
        self._streams = list(self._input.streams.audio)
        self._pairs: dict[int, tuple[av.AudioStream, object | None]] = {}
        accepted = AUDIO_COPY.get(fmt, ())
        modes = set()
        for stream in self._streams:
            name = stream.codec_context.name
            extra = carried_picture(bytes(stream.codec_context.extradata or b""))
            if extra is not None:
                logger.warning("the audio's codec setup data holds %s: the audio is re-encoded, not copied", extra)
            if name in accepted and extra is None:
                out = output.add_stream_from_template(stream)
                self._pairs[stream.index] = (out, None)
                modes.add("copy")
            else:
                target = "libopus" if fmt == "webm" else "aac"
                out = output.add_stream(target, rate=48000 if target == "libopus" else stream.rate or 48000)
                # the default layout for the channel count: sources often say just "2 channels"
                out.layout = _DEFAULT_LAYOUTS.get(stream.channels, "stereo")
                resampler = av.AudioResampler(format=out.format.name, layout=out.layout.name, rate=out.rate)
                self._pairs[stream.index] = (out, resampler)
                modes.add(f"transcode:{name}->{target}")
        self.mode = ",".join(sorted(modes)) or None
        # Packets that end before zero are dropped: sound an edit list cut off (a clip cut with "-ss 2 -c copy"
        # keeps a second of it, which players skip but the file holds). An encoder's priming packet, the one
        # that ends at zero, is kept but where Matroska/WebM cannot store negative timestamps (the muxer would
        # shift every stream, video included).
        self._keep_priming = fmt not in ("matroska", "webm")
        self._packets = self._input.demux(self._streams) if self._streams else iter(())
        self._pending: av.Packet | None = None
        self._done = False
        self._timeline: dict[int, list] = {}  # per stream: [offset, last packet's dts, its end], in its time base
        self.refused_packets = 0
        self._tails: dict[int, bytes] = {}  # the end of each copied stream's last packet

    def _continued(self, packet: av.Packet) -> av.Packet | None:
        """``packet`` on a timeline that goes on where a file's timestamps start again (recordings joined, a
        camera's clock reset: the muxer refuses timestamps that go back); ``None`` for a packet to drop, one
        a little behind the last (damage)."""
        if packet.dts is None or packet.pts is None:
            return packet
        offset, last, end = self._timeline.setdefault(packet.stream.index, [0, None, None])
        dts = packet.dts + offset
        if last is not None and dts <= last:  # the muxer takes only timestamps that go forward
            if end - dts < 1 / packet.time_base:  # less than a second back: a damaged packet
                return None
            offset += end - dts
            logger.warning("the audio's timestamps start again at %.2f s; continued from %.2f s",
                           float(packet.dts * packet.time_base), float(end * packet.time_base))
        packet.dts, packet.pts = packet.dts + offset, packet.pts + offset
        self._timeline[packet.stream.index] = [offset, packet.dts, packet.dts + max(1, packet.duration or 0)]
        return packet

    def mux_until(self, seconds: float | None) -> None:
        """Mux audio packets that start before ``seconds`` (all of them for ``None``)."""
        while not self._done:
            if self._pending is not None:
                packet, self._pending = self._pending, None  # already on the timeline
            elif (packet := next(self._packets, None)) is not None and (packet := self._continued(packet)) is None:
                continue
            if packet is None:
                self._done = True
                break
            if packet.pts is not None and seconds is not None and float(packet.pts * packet.time_base) > seconds:
                self._pending = packet
                break
            self._mux_packet(packet)

    def _mux_packet(self, packet: av.Packet) -> None:
        out, resampler = self._pairs[packet.stream.index]
        end = None if packet.pts is None else packet.pts + (packet.duration or 0)
        if end is not None and end <= 0 and not (
                self._keep_priming and end * packet.time_base > -0.001 and packet.pts * packet.time_base > -0.1):
            return
        if resampler is None:
            if packet.dts is None:  # demuxer flush packet
                return
            data = bytes(packet)
            tail = self._tails.get(packet.stream.index, b"")  # a picture split across two packets is seen whole
            self._tails[packet.stream.index] = data[-1024:]
            carried = carried_picture(tail + data)
            if carried is not None:  # copied, it would reach the output as it is
                at = f" at {float(packet.pts * packet.time_base):.2f} s" if packet.pts is not None else ""
                raise InputError(f"{self._source}: its audio carries {carried}{at}, which may be a picture of a "
                                 "face; it is not copied (use --no-audio)")
            packet.stream = out
            try:
                self._output.mux(packet)
            except (av.InvalidDataError, av.ArgumentError) as exc:  # a damaged packet: its sound is lost, not the run
                self.refused_packets += 1
                if self.refused_packets == 1:
                    logger.warning("skipped an audio packet the output refuses at pts %s (%s)", packet.pts,
                                   exc.strerror or type(exc).__name__)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            logger.warning("skipped an undecodable audio packet at pts %s", packet.pts)
            return
        for frame in frames:
            for resampled in resampler.resample(frame):  # type: ignore[attr-defined]
                self._output.mux(out.encode(resampled))

    def finish(self, seconds: float | None = None) -> None:
        """Mux the rest (up to ``seconds`` if given), flush re-encoders and close the input."""
        self.mux_until(seconds)
        for out, resampler in self._pairs.values():
            if resampler is not None:
                for resampled in resampler.resample(None):  # type: ignore[attr-defined]
                    self._output.mux(out.encode(resampled))
                self._output.mux(out.encode(None))
        self.close()

    def close(self) -> None:
        self._input.close()


class LiveAudioEncoder:
    """Encode a live feed's audio track into an output container, interleaved with the video.

    The track (:class:`~camouflage_video.audio.AudioSubscription`) is contiguous on the run's clock, so the
    audio's timestamps are its sample counts: it cannot drift from the video stamped on the same clock.

    Args:
        subscription: The output's reader of the track.
        output: The container to add the stream to.
        fmt: Container format (``webm`` gets Opus, the others AAC).
        start: Run time, in seconds, of this output's time 0 (a segment that starts later).
        frame_seconds: How long the last picture lasts: the audio ends with it.

    Examples:
        >>> sink = VideoFileSink("rec.mp4", src.info, audio_from=src.audio.subscribe())  # doctest: +SKIP
    """

    def __init__(
        self, subscription: AudioSubscription, output: av.container.OutputContainer, fmt: str, *,
        start: float = 0.0, frame_seconds: float = 0.04,
    ) -> None:
        self._sub, self._output = subscription, output
        target = "libopus" if fmt == "webm" else "aac"
        self._stream = output.add_stream(target, rate=48000 if target == "libopus" else subscription.rate)
        self._stream.layout = subscription.layout
        self.mode = f"encode:live->{target}"
        self._rate = subscription.rate
        self._first = round(start * self._rate)  # the track's sample at this output's time 0
        self._frame_seconds, self._video_end = frame_seconds, 0.0
        self._started = False

    def mux_until(self, seconds: float | None) -> None:
        """Encode what the track has up to ``seconds`` of this output's time."""
        if seconds is not None:
            if not self._started:  # the audio starts with the first picture
                self._started = True
                self._sub.skip_to(self._first + round(seconds * self._rate))
            self._video_end = max(self._video_end, seconds)
            self._encode(self._sub.read(self._first + round(seconds * self._rate)))

    def _encode(self, pcm: np.ndarray) -> None:
        if not len(pcm):
            return
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=self._sub.layout)
        frame.sample_rate = self._rate
        frame.pts, frame.time_base = self._sub.position - len(pcm) - self._first, Fraction(1, self._rate)
        self._output.mux(self._stream.encode(frame))

    def finish(self, seconds: float | None = None) -> None:
        """Encode the track up to the end of the last picture (silence where it has not arrived), flush."""
        if not self._started:
            self.close()
            return  # no picture, no audio
        end = self._video_end + self._frame_seconds if seconds is None else seconds
        self._encode(self._sub.read(self._first + round(end * self._rate), pad=True))
        self._output.mux(self._stream.encode(None))
        self.close()

    def close(self) -> None:
        if not self._sub.shared:
            self._sub.close()
