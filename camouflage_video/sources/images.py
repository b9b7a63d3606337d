"""Still images and image folders (recursive, sorted), decoded with OpenCV."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.frame import Frame
from camouflage_video.sources.base import Source, SourceInfo, check_picture_size, picture_too_large
from camouflage_video.sources.sniff import classify
from camouflage_video.sources.video import check_input_file

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def read_image(path: Path) -> np.ndarray | None:
    """Read an image as upright RGB (EXIF orientation applied), or ``None`` if it cannot be decoded.

    OpenCV reads the common formats; FFmpeg the ones it lacks (TGA, PCX, ICO, XPM, ...), so an image
    recognised by its content is anonymized rather than failed wherever a decoder exists.
    """
    _check_declared_size(path)
    data = np.fromfile(str(path), dtype=np.uint8)  # imdecode copes with non-ASCII paths, imread does not
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return _read_with_ffmpeg(path) if data.size else None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_or_skip(path: Path) -> np.ndarray | None:
    """One image of a folder, or ``None`` (with a warning) where it cannot or must not be decoded."""
    try:
        image = read_image(path)
    except InputError as exc:
        logger.warning("%s; skipped", exc)
        return None
    if image is None:
        logger.warning("%s: skipped, not a readable image", path)
    return image


def _check_declared_size(path: Path) -> None:
    """The pixel limit, read from the header alone (Pillow opens lazily); formats Pillow lacks are checked by
    FFmpeg's reader below."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns from 89 million pixels; our own limit speaks instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as header:
                width, height = header.size
    except Image.DecompressionBombError as exc:  # beyond even Pillow's own limit (179 million pixels)
        raise picture_too_large(path, f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError):
        return  # not ours to judge here: the decoders say whether it can be read
    check_picture_size(path, width, height)


def _read_with_ffmpeg(path: Path) -> np.ndarray | None:
    """The first picture FFmpeg decodes from ``path``, as RGB, or ``None``."""
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            context = container.streams.video[0].codec_context
            check_picture_size(path, context.width, context.height)
            for frame in container.decode(container.streams.video[0]):
                return frame.to_ndarray(format="rgb24")
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - FFmpeg's and PyAV's errors on files they half-recognise: not readable
        return None
    return None


def list_images(root: Path) -> list[Path]:
    """Every image below ``root``, sorted by relative path, hidden folders skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def unread_media(root: Path, listed: list[Path]) -> list[str]:
    """Relative paths of the files below ``root`` that are images or videos by content but not in ``listed``."""
    chosen = set(listed)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and path not in chosen and classify(path).media:
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


class ImageSource(Source):
    """A single image as a one-frame source.

    Examples:
        >>> with ImageSource("photo.jpg") as src:  # doctest: +SKIP
        ...     frame = next(iter(src))
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        check_input_file(self.path)
        self.corrupt_frames = 0
        self._image = read_image(self.path)
        if self._image is None:
            raise InputError(f"{self.path}: not a readable image")
        h, w = self._image.shape[:2]
        self.info = SourceInfo(uri=str(self.path), kind="image", width=w, height=h, frame_count=1)

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(self._image, index=0, key=self.path.name)


class ImageFolderSource(Source):
    """Every image below a folder, in sorted relative-path order; each frame's ``key`` is that path.

    Images of different sizes are fine. Files that do not decode are skipped and counted in
    ``corrupt_frames``; ``skipped`` lists them. Images are the files named like the images this tool writes
    (``IMAGE_EXTENSIONS``); other files that are images or videos by content (a JPEG named ``.jfif``, a
    clip) are not read, and ``not_read`` lists them with a warning: the output folder would otherwise look
    complete. ``camouflage-video dataset`` anonymizes such trees whole.

    Examples:
        >>> with ImageFolderSource("photos/") as src:  # doctest: +SKIP
        ...     for frame in src:
        ...         print(frame.key, frame.size)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputNotFoundError(f"{self.path}: no such file or directory")
        self.files = list_images(self.path)
        if not self.files:
            raise InputError(f"{self.path}: folder contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.corrupt_frames = 0
        self.skipped: list[str] = []
        self.not_read = unread_media(self.path, self.files)
        if self.not_read:
            more = len(self.not_read) - 5
            shown = ", ".join(self.not_read[:5]) + (f" and {more} more" if more > 0 else "")
            logger.warning(
                "%s: %d image or video file(s) not anonymized, not named %s: %s "
                "(rename them, or use 'camouflage-video dataset')",
                self.path, len(self.not_read), "/".join(sorted(IMAGE_EXTENSIONS)), shown,
            )
        first = None
        for path in self.files:
            first = _read_or_skip(path)
            if first is not None:
                break
        if first is None:
            raise InputError(f"{self.path}: none of its {len(self.files)} images can be decoded")
        self.info = SourceInfo(
            uri=str(self.path),
            kind="folder",
            width=first.shape[1],
            height=first.shape[0],
            frame_count=len(self.files),
        )

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.files:
            key = path.relative_to(self.path).as_posix()
            image = _read_or_skip(path)
            if image is None:
                self.corrupt_frames += 1
                self.skipped.append(key)
                continue
            yield Frame(image, index=index, key=key)
            index += 1
