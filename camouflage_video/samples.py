"""A sample clip with a real face, made from scikit-image's public-domain astronaut photo (NASA).

The project ships no media: the Quickstart and the tests generate what they need.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from camouflage_video._deps import require
from camouflage_video.sinks.base import publish, temporary_path


def astronaut() -> np.ndarray:
    """Eileen Collins' NASA portrait, 512x512 RGB (public domain, shipped inside scikit-image)."""
    data = require("skimage.data", None, package="scikit-image")
    return np.ascontiguousarray(data.astronaut())


def sample_frames(count: int, size: tuple[int, int] = (640, 360), face: np.ndarray | None = None):  # noqa: ANN201
    """Frames of a slow pan and zoom over the photo, so the face moves and changes size."""
    photo = astronaut() if face is None else face
    width, height = size
    for i in range(count):
        t = i / max(1, count - 1)
        zoom = 1.0 + 0.3 * math.sin(math.pi * t)
        crop_w = int(photo.shape[1] * 0.8 / zoom)
        crop_h = min(photo.shape[0], int(crop_w * height / width))
        x0 = int((photo.shape[1] - crop_w) * t)
        y0 = 0
        yield cv2.resize(photo[y0 : y0 + crop_h, x0 : x0 + crop_w], (width, height), interpolation=cv2.INTER_AREA)


def make_sample_video(
    path: str | os.PathLike[str],
    *,
    seconds: float = 4.0,
    fps: Fraction = Fraction(25),
    size: tuple[int, int] = (640, 360),
    audio: str | None = "aac",
    codec: str = "libx264",
    frame_durations: list[int] | None = None,
) -> Path:
    """Write a clip with the astronaut's face and a 440 Hz tone.

    Args:
        path: Output file (format from its extension).
        seconds: Length.
        fps: Nominal frame rate; the stream time base is ``1/(fps*100)`` so odd rates stay exact.
        size: ``(width, height)``.
        audio: Audio codec (``aac``, ``libopus``, ``pcm_s16le``...) or ``None`` for no audio.
        codec: Video codec.
        frame_durations: Per-frame durations in time-base ticks for a variable-frame-rate clip.
    """
    path = Path(path)
    count = round(seconds * fps) if frame_durations is None else len(frame_durations)
    time_base = 1 / (Fraction(fps) * 100)
    temporary = temporary_path(path)  # fails now, naming the path, if its folder is missing
    try:
        _write_sample(temporary, count, fps, time_base, size, audio, codec, frame_durations)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    publish(temporary, path)
    return path


def _write_sample(
    target: Path,
    count: int,
    fps: Fraction | int,
    time_base: Fraction,
    size: tuple[int, int],
    audio: str | None,
    codec: str,
    frame_durations: Sequence[int] | None,
) -> None:
    with av.open(str(target), "w") as out:  # the temporary keeps the extension the format comes from
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        video.codec_context.options = {"crf": "20", "preset": "veryfast"} if codec.startswith("libx26") else {}
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=48000)
            sound.layout = "stereo"
        pts = 0
        for i, image in enumerate(sample_frames(count, size)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            out.mux(video.encode(frame))
            pts += frame_durations[i] if frame_durations else 100
        out.mux(video.encode(None))
        if sound is not None:
            _write_tone(out, sound, float(pts * time_base))


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    resampler = av.AudioResampler(format=fmt, layout="stereo", rate=rate)
    total = int(seconds * rate)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for resampled in resampler.resample(frame):
            out.mux(stream.encode(resampled))
    for resampled in resampler.resample(None):
        out.mux(stream.encode(resampled))
    out.mux(stream.encode(None))
