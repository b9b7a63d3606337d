"""Recordings cut into segments of a fixed length (``door_20261202-014000.mp4``, ...), each playable alone.

A service records for months; one file would be unplayable until it is closed and lost whole if the
machine dies. So a long recording is a series of files, each finalized (under its final name) as soon as
the next one starts. A segment starts with a fresh encoder, so its first picture is a keyframe, and cuts fall
between two pictures: no picture is in two segments or in none, and the audio is cut at the same instant
(sample exact, from one shared track). Each segment's timestamps start at 0; its start on the run's clock is
in its ``comment`` tag (``starts 600.040000 s into the run``), so the cut can be checked: a segment starts
where the one before it ends.

Nothing already written is lost when the camera's process fails. A failure elsewhere in the run (the feed,
another output, ``on_error="fail"``) finalizes the segment being written when the sink was opened with
``salvage=True`` (every picture in it was anonymized and written whole; a segment whose own writing failed is
still discarded). A process that is killed (``kill -9``, a crash, the service killing one that stalled)
cannot finalize anything, so MP4 and MOV segments are written *fragmented*: one fragment per second, each
written whole once its second is encoded, so that the file on disk is a playable MP4 up to its last complete
fragment; Matroska and WebM segments are written a cluster a second. :func:`recover_stale_segments` (run by
the next sink of the same recording, and by the service after a camera's process ends) cuts a dead process's
MP4 after its last complete fragment, or copies the packets of its Matroska file that read back whole, checks
that the result plays and publishes it; whatever cannot be checked (a file with no complete fragment or
packet) is deleted, never published.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import stat
import time
from collections.abc import Collection
from pathlib import Path

import av
import numpy as np

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Frame
from camouflage_video.sinks.base import _TEMPORARY, Sink, claim, temporary_stem, writer_alive
from camouflage_video.sinks.salvage import salvage_recording
from camouflage_video.sinks.video import (
    EncoderOptions,
    VideoFileSink,
    container_format,
    recording_options,
)
from camouflage_video.sources.base import SourceInfo

#: Shortest segment accepted, in seconds.
MIN_SEGMENT = 1.0


logger = logging.getLogger(__name__)


def recover_stale_segments(
    base: Path, *, spare: Path | None = None, family: bool = True
) -> tuple[list[Path], list[Path]]:
    """Publish what a killed run (kill -9, a crash, power loss) left of ``base``'s segments; returns
    ``(recovered, removed)``. ``spare``: a name none of them may take (the file a run is about to write:
    a recovered recording published there would be replaced when that run finishes). ``family``: also the
    other names a service's recording writes (:func:`belongs_to_recording`); without it only ``base``'s own
    (a run of the command line, whose other names are files a user named).

    Only the temporaries of processes that are gone. A recording's (``.recording``, see ``temporary_path``)
    fragmented MP4/MOV temporary is cut after its last complete fragment (a Matroska/WebM one copied up to its
    last packet that reads back) and published under its segment's name once it is checked to play (its
    pictures were anonymized before they were encoded: a recording's writer never gets any other); anything
    else (a ``.partial`` temporary of another writer, a recording that does not play) is deleted: each
    segment has its own name, so the temporary-name check of a single file (``remove_stale_temporaries``)
    would never meet them again. One that cannot be read or published (permissions, I/O errors) is logged
    and left as it is.
    """
    report = Recovery()
    _recover(base, report, spare=spare, family=family)
    return report.recovered, report.removed


@dataclasses.dataclass
class Recovery:
    """What a recovery did: ``recovered`` (the names published), ``removed`` (temporaries that did not play
    or were not recordings), ``in_progress`` (recordings whose writer still holds them, with its process id)
    and ``failed`` (those that could not be read or published, with the reason; left as they are)."""

    recovered: list[Path] = dataclasses.field(default_factory=list)
    removed: list[Path] = dataclasses.field(default_factory=list)
    in_progress: list[tuple[Path, int]] = dataclasses.field(default_factory=list)
    failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)


def _recover(base: Path, report: Recovery, *, spare: Path | None, family: bool, numbered: bool = True,
             partials: bool = True, only: Collection[str] | None = None) -> None:
    folder = base.parent if str(base.parent) else Path(".")
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        report.failed.append((folder, exc.strerror or str(exc)))
        return
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or match["pid"] is None or (match["ext"] or "") != base.suffix or only and name not in only:
            continue
        stem = match["stem"]
        own = stem == temporary_stem(base)  # base's own temporary (its stem shortened where it is long)
        if not (own or family and belongs_to_recording(stem, base.stem, numbered=numbered)):
            continue
        recording, path = match["kind"] == "recording", folder / name
        if not recording and not partials:
            continue
        try:
            held = claim(path)  # its writer (in any process id namespace) or another recovery holds it: None
        except OSError as exc:
            _failed(report, path, exc)
            continue
        if held is None:
            if recording and _regular(path):
                report.in_progress.append((path, int(match["pid"])))
            continue
        try:
            if writer_alive(int(match["pid"]), path):
                if recording:
                    report.in_progress.append((path, int(match["pid"])))
                continue
            if not recording:  # not a recording's (a recovery's own copy, a sample): never published
                path.unlink()
                report.removed.append(path)
                continue
            if (published := _published_as(path, held, names)) is not None:
                # A recovery stopped between publishing and removing the temporary: it is that file.
                path.unlink()
                report.removed.append(path)
                logger.warning("%s: already published as %s", path.name, published)
                continue
            own_name = base if own else folder / f"{stem}{base.suffix}"  # the name its writer would have published
            final = salvage_recording(path, own_name, container_format(base), spare)
            if final is None:
                report.removed.append(path)
            else:
                logger.warning("%s: recovered what a stopped process was writing", final)
                report.recovered.append(final)
        except (OSError, ConfigError) as exc:
            _failed(report, path, exc)
        finally:
            os.close(held)


def _failed(report: Recovery, path: Path, exc: Exception) -> None:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    logger.warning("%s: could not be recovered (%s); left as it is", path, reason)
    report.failed.append((path, reason))


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _published_as(path: Path, held: int, names: list[str]) -> Path | None:
    """The published file that is this temporary (a hard link to it), if any."""
    own = os.fstat(held)
    if own.st_nlink < 2:
        return None
    for name in names:
        other = path.parent / name
        if other != path and not _TEMPORARY.match(name):
            try:
                st = os.lstat(other)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                return other
    return None


def recover_recordings(path: Path) -> Recovery:
    """What ``camouflage-video recover PATH`` does, without a run: publish what stopped processes left of the
    recording ``path`` (its own file and its segments), or of every recording in the folder ``path``.
    ``.partial`` temporaries are left to the next run to their names: only a recording's writer holds its
    file locked, so only a recording can be told in use from any process id namespace.

    Each is published as the next run to its name would publish it: a segment under its own name, the one
    file of a recording beside it (``rec-1.mp4``), since a rerun of the same command writes ``rec.mp4``
    again and would replace a recovery placed there. Never over any file.
    """
    check_recovery_path(path)
    recordings: dict[str, set[str] | None] = {}
    if path.is_dir():
        folder = path
        for temporary, match in _temporaries(path):
            recordings.setdefault(_recording_base(temporary, match), set()).add(temporary.name)
    else:
        folder, recordings = path.parent, {path.name: None}
    report = Recovery()
    for name, temporaries in sorted(recordings.items()):
        base = folder / name
        _recover(base, report, spare=base, family=True, numbered=False, partials=False, only=temporaries)
    return report


def check_recovery_path(path: Path) -> None:
    """Refuse (:class:`ConfigError`) what :func:`recover_recordings` cannot take: a folder that is not there
    or cannot be listed, a name that no recording has."""
    if path.is_dir():
        _temporaries(path)  # it can be listed
        return
    if not path.suffix and not path.exists():
        raise ConfigError(f"{path}: no such folder")
    if path.exists() or path.suffix:
        try:
            recoverable = recording_options(path) is not None
        except ConfigError:
            recoverable = False
        if not recoverable:
            raise ConfigError(f"{path}: not a recording's name; recordings are .mp4, .m4v, .mov, .mkv or .webm "
                              "files")
    if not path.parent.is_dir():
        raise ConfigError(f"{path.parent}: no such folder")
    _temporaries(path.parent)


def _temporaries(folder: Path) -> list[tuple[Path, re.Match]]:
    """The temporaries in ``folder`` that carry their writer's process id."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot list it ({exc.strerror or exc})") from exc
    return [(folder / n, m) for n in names if (m := _TEMPORARY.match(n)) and m["pid"] is not None]


