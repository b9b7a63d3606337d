"""What every source provides: lazy frames plus a description of the input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from camouflage_video.errors import InputError
from camouflage_video.frame import Frame

#: Largest picture read, in pixels (a 12K x 12K frame; 8K video is 33 million). A 1 MB PNG can declare
#: 30000x30000 and take 8 GB once decoded, like the decompression bombs Pillow guards against. Raise it with
#: the environment variable CAMOUFLAGE_MAX_PIXELS.
MAX_PIXELS = 150_000_000


def pixel_limit() -> int:
    return int(os.environ.get("CAMOUFLAGE_MAX_PIXELS", MAX_PIXELS))


def picture_too_large(name: object, size: str) -> InputError:
    """The one-line error for a picture over :func:`pixel_limit` (``size`` says how large it is)."""
    return InputError(
        f"{name}: {size}, over the limit of {pixel_limit() / 1e6:g} million pixels "
        "(a decompression bomb? set CAMOUFLAGE_MAX_PIXELS to allow it)"
    )


def check_picture_size(name: object, width: int, height: int) -> None:
    """Refuse a picture larger than the pixel limit before it is decoded."""
    if width * height > pixel_limit():
        raise picture_too_large(name, f"{width}x{height} pixels")


@dataclass(frozen=True, slots=True)
class ColorTags:
    """How the source's YUV maps to RGB, as FFmpeg codes (``AVColorSpace``, ``AVColorPrimaries``,
    ``AVColorTransferCharacteristic``; 2 = unspecified).

    Decoding already applies ``space`` (PyAV converts a BT.709 picture with the BT.709 matrix); sinks encode
    back with the same matrix and tag the output with all three, so colours do not shift on the way through.
    """

    space: int = 2
    primaries: int = 2
    transfer: int = 2

    @classmethod
    def of(cls, frame) -> ColorTags:
        """The tags of a decoded ``av.VideoFrame``."""
        return cls(int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc))


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Description of an input, as far as it is known before decoding.

    Attributes:
        uri: Path or (credential-redacted) URL of the input.
        kind: ``"video"``, ``"image"``, ``"folder"`` or ``"stream"``.
        width: Upright frame width in square pixels (after rotation metadata and the sample aspect ratio are
            applied): the size the frames have, and the size a player shows.
        height: Upright frame height in square pixels.
        fps: Average frame rate, exact (``Fraction(30000, 1001)``), ``None`` when unknown.
        time_base: Unit of frame ``pts``; ``None`` for still images.
        frame_count: Number of frames if the container says so, else ``None``.
        duration: Seconds, ``None`` when unknown.
        codec: Video codec name, ``None`` for images.
        has_audio: Whether an audio stream exists that a sink can carry over.
        rotation: Degrees the decoded pictures are turned (counter-clockwise) to stand upright.
        live: True for sources that never end on their own and may drop frames.
        color: Colour matrix, primaries and transfer of a video source (unspecified for images).
        sample_aspect: The input's sample (pixel) aspect ratio. Frames of an anamorphic input (DV, broadcast
            4:3, ...) are already resampled to square pixels, so faces are found at their true shape and
            outputs play back undistorted; this only records what the input stored.
    """

    uri: str
    kind: str
    width: int
    height: int
    fps: Fraction | None = None
    time_base: Fraction | None = None
    frame_count: int | None = None
    duration: float | None = None
    codec: str | None = None
    has_audio: bool = False
    rotation: int = 0
    live: bool = False
    color: ColorTags = ColorTags()
    sample_aspect: Fraction = Fraction(1)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"SourceInfo size must be positive, got {self.width}x{self.height}")
        if self.kind not in ("video", "image", "folder", "stream"):
            raise ValueError(f"unknown source kind {self.kind!r}")
        if self.sample_aspect <= 0:
            raise ValueError(f"SourceInfo sample aspect ratio must be positive, got {self.sample_aspect}")

    def to_dict(self) -> dict:
        return {
            "uri": self.uri,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "fps": str(self.fps) if self.fps is not None else None,
            "fps_float": float(self.fps) if self.fps is not None else None,
            "time_base": str(self.time_base) if self.time_base is not None else None,
            "frame_count": self.frame_count,
            "duration": self.duration,
            "codec": self.codec,
            "has_audio": self.has_audio,
            "rotation": self.rotation,
            "sample_aspect_ratio": str(self.sample_aspect),
            "color": {"space": self.color.space, "primaries": self.color.primaries, "transfer": self.color.transfer},
        }


class Source:
    """Base class: a context manager that yields :class:`Frame` objects lazily.

    Subclasses set ``self.info`` in ``__init__`` (opening the input, so bad input fails early) and
    implement ``__iter__``. ``corrupt_frames`` counts pictures that could not be decoded and were skipped.
    """

    info: SourceInfo
    corrupt_frames: int = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the input. Safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
