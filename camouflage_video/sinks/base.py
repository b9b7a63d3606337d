"""What every sink provides, and the temporary-name dance that keeps half-written files out of sight."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from pathlib import Path

import av
import cv2
import numpy as np

from camouflage_video import atomic
from camouflage_video.errors import OutputError
from camouflage_video.frame import Frame
from camouflage_video.sources.base import ColorTags


class Sink:
    """Base class. ``write`` takes the source frame (for its timestamp and key) and the anonymized pixels.

    ``close()`` finalizes what was written (the output appears under its final name), ``abort()``
    discards it. Using a sink as a context manager closes it on success and aborts it on an exception.
    """

    frames_written: int = 0
    #: Closing waits on a network peer (a restream): the runner finalizes local files first.
    remote: bool = False

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


#: FFmpeg colour matrices (AVColorSpace) swscale can encode with, mapped to its own SWS_CS_* codes.
_SWS_SPACES = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
#: Unspecified and the two BT.601 codes: what OpenCV's YUV conversion computes.
_BT601 = (2, 5, 6)


def tag_colors(codec_context, color: ColorTags) -> int:
    """Tag an encoder with the source's colour description; returns the matrix to encode with.

    Outputs are limited range ("tv"): OpenCV and swscale write that, whatever range the source used.
    """
    if color == ColorTags():
        return 2  # untagged in, untagged out: readers assume what they assumed for the input
    space = color.space if color.space in _SWS_SPACES else 2
    codec_context.colorspace = space
    codec_context.color_primaries = color.primaries
    codec_context.color_trc = color.transfer
    codec_context.color_range = 1
    return space


def encoder_frame(image: np.ndarray, pix_fmt: str, space: int = 2) -> av.VideoFrame:
    """An RGB picture as a frame in the encoder's pixel format, so the encoder does not convert it again.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        pix_fmt: The encoder's pixel format.
        space: Colour matrix to encode with, as returned by :func:`tag_colors`.

    For BT.601 yuv420p (most outputs) OpenCV's SIMD conversion replaces swscale: the same limited-range
    result within one grey level for about a sixth of the CPU at 720p, most of this tool's cost over a plain
    ``ffmpeg`` re-encode. Other matrices (BT.709 footage) and formats go through swscale.
    """
    height, width = image.shape[:2]
    if space in _BT601 and pix_fmt == "yuv420p" and not (height % 2 or width % 2):
        planes = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420)
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    return frame.reformat(format=pix_fmt, dst_colorspace=_SWS_SPACES.get(space, 5))


def temporary_path(final: Path, *, clean: bool = True, recording: bool = False) -> Path:
    """A fresh hidden file beside ``final`` with the same extension (so muxers guess the same format).

    Creating it also proves the folder is writable, so a bad output location fails before any work. With
    ``clean`` the temporaries dead runs left for ``final`` are removed first (not while one is being recovered).
    ``recording``: an anonymized recording written to survive a kill (``.recording`` instead of ``.partial``):
    what a dead run left of one is recovered (``sinks/segments.py``), never just removed; nothing else is
    ever published from a temporary name.
    """
    folder = final.parent
    if not folder.exists():
        raise OutputError(f"{final}: output folder does not exist ({folder})")
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder")
    if clean:
        remove_stale_temporaries(final)
    for _ in range(100):
        marker = "recording" if recording else "partial"
        candidate = folder / f".{temporary_stem(final)}.{os.getpid()}-{secrets.token_hex(4)}.{marker}{final.suffix}"
        try:
            # os.open rather than mkstemp: the file gets the umask's permissions, like any output.
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write in {folder} ({exc.strerror or exc})") from exc
    raise OutputError(f"cannot create a temporary file in {folder}")


#: A temporary name: ``.<stem>.<pid>-<hex>.partial<ext>`` (``.recording<ext>``: see ``temporary_path``); versions
#: before 0.2 wrote ``.<stem>.<hex>.partial<ext>``.
_TEMPORARY = re.compile(
    r"\.(?P<stem>.*)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.(?P<kind>partial|recording)(?P<ext>\.[^.]*)?\Z", re.DOTALL)
_OLD_TEMPORARY_AGE = 600.0  # seconds: an unnamed run's temporary this old is not being written any more


def temporary_stem(final: Path) -> str:
    """The stem a temporary of ``final`` carries: its own, shortened where the temporary's name would be too
    long for the file system (``atomic.fitting_stem``)."""
    return atomic.fitting_stem(final.stem, final.suffix)


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Delete the temporaries of ``final`` that a killed run (kill -9, power loss) left behind.

    Only those of processes that are gone: a run writing the same output right now keeps its file.
    """
    removed = []
    try:
        names = os.listdir(final.parent if str(final.parent) else ".")
    except OSError:
        return removed
    now = time.time()
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or match["stem"] != temporary_stem(final) or (match["ext"] or "") != final.suffix:
            continue
        if match["kind"] == "recording":
            continue  # anonymized minutes of a killed recording: recovered (sinks/segments.py), never just deleted
        path = final.parent / name
        try:
            if match["pid"] is None:
                if now - path.stat().st_mtime < _OLD_TEMPORARY_AGE:
                    continue
            elif writer_alive(int(match["pid"]), path):
                continue
            held = claim(path)
            if held is None:
                continue  # its writer holds it (from another process id namespace), or it is not a file
            try:
                path.unlink()
            finally:
                os.close(held)
            removed.append(path)
        except OSError:
            continue
    return removed


def claim(path: Path) -> int | None:
    """Take a temporary file for its writer or for its recovery: an open descriptor holding an exclusive lock
    on it (closing it lets go), or ``None`` where it must be left alone: another process holds it (its writer,
    whatever process id namespace or machine that is in, or another recovery), or it is not a regular file of
    its own (a link, a pipe: never followed, never opened for writing) or no longer under that name.

    Where the file system has no locks, the descriptor is returned unlocked (the writer's process id is then
    all that tells; see :func:`writer_alive`). Raises ``PermissionError`` where the file cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise
    except OSError:  # a link (ELOOP), a socket
        return None
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or not _lock(fd):
            raise _LeftAlone
        named = os.stat(path, follow_symlinks=False)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            raise _LeftAlone  # recovered and removed (or replaced) while this waited for it
    except (_LeftAlone, FileNotFoundError):
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class _LeftAlone(Exception):
    pass


def _lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (ENOLCK, EOPNOTSUPP)
        return True
    return True


def writer_alive(pid: int, path: Path) -> bool:
    """Whether the process that wrote ``path`` (its name carries the writer's id) may still be writing it: a
    process with that id exists, and it started before the file was last written.

    Process ids are handed out again after a reboot (and wrap around): without the second test, a killed run's
    temporary whose id now belongs to another process (a daemon started at boot, a later run of ours) would be
    taken for a file in progress and never recovered or removed.
    """
    if not process_alive(pid):
        return False
    started = _process_started(pid)
    if started is None:
        return True  # no way to tell (not Linux, or it ended just now): leave the file alone
    try:
        written = path.stat().st_mtime
    except OSError:
        return True
    return started <= written + _START_SLACK


#: Seconds a process's start time may lie after the file's last write and still be its writer: the boot time it
#: is counted from is kept in whole seconds.
_START_SLACK = 2.0


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux ``/proc``); ``None`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/stat", "rb") as file:
            boot = next(int(line.split()[1]) for line in file if line.startswith(b"btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): start time in ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def publish(temporary: Path, final: Path) -> None:
    """Atomically move a finished temporary file to its final name."""
    try:
        atomic.replace(temporary, final)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{final}: cannot write ({exc.strerror or exc})") from exc