def _recording_base(temporary: Path, match: re.Match) -> str:
    """The name of the recording a temporary belongs to: a segment's recording, or its own file's name.

    A segment is named ``<base>_<start>`` (:func:`segment_path`) and says when it starts in its ``comment``
    tag. A user may name a live run's recording like one (``cam_20261204-190000.mp4``): without the tag it is
    that file's recording, published beside its name (where a rerun of that command does not replace it)."""
    segment = re.fullmatch(r"(?P<base>.+)_\d{8}-\d{6}(-\d+)?", match["stem"], re.DOTALL)
    tagged = segment is not None and _SEGMENT_TAG.fullmatch(_comment(temporary)) is not None
    return f"{segment['base'] if tagged else match['stem']}{match['ext'] or ''}"


#: What a segment's ``comment`` tag says (see :class:`SegmentedVideoSink`).
_SEGMENT_TAG = re.compile(r"starts \d+\.\d+ s into the run")


def _comment(path: Path) -> str:
    """The ``comment`` tag of a recording's file (empty where it has none or cannot be read); never follows
    a link or waits on a pipe named like one."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return ""
        try:
            with av.open(file, metadata_errors="ignore") as container:
                return container.metadata.get("comment", "")
        except (av.FFmpegError, ValueError, OSError):
            return ""


def belongs_to_recording(stem: str, base: str, *, numbered: bool = True) -> bool:
    """Whether a file named ``stem`` belongs to the recording ``base``: a segment (``base_<start>``, as
    :func:`segment_path` names it, ``-<n>`` when taken) or the one file of a recording that is not cut
    (``base``, and with ``numbered`` ``base-<n>``, which a service's run writes when it finds the name taken).
    Another name that merely starts with ``base`` (``base_hall``) is another output's, which a recovery of
    ``base`` must leave to that output's next run; so is ``base-<n>`` where a user may have named it.

    Examples:
        >>> [belongs_to_recording(s, "door") for s in ("door", "door-2", "door_20261202-014000", "door_hall")]
        [True, True, True, False]
        >>> belongs_to_recording("door-2", "door", numbered=False)
        False
    """
    if stem == base:
        return True
    segment = rf"{re.escape(base)}_\d{{8}}-\d{{6}}(-\d+)?"
    return re.fullmatch(rf"{segment}|{re.escape(base)}-\d+" if numbered else segment, stem, re.DOTALL) is not None


def segment_path(base: Path, wall: float) -> Path:
    """``<stem>_YYYYmmdd-HHMMSS<ext>`` beside ``base``, for a segment starting at ``wall`` (local time)."""
    return base.with_name(f"{base.stem}_{time.strftime('%Y%m%d-%H%M%S', time.localtime(wall))}{base.suffix}")


class SegmentedVideoSink(Sink):
    """Write a recording as consecutive files of ``seconds`` each, cut at the first picture past the length.

    Args:
        path: The recording's name; segments are named after it with their start time.
        info: The source description.
        seconds: Length of a segment (of the run's time); ``None``: one file, never cut, named ``path`` or, when
            that name holds an earlier run's recording, ``<stem>-1``, ``<stem>-2``, ... (never replaced), with
            everything else of a segment (fragmented, salvaged, recovered).
        encoder: Video encoder settings.
        live_audio: The live source's audio track, carried into every segment.
        wall_origin: Wall-clock time (``time.time()``) of the run's time 0, for the names.
        salvage: ``abort()`` finalizes the segment being written instead of discarding it (a service's
            recording: a failed feed or output must not lose the anonymized minutes already written); of one
            whose own writing failed, what reads back and plays is kept, as after a kill
            (``salvage.salvage_recording``).

    Examples:
        >>> sink = SegmentedVideoSink("rec/door.mp4", src.info, seconds=600)  # doctest: +SKIP
        >>> sink.write(frame, image); sink.close()  # doctest: +SKIP
        >>> sink.segments  # doctest: +SKIP
        [PosixPath('rec/door_20261202-014000.mp4')]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        info: SourceInfo,
        *,
        seconds: float | None,
        encoder: EncoderOptions | None = None,
        live_audio: AudioTimeline | None = None,
        wall_origin: float | None = None,
        salvage: bool = False,
    ) -> None:
        if seconds is not None and seconds < MIN_SEGMENT:
            raise ConfigError(f"segments must be at least {MIN_SEGMENT:g} s long, got {seconds:g}")
        # No B-frames: a segment must end exactly where the next one starts (see EncoderOptions.b_frames).
        self.encoder = dataclasses.replace(encoder or EncoderOptions(), b_frames=False)
        self.single = seconds is None
        self.path, self.info, self.seconds = Path(path), info, math.inf if seconds is None else float(seconds)
        container_format(self.path)  # an extension we cannot write fails now
        if not self.path.parent.is_dir():
            raise ConfigError(f"{self.path}: output folder does not exist ({self.path.parent})")
        self.wall_origin = time.time() if wall_origin is None else wall_origin
        self.salvage = salvage
        recover_stale_segments(self.path)
        self._audio = live_audio.subscribe() if live_audio is not None else None
        if self._audio is not None:
            self._audio.shared = True  # every segment reads it in turn; closing one does not end it
        self._current: VideoFileSink | None = None
        self._start = 0.0  # run time of the current segment's first picture
        self.segments: list[Path] = []  # finished segments, in order
        self._closed = False
        self._broken = False  # the current segment's own writing failed: it is never finalized

    @property
    def frames_written(self) -> int:  # type: ignore[override]
        return self._written + (self._current.frames_written if self._current is not None else 0)

    _written = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        at = float(frame.time) if frame.time is not None else frame.index / float(self.info.fps or 25)
        if self._current is not None and at - self._start >= self.seconds:
            self._finish_current(end=at)
        try:
            if self._current is None:
                self._open(at)
            self._current.write(frame, image)  # type: ignore[union-attr]
        except BaseException:
            self._broken = True
            raise

    def _open(self, at: float) -> None:
        # A name taken (two starts within one second, an earlier run's file, a recovery's while this one is
        # written) gets -1, -2, ... when it is published (overwrite=False): finished segments are published, so
        # they are taken too.
        path = self.path if self.single else segment_path(self.path, self.wall_origin + at)
        self._current = VideoFileSink(
            path, self.info, encoder=self.encoder, audio_from=self._audio, start=at,
            metadata={"comment": f"starts {at:.6f} s into the run"},  # what _SEGMENT_TAG reads
            recording=True, salvage=self.salvage,
            overwrite=False,  # a file that took the name meanwhile (a recovery's) is never replaced
        )
        self._start = at

    def _finish_current(self, *, end: float | None, interrupted: bool = False) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        self._written += current.frames_written
        current.close(interrupted=interrupted, end=None if end is None else end - self._start)
        self.segments.append(current.path)

    def close(self, *, interrupted: bool = False) -> None:
        """Finalize the segment being written."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish_current(end=None, interrupted=interrupted)
        finally:
            if self._audio is not None:
                self._audio.close()

    def abort(self) -> None:
        """Discard the segment being written (finalize it with ``salvage``, or keep what of it plays if its own
        writing failed); finished segments stay (they are whole)."""
        if self._closed:
            return
        if self.salvage and not self._broken and self._current is not None:
            try:
                self.close(interrupted=True)
                return
            except Exception:  # noqa: BLE001 - it could not be finalized: only what of it plays was kept
                logger.warning("%s: the segment being written could not be finalized", self.path, exc_info=True)
                return
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            current.abort()  # with salvage, a segment whose writing failed keeps what of it plays
        if self._audio is not None:
            self._audio.close()

    def describe(self) -> dict:
        return {
            "uri": str(self.path),
            "kind": "segments",
            "seconds": self.seconds,
            "segments": [str(p) for p in self.segments] + ([str(self._current.path)] if self._current else []),
            "frames": self.frames_written,
        }
