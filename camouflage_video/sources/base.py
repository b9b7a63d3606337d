"""What every source provides: lazy frames plus a description of the input."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from camouflage_video.errors import InputError
from camouflage_video.frame import Frame

#: Largest picture read, in pixels (a 12K x 12K frame; 8K video is 33 million). A 1 MB PNG can declare
#: 30000x30000 and take 8 GB once decoded, like the decompression bombs Pillow guards against. Raise it with
#: the environment variable CAMOUFLAGE_MAX_PIXELS.
MAX_PIXELS = 150_000_000


def pixel_limit() -> int:
    return int(os.environ.get("CAMOUFLAGE_MAX_PIXELS", MAX_PIXELS))


logger = logging.getLogger(__name__)


def fit_picture(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` fitted into ``width`` x ``height`` at its own shape, black bars filling the rest.

    For a source whose pictures change size mid-way (a camera that comes back in another mode, a spliced file):
    an output has one size, and a picture stretched to it would play distorted. Black carries no original pixel.

    Examples:
        >>> fit_picture(np.full((10, 10, 3), 255, np.uint8), 20, 10)[5, [0, 10, 19], 0].tolist()
        [0, 255, 0]
    """
    import cv2

    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    fw, fh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    fitted = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fh) // 2, (width - fw) // 2
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fitted[top:top + fh, left:left + fw] = cv2.resize(image, (fw, fh), interpolation=interpolation)
    return fitted


class DamageWatch:
    """Which decoded pictures were built from damaged data, in decode order.

    A packet that fails to decode (a lost UDP packet, a damaged file), or a picture the decoder reports as
    corrupt, leaves a hole that the decoder fills from earlier pictures ("error concealment"): a stale copy of
    the scene, smeared, with a face where there is none now, half a face, eyes above a forehead. A detector
    finds such ghosts unreliably, and every later picture is predicted from the damaged one until the next
    keyframe that decodes clean. All of those are marked ``damaged`` and pixelated whole (fail closed).

    A lost packet that the decoder does not notice (one dropped whole, in a stream that does not number its
    pictures) cannot be seen here.

    Examples:
        >>> watch = DamageWatch("clip.mp4")
        >>> watch.failed()  # a packet did not decode
        >>> watch.judge(corrupt=False, key=False), watch.judge(corrupt=False, key=True)
        (True, False)
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0  # pictures marked damaged
        self._damaged = False
        self._index = 0
        self._since = 0

    def failed(self) -> None:
        """A packet failed to decode: what follows is predicted from a hole."""
        self._start()

    def restart(self) -> None:
        """A fresh decoder (a new connection): it holds no damaged picture."""
        self._damaged = False

    def judge(self, *, corrupt: bool, key: bool) -> bool:
        """Whether the next decoded picture (its decoder flags) is damaged."""
        if corrupt:
            self._start()
        elif key:
            self._end()
        self._index += 1
        self.frames += self._damaged
        return self._damaged

    def frame(self, vf) -> bool:  # noqa: ANN001 - av.VideoFrame
        """:meth:`judge` for a decoded ``av.VideoFrame``."""
        return self.judge(corrupt=bool(vf.is_corrupt), key=bool(vf.key_frame))

    def _start(self) -> None:
        if not self._damaged:
            self._damaged, self._since = True, self.frames
            logger.warning("%s: picture %d on was decoded from damaged data; pictures are pixelated whole until "
                           "the next clean keyframe", self.name, self._index)

    def _end(self) -> None:
        if self._damaged:
            self._damaged = False
            logger.warning("%s: clean keyframe at picture %d (%d pictures were pixelated whole)", self.name,
                           self._index, self.frames - self._since)


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
