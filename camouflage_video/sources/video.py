"""Video files through PyAV: anything FFmpeg demuxes, decoded lazily one frame at a time."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.frame import Frame
from camouflage_video.sources.base import ColorTags, DamageWatch, Source, SourceInfo, check_picture_size

logger = logging.getLogger(__name__)

_DEFAULT_FPS = Fraction(25)


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded picture the way its display matrix says (counter-clockwise degrees)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def sample_aspect(stream: av.VideoStream) -> Fraction:
    """The sample (pixel) aspect ratio a player applies: the container's, else the codec's (as FFmpeg's
    ``av_guess_sample_aspect_ratio``); 1 where neither says."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            return Fraction(sar)
    return Fraction(1)


class AspectWatch:
    """The sample aspect ratio of each picture a stream decodes to: :func:`sample_aspect` until the decoder
    reports another one (a new sequence header mid-stream: a camera switching to an anamorphic mode, files of
    two kinds joined), then the decoder's. Call :meth:`current` after each decode."""

    def __init__(self, stream: av.VideoStream) -> None:
        self._context = stream.codec_context
        self._decoders = self._decoder_sar()
        self.sar = sample_aspect(stream)

    def current(self) -> Fraction:
        decoders = self._decoder_sar()
        if decoders != self._decoders:
            self._decoders = decoders
            self.sar = decoders or Fraction(1)
        return self.sar

    def _decoder_sar(self) -> Fraction | None:
        sar = self._context.sample_aspect_ratio
        return Fraction(sar) if sar is not None and sar.numerator > 0 and sar.denominator > 0 else None


def square_size(width: int, height: int, sar: Fraction) -> tuple[int, int]:
    """The display size of a ``width`` x ``height`` picture of sample aspect ``sar``, in square pixels.

    The width is stretched, as FFmpeg's ``scale=iw*sar:ih`` and players do, so no row is lost; both sides of a
    resampled picture are even, which 4:2:0 encoders need.

    Examples:
        >>> square_size(214, 360, Fraction(3)), square_size(720, 480, Fraction(8, 9))
        ((642, 360), (640, 480))
    """
    if sar == 1:
        return width, height
    return max(2, 2 * round(width * sar / 2)), max(2, 2 * round(height / 2))


def picture(vf: av.VideoFrame, rotation: int = 0, sar: Fraction = Fraction(1)) -> np.ndarray:
    """A decoded frame as upright RGB in square pixels (faces are found, and outputs shown, at their true shape)."""
    width, height = square_size(vf.width, vf.height, sar)
    if (width, height) == (vf.width, vf.height):
        image = vf.to_ndarray(format="rgb24")
    else:  # the sample aspect applies to the stored picture, before it is turned upright
        image = vf.to_ndarray(format="rgb24", width=width, height=height, interpolation="BICUBIC")
    return upright(image, rotation)


def check_input_file(path: Path) -> None:
    """Raise a one-line error for a path that cannot possibly be a media file."""
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or directory")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


