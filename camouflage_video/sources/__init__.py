"""Where frames come from: video files, images, image folders (and, in ``stream``, live feeds)."""

from __future__ import annotations

import os
from pathlib import Path

from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.sources.base import Source, SourceInfo
from camouflage_video.sources.images import (
    IMAGE_EXTENSIONS,
    AnimatedImageSource,
    ImageFolderSource,
    ImageSource,
    open_image,
)
from camouflage_video.sources.sniff import classify
from camouflage_video.sources.video import VideoFileSource, check_input_file

__all__ = [
    "IMAGE_EXTENSIONS",
    "AnimatedImageSource",
    "ImageFolderSource",
    "ImageSource",
    "Source",
    "SourceInfo",
    "VideoFileSource",
    "is_stream_uri",
    "open_source",
]


def is_stream_uri(uri: str) -> bool:
    """True for network URLs and capture devices, which are live sources."""
    return "://" in uri or uri.startswith("/dev/video")


def open_source(uri: str | os.PathLike[str], **options: object) -> Source:
    """Open the right source for a path or URL; errors are raised here, before any output is created."""
    text = os.fspath(uri)
    if is_stream_uri(text):
        from camouflage_video.sources.stream import StreamSource

        return StreamSource(text, **options)  # type: ignore[arg-type]
    path = Path(text)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return ImageFolderSource(path)
    check_input_file(path)
    # By content, not by name: a JPEG named .jfif is an image, an MP4 named .jpg a video.
    found = classify(path)
    if found.kind == "image" or found.format in ("png", "webp", "avif"):
        return open_image(path)  # an animated PNG, WebP or AVIF is read as a video; a multi-page TIFF is refused
    if found.kind == "other" and found.format != "audio":  # audio: the video source says "no video stream"
        raise InputError(f"{path}: not an image or video ({found.reason})")
    return VideoFileSource(path)
