"""What every sink provides, and the temporary-name dance that keeps half-written files out of sight."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np

from camouflage_video.errors import OutputError
from camouflage_video.frame import Frame


class Sink:
    """Base class. ``write`` takes the source frame (for its timestamp and key) and the anonymized pixels.

    ``close()`` finalizes what was written (the output appears under its final name), ``abort()``
    discards it. Using a sink as a context manager closes it on success and aborts it on an exception.
    """

    frames_written: int = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self, *, interrupted: bool = False) -> None:
        """Finalize the output. Idempotent.

        Args:
            interrupted: The run was stopped early (Ctrl-C); end companion streams (audio) with the last
                frame written instead of copying them to their end.
        """

    def abort(self) -> None:
        """Discard the output; nothing is left under the final name. Idempotent."""

    def describe(self) -> dict:
        return {}

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def temporary_path(final: Path) -> Path:
    """A fresh hidden file beside ``final`` with the same extension (so muxers guess the same format).

    Creating it also proves the folder is writable, so a bad output location fails before any work.
    """
    folder = final.parent
    if not folder.exists():
        raise OutputError(f"{folder}: output folder does not exist")
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder")
    for _ in range(100):
        candidate = folder / f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}"
        try:
            # os.open rather than mkstemp: the file gets the umask's permissions, like any output.
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write in {folder} ({exc.strerror or exc})") from exc
    raise OutputError(f"cannot create a temporary file in {folder}")


def publish(temporary: Path, final: Path) -> None:
    """Atomically move a finished temporary file to its final name."""
    try:
        os.replace(temporary, final)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{final}: cannot write ({exc.strerror or exc})") from exc
