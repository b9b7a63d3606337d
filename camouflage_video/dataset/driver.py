"""``camouflage-video dataset IN OUT``: plan what needs doing, hand it to an engine, record every result."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from camouflage_video import __version__, atomic
from camouflage_video.config import AnonymizeConfig, check_dependencies, resolve_options
from camouflage_video.dataset.engines import Interrupts, LocalEngine
from camouflage_video.dataset.manifest import (
    RESERVED,
    Manifest,
    config_hash,
    file_sha256,
    fsync_file,
    remove_partials,
    resolved_settings,
)
from camouflage_video.dataset.ray_engine import RayEngine
from camouflage_video.dataset.walk import FOLDER_LINK, Entry, OutputTree, check_roots, walk
from camouflage_video.dataset.worker import Task, new_record, tracks_path
from camouflage_video.errors import ConfigError, OutputError
from camouflage_video.interrupts import Finalized
from camouflage_video.redaction.stages import check_for_dataset
from camouflage_video.sinks.base import publish, temporary_path
from camouflage_video.sources.sniff import embedded_picture, unaccounted_audio

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")

#: Files Windows writes beside photos, holding a thumbnail of each: never copied.
THUMBNAIL_CACHES = frozenset({"thumbs.db", "ehthumbs.db", "ehthumbs_vista.db"})


@dataclass(frozen=True)
class DatasetOptions:
    """How a dataset run is carried out (what it produces is the :class:`AnonymizeConfig`'s business).

    Attributes:
        engine: ``local`` (worker processes on this machine) or ``ray`` (actors on a Ray cluster).
        workers: Worker processes or actors; ``None``: 1 locally, enough to fill the cluster with Ray.
        address: Ray cluster address (``auto``, ``ray://head:10001``); ``None`` starts a local Ray.
        gpus_per_worker: GPUs each Ray actor reserves.
        cpus_per_worker: CPUs each Ray actor reserves.
        export_tracks: Write ``<output>.tracks.csv`` (frame, time, track id, box) beside each output.
        copy_other: Copy files that are neither videos nor images by content (labels, READMEs) into the
            output tree; by default they are only listed in the manifest. Text that embeds a picture
            (LabelMe's ``imageData``, ``data:image`` URIs) is never copied.
        progress: Progress bars over files and frames (``None``: only on a terminal).

    Examples:
        >>> DatasetOptions(workers=2, export_tracks=True).engine
        'local'
    """

    engine: str = "local"
    workers: int | None = None
    address: str | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    export_tracks: bool = False
    copy_other: bool = False
    progress: bool | None = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker < 0:
            raise ConfigError("gpus-per-worker and cpus-per-worker must not be negative")
        if self.engine == "local" and (self.address is not None or self.gpus_per_worker):
            raise ConfigError("--address and --gpus-per-worker need --engine ray")


@dataclass
class DatasetSummary:
    """What a dataset run did; ``to_dict()`` is the ``--stats`` JSON.

    ``processed``, ``failed`` and the frame counts cover this run; ``skipped`` counts inputs an
    earlier run already finished with the same configuration. ``not_copied`` lists the other files that
    ``copy_other`` did not copy, with why; ``folder_links`` the symbolic links to folders, which are not
    followed (their files are not anonymized).
    """

    input: str
    output: str
    manifest: str
    config_hash: str
    engine: str
    workers: int = 0
    media: int = 0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    other: int = 0
    copied: int = 0
    frames: int = 0
    fallback_frames: int = 0
    partials_removed: int = 0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    not_copied: list[tuple[str, str]] = field(default_factory=list)
    folder_links: list[str] = field(default_factory=list)
    stale_copies_removed: int = 0
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.interrupted

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["failures"] = [{"input": i, "error": e} for i, e in self.failures]
        data["not_copied"] = [{"input": i, "reason": r} for i, r in self.not_copied]
        data["wall_seconds"] = round(self.wall_seconds, 3)
        return data

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically, as ``RunStats.write`` does."""
        atomic.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def run_dataset(
    input_root: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    config: AnonymizeConfig | None = None,
    options: DatasetOptions | None = None,
) -> DatasetSummary:
    """Anonymize every video and image below ``input_root`` into the same tree below ``output_root``.

    Reruns skip inputs finished with the same configuration and content, retry failed ones and redo
    everything whose configuration changed. A corrupt input is recorded as failed and the run goes on.

    Args:
        input_root: Folder to read (recursively; hidden files and folders are skipped).
        output_root: Folder to write; created if missing; holds ``camouflage_manifest.jsonl``.
        config: What every file gets (method, detection, encoder); the manifest records its hash.
        options: Engine, workers and extras.

    Returns:
        The summary; ``summary.failed`` counts inputs that failed in this run.

    Raises:
        CamouflageError: The folders overlap, the output is locked by another run, a model cannot load.

    Examples:
        >>> summary = run_dataset("raw/", "anonymized/", AnonymizeConfig(method="blur"),
        ...                       DatasetOptions(workers=2))  # doctest: +SKIP
        >>> summary.processed, summary.failed  # doctest: +SKIP
        (18, 2)
    """
    started = time.perf_counter()
    config = config or AnonymizeConfig()
    options = options or DatasetOptions()
    source, target = Path(input_root), Path(output_root)
    inputs = check_roots(source, target)
    config_file = config.generative.get("config")
    # Everything that can fail for every file fails here, before the output folder is touched: the TOML
    # file and the options (read once, so workers never see a different file), the method's dependencies, Ray.
    config = resolve_options(config)
    check_dependencies(config)
    check_for_dataset(config)  # reference photos of --keep-person / --only-person
    engine = _engine(config, options)
    chash = config_hash(config)
    with Manifest(target) as manifest:
        summary = DatasetSummary(str(source), str(target), str(manifest.path), chash, options.engine)
        summary.partials_removed = len(remove_partials(target))
        if summary.partials_removed:
            logger.warning(
                "%s: removed %d unfinished file(s) left by an interrupted run",
                target,
                summary.partials_removed,
            )
        entries = walk(source)
        # Where this run may write and delete (no link out of the output folder, no path from the manifest
        # that leaves it), answered once per folder.
        unsafe = OutputTree(source, target, inputs).refusal
        tasks, claimed = _plan_media(entries, manifest, config, chash, options, source, target, summary, unsafe)
        _handle_other(entries, manifest, options, source, target, claimed, summary, unsafe)
        if tasks:
            manifest.log_run(
                {
                    "config_hash": chash,
                    "config": resolved_settings(config),
                    "config_file": str(Path(config_file).resolve()) if config_file else None,
                    "engine": options.engine,
                    "workers": options.workers,
                    "files": len(tasks),
                    "version": __version__,
                }
            )
            try:
                _process(engine, tasks, manifest, options, summary)
            finally:
                # Workers that crashed or were aborted leave their temporary files; no worker runs now.
                remove_partials(target)
            summary.workers = engine.workers
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _plan_media(
    entries: list[Entry],
    manifest: Manifest,
    config: AnonymizeConfig,
    chash: str,
    options: DatasetOptions,
    source: Path,
    target: Path,
    summary: DatasetSummary,
    unsafe: Callable[[object], str | None],
) -> tuple[list[Task], dict[str, str]]:
    """Decide per video and image: skip (done), process, or fail at once (its output name is taken, or its
    folder leads out of the output folder)."""
    media = [e for e in entries if e.kind != "other"]
    summary.media = len(media)
    # Inputs whose output keeps their own name claim it first: "a.mp4" wins over "a.avi" -> "a.mp4".
    claimed: dict[str, str] = {}
    for entry in sorted(media, key=lambda e: e.output != e.relative):
        taken = entry.output in RESERVED or entry.output in claimed
        if not taken:
            claimed[entry.output] = entry.relative
    tasks = []
    for entry in media:
        task = Task(
            relative=entry.relative,
            output_relative=entry.output,
            kind=entry.kind,
            input=str((source / entry.relative).resolve()),
            output=str(target.resolve() / entry.output),
            tracks=str(target.resolve() / tracks_path(entry.output)) if options.export_tracks else None,
            size=entry.size,
            mtime_ns=entry.mtime_ns,
        )
        previous = manifest.latest.get(entry.relative)
        _remove_stale_copy(entry, previous, claimed, target, summary, unsafe)
        refusal = unsafe(entry.output)
        if refusal is not None or claimed.get(entry.output) != entry.relative:
            owner = claimed.get(entry.output)
            taken = f"output name {entry.output} is taken {f'by {owner}' if owner else 'by the dataset manifest'}"
            record = new_record(task, config.method, chash)
            record.update(status="failed", error=f"OutputError: {refusal or taken}")
            _record(manifest, record, summary)
        elif _is_done(entry, previous, chash, options, source, target):
            summary.skipped += 1
        else:
            stale = (previous or {}).get("tracks_file")
            if stale and not options.export_tracks:
                _remove_stale(target, stale, unsafe)  # it describes an output about to be replaced
            tasks.append(task)
    return tasks, claimed


def _is_done(
    entry: Entry,
    record: dict[str, Any] | None,
    chash: str,
    options: DatasetOptions,
    source: Path,
    target: Path,
) -> bool:
    """True when an earlier run finished this input with this configuration and its output is intact."""
    if record is None or record.get("status") != "done" or record.get("config_hash") != chash:
        return False
    if record.get("output") != entry.output or record.get("size") != entry.size:
        return False
    output = target / entry.output
    if not output.is_file() or output.stat().st_size != record.get("output_size"):
        return False
    if options.export_tracks and not (record.get("tracks_file") and (target / record["tracks_file"]).is_file()):
        return False
    if record.get("mtime_ns") != entry.mtime_ns:
        # Touched or copied without its timestamps: compare contents before redoing the work.
        try:
            return file_sha256(source / entry.relative) == record.get("sha256")
        except OSError:
            return False
    return True


def _handle_other(
    entries: list[Entry],
    manifest: Manifest,
    options: DatasetOptions,
    source: Path,
    target: Path,
    claimed: dict[str, str],
    summary: DatasetSummary,
    unsafe: Callable[[object], str | None],
) -> None:
    """List (or with ``copy_other`` copy) files that are neither videos nor images by content."""
    for entry in entries:
        if entry.kind != "other":
            continue
        summary.other += 1
        if entry.format == FOLDER_LINK:
            summary.folder_links.append(entry.relative)
            logger.warning("%s: %s; the files in it are not anonymized", entry.relative, entry.reason)
        refusal = (_refuse_copy(entry, source, claimed) or unsafe(entry.output)) if options.copy_other else None
        copy = options.copy_other and refusal is None
        if refusal is not None:
            summary.not_copied.append((entry.relative, refusal))
            if entry.format != FOLDER_LINK:
                logger.warning("%s: not copied: %s", entry.relative, refusal)
        status = "copied" if copy else "listed"
        previous = manifest.latest.get(entry.relative)
        if refusal is not None:
            _remove_stale_copy(entry, previous, claimed, target, summary, unsafe)
        if (
            previous is not None
            and previous.get("status") == status
            and previous.get("size") == entry.size
            and previous.get("mtime_ns") == entry.mtime_ns
            and previous.get("reason") == entry.reason
            and (not copy or (target / entry.output).is_file())
        ):
            continue
        record = _other_record(entry, status)
        if refusal is not None:
            record["error"] = f"not copied: {refusal}"
        if copy:
            try:
                _copy(source / entry.relative, target / entry.output)
                summary.copied += 1
            except OSError as exc:
                why = f"{exc.strerror or exc}"
                summary.not_copied.append((entry.relative, why))
                record.update(status="listed", output=None, error=f"not copied: {why}")
        manifest.append(record)


def _refuse_copy(entry: Entry, source: Path, claimed: dict[str, str]) -> str | None:
    """Why ``entry`` must not be copied, or ``None``: only what is provably no picture is copied."""
    if entry.format == FOLDER_LINK:
        return entry.reason
    if entry.output in RESERVED or entry.output in claimed:
        return f"output name {entry.output} is taken"
    if PurePosixPath(entry.relative).name.lower() in THUMBNAIL_CACHES:
        return "a Windows thumbnail cache: it holds small copies of the folder's photos"
    if entry.format == "text":
        try:
            picture = embedded_picture(source / entry.relative)
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if picture is not None:
            return f"the text embeds {picture}, which may be a picture of a face"
        return None
    if entry.format == "audio":
        try:
            extra = unaccounted_audio(source / entry.relative)
        except (OSError, ValueError) as exc:  # ValueError: mmap of a file emptied since it was sorted
            return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
        if extra is not None:
            return f"audio with more than sound in it ({extra}), which may be a picture of a face"
        return None
    if entry.format in COPYABLE_BINARY:
        return None
    # Archives, documents, arrays (a face dataset often ships as .npz or .h5) and unknown binaries (a raw
    # pixel dump) are not looked into, so nothing proves they hold no face: fail closed.
    return (f"{entry.format} data may hold pictures and is not looked into; copy it yourself if you know "
            "it holds none")


#: Binary formats --copy-other copies: nothing at all (sound is checked above).
COPYABLE_BINARY = frozenset({"empty"})


def _remove_stale_copy(
    entry: Entry, previous: dict[str, Any] | None, claimed: dict[str, str], target: Path, summary: DatasetSummary,
    unsafe: Callable[[object], str | None],
) -> None:
    """Delete the byte-for-byte copy an earlier run made of a file now known to hold pictures.

    Older versions sorted files by name: a JPEG named ``.jfif`` was copied as it was, faces included.
    """
    if previous is None or previous.get("status") != "copied" or not previous.get("output"):
        return
    output = previous["output"]
    if (refusal := unsafe(output)) is not None:
        logger.warning("%s: the manifest names a copy an earlier run made, %s; not removed", entry.relative, refusal)
        return
    if output in RESERVED or claimed.get(output, entry.relative) != entry.relative:
        return  # the name now belongs to another input's anonymized output
    path = target / output
    if path.is_file() or path.is_symlink():
        path.unlink()
        summary.stale_copies_removed += 1
        logger.warning("%s: removed %s, an unanonymized copy an earlier run made (%s)", entry.relative, output,
                       entry.reason or entry.kind)


def _remove_stale(target: Path, relative: object, unsafe: Callable[[object], str | None]) -> None:
    """Delete a file an earlier run wrote and its record names, if that name stays in the output folder."""
    if (refusal := unsafe(relative)) is not None:
        logger.warning("the manifest names an earlier run's file, %s; not removed", refusal)
        return
    (target / relative).unlink(missing_ok=True)


def _other_record(entry: Entry, status: str) -> dict[str, Any]:
    return {
        "input": entry.relative,
        "kind": "other",
        "status": status,
        "output": entry.output if status == "copied" else None,
        "method": None,
        "config_hash": None,
        "sha256": None,
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "reason": entry.reason,
        "error": None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _copy(path: Path, target: Path) -> None:
    """Copy a file so it appears under its final name only when complete."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create folder ({exc.strerror or exc})") from exc
    temporary = temporary_path(target)
    try:
        shutil.copy2(path, temporary)
        fsync_file(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    publish(temporary, target)


def _engine(config: AnonymizeConfig, options: DatasetOptions) -> LocalEngine | RayEngine:
    if options.engine == "ray":
        return RayEngine(
            config,
            workers=options.workers,
            address=options.address,
            gpus_per_worker=options.gpus_per_worker,
            cpus_per_worker=options.cpus_per_worker,
            export_tracks=options.export_tracks,
        )
    return LocalEngine(
        config,
        workers=options.workers or 1,
        export_tracks=options.export_tracks,
        log_level=logging.getLogger("camouflage_video").getEffectiveLevel(),
    )


def _process(
    engine: LocalEngine | RayEngine,
    tasks: list[Task],
    manifest: Manifest,
    options: DatasetOptions,
    summary: DatasetSummary,
) -> None:
    from tqdm import tqdm

    disable = None if options.progress is None else not options.progress
    files = tqdm(total=len(tasks), unit="file", desc="files", disable=disable, dynamic_ncols=True, position=0)
    frames = tqdm(unit="frame", desc="frames", disable=disable, dynamic_ncols=True, position=1)

    def on_result(record: dict[str, Any]) -> None:
        _record(manifest, record, summary)
        files.update(1)
        if record["status"] == "failed":
            files.set_postfix(failed=summary.failed)

    try:
        with Interrupts() as interrupts:
            try:
                engine.run(tasks, on_result, frames.update, interrupts)
            except KeyboardInterrupt:
                summary.interrupted = True
                raise Finalized from None  # the files finished before it are published and in the manifest
            finally:
                summary.interrupted = summary.interrupted or interrupts.stop_requested
    finally:
        frames.close()
        files.close()


def _record(manifest: Manifest, record: dict[str, Any], summary: DatasetSummary) -> None:
    manifest.append(record)
    if record["status"] == "done":
        summary.processed += 1
        summary.frames += record.get("frames") or 0
        summary.fallback_frames += record.get("fallback_frames") or 0
    elif record["status"] == "failed":
        summary.failed += 1
        summary.failures.append((record["input"], record.get("error") or ""))
        logger.warning("%s: failed: %s", record["input"], record.get("error"))
