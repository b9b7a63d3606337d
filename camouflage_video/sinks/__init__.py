"""Where anonymized frames go: video files with their audio, images, image folders (and live restreams)."""

from __future__ import annotations

import os
from pathlib import Path

from camouflage_video.errors import ConfigError
from camouflage_video.sinks.base import Sink
from camouflage_video.sinks.images import ImageFileSink, ImageFolderSink
from camouflage_video.sinks.video import FORMATS, EncoderOptions, VideoFileSink
from camouflage_video.sources.base import SourceInfo
from camouflage_video.sources.images import IMAGE_EXTENSIONS

__all__ = [
    "EncoderOptions",
    "ImageFileSink",
    "ImageFolderSink",
    "Sink",
    "VideoFileSink",
    "default_output",
    "open_sink",
]


def default_output(source_uri: str, kind: str) -> Path:
    """``<stem>_anonymized<ext>`` beside the input; folders get ``<name>_anonymized/``.

    Video inputs in containers we do not write (avi, gif, raw .h264, ...) get an ``.mp4``.
    """
    path = Path(source_uri.rstrip("/"))
    if kind == "folder":
        return path.with_name(f"{path.name}_anonymized")
    ext = path.suffix.lower()
    if kind == "video" and ext not in FORMATS:
        ext = ".mp4"
    return path.with_name(f"{path.stem}_anonymized{ext or '.mp4'}")


def open_sink(
    target: str | os.PathLike[str],
    info: SourceInfo,
    *,
    encoder: EncoderOptions | None = None,
    audio: bool = True,
) -> Sink:
    """Open the sink that fits the output name and the kind of source."""
    text = os.fspath(target)
    if "://" in text:
        from camouflage_video.sinks.stream import StreamSink

        return StreamSink(text, info, encoder=encoder)
    path = Path(text)
    if info.kind == "folder":
        return ImageFolderSink(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if info.kind != "image":
            raise ConfigError(f"{path}: a {info.kind} input cannot be written as a single image")
        return ImageFileSink(path)
    audio_from = info.uri if audio and info.has_audio and info.kind == "video" else None
    return VideoFileSink(path, info, encoder=encoder, audio_from=audio_from)