class VideoFileSource(Source):
    """Decode a video file (mp4, mkv, mov, avi, webm, animated gif, raw .h264, ...) frame by frame.

    Frames keep the stream's own ``pts`` and ``time_base``, so variable frame rate survives; pictures
    with rotation metadata are turned upright. Packets that fail to decode are skipped and counted in
    ``corrupt_frames``. Memory stays constant: nothing is read ahead beyond FFmpeg's own buffers.

    Examples:
        >>> with VideoFileSource("street.mp4") as src:  # doctest: +SKIP
        ...     print(src.info.fps, src.info.frame_count)
        ...     for frame in src:
        ...         ...
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 0) -> None:
        self.path = Path(path)
        check_input_file(self.path)
        self.corrupt_frames = 0
        self.shortfall: str | None = None  # why fewer pictures were read than the file holds, once known
        self.damage = DamageWatch(str(path))  # pictures built from damaged data
        try:
            self._container = av.open(str(self.path), mode="r", metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
            raise InputError(f"{self.path}: not a readable video ({_reason(exc)})") from exc
        try:
            self._stream = self._main_video_stream()
            context = self._stream.codec_context
            check_picture_size(self.path, *square_size(context.width, context.height, sample_aspect(self._stream)))
            self._stream.thread_type = "AUTO"
            if threads:
                self._stream.codec_context.thread_count = threads
            self._frames = self._decode()
            try:
                first = next(self._frames)
            except StopIteration:
                raise InputError(f"{self.path}: no decodable video frame") from None
            self._first: Frame | None = first
            self.info = self._describe(first)
            if self.info.sample_aspect != 1:
                logger.warning(
                    "%s: anamorphic %dx%d picture (sample aspect ratio %d:%d); resampled to %dx%d square pixels",
                    self.path, context.width, context.height, self.info.sample_aspect.numerator,
                    self.info.sample_aspect.denominator, self.info.width,
                    self.info.height,
                )
        except BaseException:
            self._container.close()
            raise

    def _main_video_stream(self) -> av.VideoStream:
        """The one video stream to anonymize; refuse a file whose other video streams would be lost.

        Cover art (an attached picture, a thumbnail track) is not part of the video and no output carries
        it, so it is passed over with a warning; two real video streams cannot both be written.
        """
        streams = self._container.streams
        covers = [s for s in streams.video if s.disposition & _COVER]
        real = [s for s in streams.video if not s.disposition & _COVER]
        if not real:
            kinds = sorted({s.type for s in streams if s not in covers})
            detail = f"only {', '.join(kinds)} streams" if kinds else "no streams"
            detail += " and a cover picture" if covers else ""
            raise InputError(f"{self.path}: has no video stream ({detail})")
        if len(real) > 1:
            raise InputError(
                f"{self.path}: has {len(real)} video streams ({'; '.join(_describe_stream(s) for s in real)}); "
                "only one can be anonymized and the others would be lost (keep one first, e.g. "
                "ffmpeg -i IN -map 0:v:N -map 0:a? -c copy OUT)"
            )
        if covers:
            logger.warning("%s: %d cover picture(s) (%s) not carried into the output", self.path, len(covers),
                           "; ".join(_describe_stream(s) for s in covers))
        others = sorted({s.type for s in streams if s.type not in ("video", "audio")})
        if others:  # subtitles may name people; bitmap subtitles are pictures: none is carried
            logger.warning("%s: its %s streams are not carried into the output", self.path, " and ".join(others))
        return real[0]

    def _describe(self, first: Frame) -> SourceInfo:
        stream, container = self._stream, self._container
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        frame_count = stream.frames or None
        if frame_count is None and duration and fps:
            frame_count = round(duration * float(fps))
        return SourceInfo(
            uri=str(self.path),
            kind="video",
            width=first.image.shape[1],
            height=first.image.shape[0],
            fps=Fraction(fps) if fps else None,
            time_base=first.time_base,
            frame_count=frame_count,
            duration=duration,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
            rotation=self._rotation,
            color=self._color,
            sample_aspect=self._sample_aspect,
        )

    def _decode(self) -> Iterator[Frame]:
        stream = self._stream
        time_base = Fraction(stream.time_base) if stream.time_base else 1 / (stream.average_rate or _DEFAULT_FPS)
        step = max(1, round((1 / Fraction(stream.average_rate or stream.guessed_rate or _DEFAULT_FPS)) / time_base))
        self._rotation = 0
        index, last_pts, offset = 0, None, 0
        for packet in self._demux(stream):
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:
                self.corrupt_frames += 1
                self.damage.failed()
                logger.warning("%s: skipped a corrupt packet at pts %s (%s)", self.path, packet.pts, _reason(exc))
                continue
            for vf in decoded:
                damaged = self.damage.frame(vf)
                if index == 0:
                    self._rotation = int(round(getattr(vf, "rotation", 0) or 0))
                    self._color = ColorTags.of(vf)
                    aspect = AspectWatch(stream)
                    self._sample_aspect = aspect.sar  # what the run was set up with
                # A change mid-file (joined recordings) is followed: the picture keeps its true shape, and
                # is fitted to the output size like a picture of another size.
                sar = aspect.current()
                pts = vf.pts
                if pts is None:  # raw elementary streams carry no timestamps: continue the grid
                    pts = 0 if last_pts is None else last_pts + step
                elif last_pts is not None and pts + offset < last_pts - 1 / time_base:
                    # Timestamps start again (recordings joined, "cat a.ts b.ts"): go on from the last picture
                    # rather than squeezing the rest behind it.
                    logger.warning("%s: timestamps start again at %.2f s; continued from %.2f s", self.path,
                                   float(pts * time_base), float((last_pts + step) * time_base))
                    offset = last_pts + step - pts
                    pts += offset
                else:
                    pts += offset
                last_pts = pts
                yield Frame(picture(vf, self._rotation, sar), index=index, pts=pts, time_base=time_base,
                            damaged=damaged)
                index += 1

        self._check_count(index)

    def _demux(self, stream: av.VideoStream) -> Iterator[av.Packet]:
        packets = self._container.demux(stream)
        while True:
            try:
                yield next(packets)
            except StopIteration:
                return
            except IndexError:  # PyAV meets a stream that was not there when the file was opened
                logger.warning("%s: a new stream starts part way through (recordings of two programs joined?); "
                               "the rest of the file is not read", self.path)
                self.shortfall = "a new stream starts part way through; the rest of the file was not read"
                return

    def _check_count(self, read: int) -> None:
        """Say so where far fewer pictures were read than the file declares (cut short, damaged)."""
        declared, info = self.info.frame_count, self.info
        if declared and info.duration and info.fps:  # an edit list hides samples the stream counts
            declared = min(declared, round(info.duration * float(info.fps)))
        if declared and read < 0.9 * declared - 2 and self.shortfall is None:
            self.shortfall = (f"read {read} of the {declared} pictures the file declares "
                              "(cut short or damaged?)")
            logger.warning("%s: %s", self.path, self.shortfall)

    def __iter__(self) -> Iterator[Frame]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._frames

    def close(self) -> None:
        self._container.close()


#: Video streams that are pictures about the file, not its video: cover art, a track of thumbnails.
_COVER = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails


def _describe_stream(stream: av.VideoStream) -> str:
    """``#1 h264 1920x1080, 250 frames``: enough to tell a file's video streams apart."""
    context = stream.codec_context
    text = f"#{stream.index} {context.name} {context.width}x{context.height}"
    return text + (f", {stream.frames} frame{'s' if stream.frames != 1 else ''}" if stream.frames else "")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
