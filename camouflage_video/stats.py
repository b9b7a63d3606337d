"""Run statistics, as written by ``--stats``; stream URLs and messages in them are redacted."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

from camouflage_video import atomic
from camouflage_video.redact import redact_url


@dataclass
class RunStats:
    """Counters and timings of one run. ``to_dict()`` is the ``--stats`` JSON."""

    input: dict = field(default_factory=dict)
    outputs: list[dict] = field(default_factory=list)
    method: str = ""
    frames_in: int = 0
    frames_out: int = 0
    fallback_frames: int = 0
    corrupt_frames: int = 0
    damaged_frames: int = 0  # decoded from damaged data: pixelated whole (sources.base.DamageWatch)
    not_read: list[str] = field(default_factory=list)  # media in an input folder the run could not take
    faces_detected: int = 0
    faces_held: int = 0
    frames_with_faces: int = 0
    tracks: int = 0
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    model: dict = field(default_factory=dict)
    annotators: dict = field(default_factory=dict)
    live: dict = field(default_factory=dict)
    last_frame_time: float | None = None  # presentation time of the last frame written (live latency)
    started: float = field(default_factory=time.perf_counter)
    wall_seconds: float = 0.0

    def note_error(self, message: str, limit: int = 20) -> None:
        if len(self.errors) < limit:
            self.errors.append(message)

    def finish(self) -> None:
        self.wall_seconds = time.perf_counter() - self.started

    def to_dict(self) -> dict:
        """The ``--stats`` JSON; every string in it is redacted (URLs in ``input``, ``outputs`` and ``errors``)."""
        wall = self.wall_seconds or (time.perf_counter() - self.started)
        return _redacted({
            "input": self.input,
            "outputs": self.outputs,
            "method": self.method,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "fallback_frames": self.fallback_frames,
            "corrupt_frames": self.corrupt_frames,
            "damaged_frames": self.damaged_frames,
            "not_read": self.not_read,
            "faces_detected": self.faces_detected,
            "faces_held": self.faces_held,
            "frames_with_faces": self.frames_with_faces,
            "tracks": self.tracks,
            "interrupted": self.interrupted,
            "errors": self.errors,
            "seconds": {k: round(v, 4) for k, v in dict(self.seconds).items()},  # copy: live runs write mid-run
            "wall_seconds": round(wall, 4),
            "fps": round(self.frames_out / wall, 3) if wall > 0 else None,
            "model": self.model,
            "annotators": self.annotators,
            **({"live": self.live} if self.live else {}),
        })

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically (a monitor reading it never sees half a file)."""
        atomic.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _redacted(value: object) -> object:
    """``value`` with :func:`redact_url` applied to every string in it (dict keys included)."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {_redacted(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value
