"""One worker's job: anonymize one input file at a time with models loaded once, and describe the result.

The same :class:`FileWorker` runs in a local worker process and inside a Ray actor, so both engines
produce the same outputs and the same manifest records.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from camouflage_video.annotators.base import Annotator
from camouflage_video.api import anonymize
from camouflage_video.config import AnonymizeConfig, StageCache
from camouflage_video.dataset.manifest import config_hash, file_sha256, fsync_file, fsync_folder
from camouflage_video.errors import OutputError
from camouflage_video.frame import FrameContext
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.sinks.base import publish, temporary_path
from camouflage_video.sources.base import SourceInfo

logger = logging.getLogger(__name__)

TRACKS_SUFFIX = ".tracks.csv"
TRACKS_HEADER = "frame,time,track_id,x1,y1,x2,y2,score,held\n"


@dataclass(frozen=True)
class Task:
    """One input to anonymize; paths are absolute so any worker on a shared file system can run it.

    Attributes:
        relative: The input's path below the input folder (the manifest key).
        output_relative: The output's path below the output folder.
        kind: ``video`` or ``image``.
        input: Absolute input path.
        output: Absolute output path.
        tracks: Absolute path of the face-track export, ``None`` when not asked for.
        size: Input size when the run was planned (recorded, so a rerun can tell a changed file).
        mtime_ns: Input modification time when the run was planned.

    Examples:
        >>> Task("a.mp4", "a.mp4", "video", "/in/a.mp4", "/out/a.mp4").tracks is None
        True
    """

    relative: str
    output_relative: str
    kind: str
    input: str
    output: str
    tracks: str | None = None
    size: int = -1
    mtime_ns: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("video", "image"):
            raise ValueError(f"Task.kind must be 'video' or 'image', got {self.kind!r}")
        if not (os.path.isabs(self.input) and os.path.isabs(self.output)):
            raise ValueError("Task.input and Task.output must be absolute paths")


def _check_still_inside(task: Task) -> None:
    """Refuse an output whose folder no longer leads inside the output folder, or leads into the input folder.

    The run checked every folder when it planned (``walk.OutputTree``); a folder replaced by a link since
    (``rm -r out/day1; ln -s ../raw/day1 out/day1``) would have its outputs written over the inputs there,
    and a failure's clean-up would delete one.
    """
    reason = _moved_out(task)
    if reason is not None:
        raise OutputError(f"{task.output_relative}: {reason}")


def _moved_out(task: Task) -> str | None:
    roots = []
    for path, relative in ((task.output, task.output_relative), (task.input, task.relative)):
        depth = len(PurePosixPath(relative).parts)
        roots.append(Path(path).parents[depth - 1].resolve())
    output_root, input_root = roots
    folder = Path(task.output).parent.resolve()
    if not folder.is_relative_to(output_root):
        return f"its folder now leads out of the output folder (to {folder})"
    if folder.is_relative_to(input_root):
        return f"its folder now leads into the input folder (to {folder})"
    return None


class TrackRecorder(Annotator):
    """Write each frame's face boxes and track ids to a CSV file, streamed (constant memory).

    Only geometry is exported: frame index, time, track id, box, detector score and whether tracking
    held the box over a missed detection. No landmarks, crops or embeddings (no biometric data).
    The file is written under a hidden temporary name and published with the video.

    Examples:
        >>> recorder = TrackRecorder(Path("out/clip.mp4.tracks.csv"))  # doctest: +SKIP
        >>> def stages(info):  # doctest: +SKIP
        ...     annotators, anonymizer = cache(info)
        ...     return [*annotators, recorder], anonymizer
        >>> anonymize("clip.mp4", "out/clip.mp4", stages=stages)  # doctest: +SKIP
        >>> recorder.publish()  # doctest: +SKIP
    """

    name = "export-tracks"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary = temporary_path(path)
        self._file = open(self._temporary, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in publish/discard
        self._file.write(TRACKS_HEADER)
        self.rows = 0

    def annotate(self, ctx: FrameContext) -> None:
        faces = ctx.faces
        if faces is None or not len(faces):
            return
        frame = ctx.frame
        time_text = f"{float(frame.time):.6f}" if frame.time is not None else ""
        lines = []
        for (x1, y1, x2, y2), track_id, score, held in zip(
            faces.xyxy.tolist(), faces.track_ids.tolist(), faces.scores.tolist(), faces.held.tolist(), strict=True
        ):
            lines.append(
                f"{frame.index},{time_text},{track_id},{x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f},{score:.3f},{int(held)}\n"
            )
        self._file.write("".join(lines))
        self.rows += len(lines)

    def publish(self) -> None:
        self._file.close()
        publish(self._temporary, self.path)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._temporary.unlink(missing_ok=True)


class FileWorker:
    """Anonymizes files one after another with stages (models) built once.

    Args:
        config: The run's configuration; its hash goes into every record.
        export_tracks: Also write each input's face tracks beside its output.

    Examples:
        >>> worker = FileWorker(AnonymizeConfig(method="pixelate"))  # doctest: +SKIP
        >>> worker.process(Task("a.mp4", "a.mp4", "video", "/in/a.mp4", "/out/a.mp4"))["status"]  # doctest: +SKIP
        'done'
    """

    def __init__(self, config: AnonymizeConfig, export_tracks: bool = False) -> None:
        self.config = config
        self.export_tracks = export_tracks
        self.config_hash = config_hash(config)
        self.stages = StageCache(config)
        self.stages.load()

    def ready(self) -> bool:
        """True once the models are loaded (a Ray driver waits on it to surface load errors early)."""
        return True

    def process(self, task: Task, on_frames: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Anonymize one input; never raises for a bad input, the record says what went wrong.

        Args:
            task: What to do.
            on_frames: Called with the number of frames written so far, from the writer thread.

        Returns:
            The manifest record (``status`` is ``done`` or ``failed``).
        """
        started = time.perf_counter()
        record = new_record(task, self.config.method, self.config_hash)
        recorder: TrackRecorder | None = None
        try:
            record["sha256"] = file_sha256(task.input)
            output = Path(task.output)
            _check_still_inside(task)
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{output.parent}: cannot create folder ({exc.strerror or exc})") from exc
            _check_still_inside(task)
            if task.tracks:
                recorder = TrackRecorder(Path(task.tracks))

            def stages(info: SourceInfo) -> tuple[list[Annotator], Anonymizer]:
                annotators, anonymizer = self.stages(info)
                return ([*annotators, recorder] if recorder else annotators), anonymizer

            report = (lambda stats: on_frames(stats.frames_out)) if on_frames else None
            stats = anonymize(task.input, output, self.config, progress=False, stages=stages, on_frame=report)
            fsync_file(output)
            if recorder is not None:
                recorder.publish()
                fsync_file(recorder.path)
            fsync_folder(output.parent)
            record.update(
                status="done",
                frames=stats.frames_out,
                fallback_frames=stats.fallback_frames,
                corrupt_frames=stats.corrupt_frames,
                damaged_frames=stats.damaged_frames,
                faces=stats.faces_detected,
                tracks=stats.tracks,
                width=stats.input.get("width"),
                height=stats.input.get("height"),
                fps=stats.input.get("fps"),
                output_size=output.stat().st_size,
                tracks_file=_relative_tracks(task) if recorder else None,
            )
        except Exception as exc:  # noqa: BLE001 - per-file isolation: any failure becomes this file's record
            logger.debug("%s failed", task.input, exc_info=True)
            mark_failed(task, record, one_line(exc))
        finally:
            if recorder is not None:
                recorder.discard()
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return record


