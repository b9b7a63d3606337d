"""Still images and image folders (recursive, sorted), decoded with OpenCV."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.frame import Frame
from camouflage_video.sources.base import Source, SourceInfo
from camouflage_video.sources.video import check_input_file

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def read_image(path: Path) -> np.ndarray | None:
    """Read an image as upright RGB (EXIF orientation applied), or ``None`` if it cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)  # imdecode copes with non-ASCII paths, imread does not
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_images(root: Path) -> list[Path]:
    """Every image below ``root``, sorted by relative path, hidden folders skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


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
    ``corrupt_frames``; ``skipped`` lists them.

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
        first = None
        for path in self.files:
            first = read_image(path)
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
            image = read_image(path)
            if image is None:
                self.corrupt_frames += 1
                self.skipped.append(key)
                logger.warning("%s: skipped, not a readable image", path)
                continue
            yield Frame(image, index=index, key=key)
            index += 1
