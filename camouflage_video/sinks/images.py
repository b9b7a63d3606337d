"""Still images and image folders; each file appears atomically under its final name."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from camouflage_video.errors import OutputError
from camouflage_video.frame import Frame
from camouflage_video.sinks.base import Sink, publish, temporary_path

_QUALITY = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95]}


def write_image(path: Path, image: np.ndarray) -> None:
    """Write RGB pixels to ``path`` through a temporary file."""
    ext = path.suffix.lower()
    ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _QUALITY.get(ext, []))
    if not ok:
        raise OutputError(f"{path}: OpenCV cannot encode {ext} images")
    temporary = temporary_path(path)
    try:
        data.tofile(str(temporary))
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    publish(temporary, path)


class ImageFileSink(Sink):
    """One output image.

    Examples:
        >>> sink = ImageFileSink("photo_anonymized.jpg")  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        temporary_path(self.path).unlink()  # fail now if the folder is not writable
        self.frames_written = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        write_image(self.path, image)
        self.frames_written += 1

    def describe(self) -> dict:
        return {"uri": str(self.path), "kind": "image", "frames": self.frames_written}


class ImageFolderSink(Sink):
    """Mirror an image folder: each frame is written to ``root / frame.key``.

    Examples:
        >>> sink = ImageFolderSink("photos_anonymized/")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{self.root}: exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.root}: cannot create folder ({exc.strerror or exc})") from exc
        temporary_path(self.root / "probe").unlink()
        self.frames_written = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if frame.key is None:
            raise OutputError("an image-folder output needs frames from an image source")
        target = self.root / frame.key
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, image)
        self.frames_written += 1

    def describe(self) -> dict:
        return {"uri": str(self.root), "kind": "folder", "frames": self.frames_written}
