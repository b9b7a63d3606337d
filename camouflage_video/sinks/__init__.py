"""Where anonymized frames go: video files with their audio, images, image folders (and live restreams)."""

from __future__ import annotations

import os
from pathlib import Path

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError
from camouflage_video.sinks.base import Sink
from camouflage_video.sinks.images import ImageFileSink, ImageFolderSink
from camouflage_video.sinks.video import FORMATS, EncoderOptions, VideoFileSink, recording_options
from camouflage_video.sources.base import SourceInfo
from camouflage_video.sources.images import IMAGE_EXTENSIONS

__all__ = [
    "EncoderOptions",
    "ImageFileSink",
    "ImageFolderSink",
    "Sink",
    "VideoFileSink",
    "check_output",
    "default_output",
    "open_sink",
    "output_suffix",
]


#: The extension an image gets when its own is not one the image writer knows, by content format.
IMAGE_OUTPUT = {"jpeg": ".jpg", "heif": ".jpg", "avif": ".jpg", "jpeg2000": ".jpg", "jpegxl": ".jpg",
                "png": ".png", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}


def output_suffix(suffix: str, kind: str, content_format: str | None = None) -> str:
    """The extension an output of this input gets: its own where we can write it, else the usual one.

    Videos in containers we do not write (avi, gif, raw .h264, ...) become ``.mp4``; images whose extension
    the image writer does not know (``.jfif``, ``.heic``, ``.ppm``, none) get ``.jpg`` for JPEG and other
    lossy photo formats, else ``.png``.

    Examples:
        >>> output_suffix(".jfif", "image", "jpeg"), output_suffix(".avi", "video")
        ('.jpg', '.mp4')
    """
    ext = suffix.lower()
    if kind == "video" and ext not in FORMATS:
        return ".mp4"
    if kind == "image" and ext not in IMAGE_EXTENSIONS:
        return IMAGE_OUTPUT.get(content_format or "", ".png")
    return suffix


def default_output(source_uri: str, kind: str) -> Path:
    """``<stem>_anonymized<ext>`` beside the input (see :func:`output_suffix`); folders get ``<name>_anonymized/``."""
    path = Path(source_uri.rstrip("/"))
    if kind == "folder":
        return path.with_name(f"{path.name}_anonymized")
    content_format = None
    if kind == "image" and path.suffix.lower() not in IMAGE_EXTENSIONS:
        from camouflage_video.sources.sniff import classify

        content_format = classify(path).format
    return path.with_name(f"{path.stem}_anonymized{output_suffix(path.suffix, kind, content_format).lower()}")


def check_output(target: str | os.PathLike[str], info: SourceInfo, encoder: EncoderOptions | None = None) -> None:
    """Open the sink ``target`` would get, with its encoder, and discard it: an output that cannot be written
    (a codec that refuses its settings, an extension for another kind of input) fails before any work. A
    folder of images has no encoder, and opening its sink would create the folder: it is left to the run. A
    restream's encoder is opened without connecting (the server may come later)."""
    if info.kind == "folder":
        return
    if "://" in os.fspath(target):
        from camouflage_video.sinks.stream import check_restream

        check_restream(os.fspath(target), info, encoder)
        return
    open_sink(target, info, encoder=encoder, audio=False).abort()


def open_sink(
    target: str | os.PathLike[str],
    info: SourceInfo,
    *,
    encoder: EncoderOptions | None = None,
    audio: bool = True,
    open_timeout: float | None = None,
    live_audio: AudioTimeline | None = None,
) -> Sink:
    """Open the sink that fits the output name and the kind of source.

    ``open_timeout``: seconds a restream server may take to accept the stream (default 5).
    ``live_audio``: a live source's audio track (``StreamSource.audio``), carried unless ``audio`` is False.
    """
    live_audio = live_audio if audio else None
    text = os.fspath(target)
    if "://" in text:
        from camouflage_video.sinks.stream import StreamSink

        timeout = {} if open_timeout is None else {"open_timeout": open_timeout}
        return StreamSink(text, info, encoder=encoder, audio=live_audio, **timeout)
    path = Path(text)
    if info.kind == "folder":
        return ImageFolderSink(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        if info.kind != "image":
            raise ConfigError(f"{path}: a {info.kind} input cannot be written as a single image")
        return ImageFileSink(path)
    if info.kind == "image" and path.suffix.lower() not in FORMATS:
        raise ConfigError(f"{path}: unsupported output extension {path.suffix or '(none)'} for an image; use one "
                          f"of {', '.join(sorted(IMAGE_EXTENSIONS))} (or a video one, for a one-frame video)")
    # A live run may be killed outright hours in (kill -9, power loss, out of memory): its recording is
    # written fragmented, as a service's segments are, and what a killed run left of it is published by the
    # next run to that name, live or not, beside the name that run writes (recording-1.mp4, ...), never under it.
    from camouflage_video.sinks.segments import recover_stale_segments

    if recording_options(path) is not None:
        recover_stale_segments(path, spare=path, family=False)
    if live_audio is not None:
        subscription = live_audio.subscribe()
        try:
            return VideoFileSink(path, info, encoder=encoder, audio_from=subscription, recording=info.live,
                                 salvage=info.live)
        except BaseException:
            subscription.close()  # a sink that never was must not keep collecting audio
            raise
    audio_from = info.uri if audio and info.has_audio and info.kind == "video" else None
    # A live feed's anonymized minutes cannot be made again: a run that fails keeps them (salvage).
    return VideoFileSink(path, info, encoder=encoder, audio_from=audio_from, recording=info.live, salvage=info.live)
