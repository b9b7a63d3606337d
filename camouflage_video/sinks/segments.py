"""Recordings cut into segments of a fixed length (``door_20261202-014000.mp4``, ...), each playable alone.

A service records for months; one file would be unplayable until it is closed and lost whole if the
machine dies. So a long recording is a series of files, each finalized (under its final name) as soon as
the next one starts. A segment starts with a fresh encoder, so its first picture is a keyframe, and cuts fall
between two pictures: no picture is in two segments or in none, and the audio is cut at the same instant
(sample exact, from one shared track). Each segment's timestamps start at 0; its start on the run's clock is
in its ``comment`` tag (``starts 600.040000 s into the run``), so the cut can be checked: a segment starts
where the one before it ends.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Frame
from camouflage_video.sinks.base import _TEMPORARY, Sink, process_alive
from camouflage_video.sinks.video import EncoderOptions, VideoFileSink, container_format
from camouflage_video.sources.base import SourceInfo

#: Shortest segment accepted, in seconds.
MIN_SEGMENT = 1.0


def remove_stale_segments(base: Path) -> list[Path]:
    """Delete the temporaries of ``base``'s segments that a killed run (kill -9, power loss) left behind.

    Only those of processes that are gone; each segment has its own name, so the temporary-name check of a
    single file (``remove_stale_temporaries``) would never meet them again.
    """
    removed = []
    try:
        names = os.listdir(base.parent if str(base.parent) else ".")
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or not match["stem"].startswith(f"{base.stem}_") or (match["ext"] or "") != base.suffix:
            continue
        if match["pid"] is None or process_alive(int(match["pid"])):
            continue
        try:
            (base.parent / name).unlink()
            removed.append(base.parent / name)
        except OSError:
            continue
    return removed


def segment_path(base: Path, wall: float) -> Path:
    """``<stem>_YYYYmmdd-HHMMSS<ext>`` beside ``base``, for a segment starting at ``wall`` (local time)."""
    return base.with_name(f"{base.stem}_{time.strftime('%Y%m%d-%H%M%S', time.localtime(wall))}{base.suffix}")


class SegmentedVideoSink(Sink):
    """Write a recording as consecutive files of ``seconds`` each, cut at the first picture past the length.

    Args:
        path: The recording's name; segments are named after it with their start time.
        info: The source description.
        seconds: Length of a segment (of the run's time).
        encoder: Video encoder settings.
        live_audio: The live source's audio track, carried into every segment.
        wall_origin: Wall-clock time (``time.time()``) of the run's time 0, for the names.

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
        seconds: float,
        encoder: EncoderOptions | None = None,
        live_audio: AudioTimeline | None = None,
        wall_origin: float | None = None,
    ) -> None:
        if seconds < MIN_SEGMENT:
            raise ConfigError(f"segments must be at least {MIN_SEGMENT:g} s long, got {seconds:g}")
        self.path, self.info, self.seconds, self.encoder = Path(path), info, float(seconds), encoder
        container_format(self.path)  # an extension we cannot write fails now
        if not self.path.parent.is_dir():
            raise ConfigError(f"{self.path}: output folder does not exist ({self.path.parent})")
        self.wall_origin = time.time() if wall_origin is None else wall_origin
        remove_stale_segments(self.path)
        self._audio = live_audio.subscribe() if live_audio is not None else None
        if self._audio is not None:
            self._audio.shared = True  # every segment reads it in turn; closing one does not end it
        self._current: VideoFileSink | None = None
        self._start = 0.0  # run time of the current segment's first picture
        self.segments: list[Path] = []  # finished segments, in order
        self._closed = False

    @property
    def frames_written(self) -> int:  # type: ignore[override]
        return self._written + (self._current.frames_written if self._current is not None else 0)

    _written = 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        at = float(frame.time) if frame.time is not None else frame.index / float(self.info.fps or 25)
        if self._current is not None and at - self._start >= self.seconds:
            self._finish_current(end=at)
        if self._current is None:
            self._open(at)
        self._current.write(frame, image)  # type: ignore[union-attr]

    def _open(self, at: float) -> None:
        path = segment_path(self.path, self.wall_origin + at)
        n = 1
        while path.exists() or path in self.segments:  # two starts within one second
            path = path.with_name(f"{segment_path(self.path, self.wall_origin + at).stem}-{n}{self.path.suffix}")
            n += 1
        self._current = VideoFileSink(
            path, self.info, encoder=self.encoder, audio_from=self._audio, start=at,
            metadata={"comment": f"starts {at:.6f} s into the run"},
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
        """Discard the segment being written; finished segments stay (they are whole)."""
        if self._closed:
            return
        self._closed = True
        current, self._current = self._current, None
        if current is not None:
            current.abort()
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