def new_record(task: Task, method: str, chash: str) -> dict[str, Any]:
    """A record with every field present, so manifests of all engines have one shape."""
    return {
        "input": task.relative,
        "kind": task.kind,
        "status": "failed",
        "output": task.output_relative,
        "method": method,
        "config_hash": chash,
        "sha256": None,
        "size": task.size,
        "mtime_ns": task.mtime_ns,
        "frames": 0,
        "fallback_frames": 0,
        "corrupt_frames": 0,
        "damaged_frames": 0,
        "faces": 0,
        "tracks": 0,
        "width": None,
        "height": None,
        "fps": None,
        "output_size": None,
        "tracks_file": None,
        "error": None,
        "seconds": 0.0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "finished": None,
    }


def mark_failed(task: Task, record: dict[str, Any], error: str) -> dict[str, Any]:
    """Make ``record`` a failure and remove the input's output.

    A failed input leaves no output: one from an earlier configuration would contradict the record.
    """
    record.update(status="failed", error=error)
    if _moved_out(task) is not None:
        return record  # through a folder swapped for a link: what is there is not this run's to remove
    Path(task.output).unlink(missing_ok=True)
    if task.tracks:
        Path(task.tracks).unlink(missing_ok=True)
    return record


def tracks_path(output: str) -> str:
    """Where an output's face tracks go: beside it, ``<output name>.tracks.csv``."""
    return output + TRACKS_SUFFIX


def _relative_tracks(task: Task) -> str:
    return tracks_path(task.output_relative)


def one_line(exc: BaseException) -> str:
    """An error as one line for the manifest (type name, then the first line of its message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
