"""Still images and image folders; each file appears atomically under its final name."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

import cv2
import numpy as np

from camouflage_video.errors import OutputError
from camouflage_video.frame import Frame
from camouflage_video.sinks.base import Sink, publish, temporary_path, writer_alive

_QUALITY = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95]}


def write_image(path: Path, image: np.ndarray) -> None:
    """Write RGB pixels to ``path`` through a temporary file."""
    ext = path.suffix.lower()
    ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _QUALITY.get(ext, []))
    if not ok:
        raise OutputError(f"{path}: OpenCV cannot encode {ext} images")
    temporary = temporary_path(path)
    try:
        # A plain file write, flushed and closed here: a write that fails only when the buffer is flushed
        # (the last block on a nearly full disk) raises, where numpy's tofile() left a truncated file.
        with open(temporary, "wb") as file:
            file.write(data.tobytes())
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        raise
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
    """Mirror an image folder: each frame is written to ``root / frame.key``, all or nothing.

    Images are written into a hidden staging folder inside ``root`` and moved into place by ``close()``
    (also after Ctrl-C, with what was processed); ``abort()`` (a failed run with ``--on-error fail``)
    leaves ``root`` as it was.

    Examples:
        >>> sink = ImageFolderSink("photos_anonymized/")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{self.root}: exists and is not a folder")
        self._created = not self.root.exists()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            broken = next((p for p in (self.root, *self.root.parents) if p.is_symlink() and not p.exists()), None)
            if broken is not None:
                raise OutputError(f"{broken}: a symbolic link to {os.readlink(broken)}, which does not exist") from exc
            raise OutputError(f"{self.root}: cannot create folder ({exc.strerror or exc})") from exc
        _remove_stale_staging(self.root)
        self._staging = self.root / f"{_STAGING}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self._staging.mkdir()
        except OSError as exc:
            raise OutputError(f"{self.root}: cannot write in it ({exc.strerror or exc})") from exc
        self._keys: list[str] = []
        self._done = False
        self.frames_written = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if frame.key is None:
            raise OutputError("an image-folder output needs frames from an image source")
        self._check_target(frame.key)  # fail on the first image, not after the whole folder
        staged = self._staging / frame.key
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.root / frame.key}: cannot write ({exc.strerror or exc})") from exc
        write_image(staged, image)
        self._keys.append(frame.key)
        self.frames_written += 1

    def close(self, *, interrupted: bool = False) -> None:
        if self._done:
            return
        self._done = True
        try:
            for key in self._keys:  # every check first: all of the images appear, or none
                self._check_target(key)
            for key in self._keys:
                target = self.root / key
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from exc
                publish(self._staging / key, target)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)

    def _check_target(self, key: str) -> None:
        target = self.root / key
        if target.is_dir():
            raise OutputError(f"{target}: a folder is in the way of this image")
        for parent in target.relative_to(self.root).parents:
            if (self.root / parent).exists() and not (self.root / parent).is_dir():
                raise OutputError(f"{target}: {self.root / parent} is a file, not a folder")

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        shutil.rmtree(self._staging, ignore_errors=True)
        if self._created:
            with contextlib.suppress(OSError):
                self.root.rmdir()  # only if empty: the run created it and nothing else is there

    def describe(self) -> dict:
        return {"uri": str(self.root), "kind": "folder", "frames": self.frames_written}


_STAGING = ".camouflage-staging-"


def _remove_stale_staging(root: Path) -> None:
    """Staging folders of runs that were killed (kill -9) before they could move their images."""
    for entry in root.glob(f"{_STAGING}*"):
        pid = entry.name[len(_STAGING):].split("-", 1)[0]
        if entry.is_dir() and pid.isdigit() and not writer_alive(int(pid), entry):
            shutil.rmtree(entry, ignore_errors=True)
