"""The manifest: an append-only JSON Lines log in the output folder, one record per processed input.

Crash safety rests on three rules. Outputs appear under their final names only when complete (the sinks
write hidden temporary files and rename them). A record is appended only after its output is complete
and on disk, with a single write followed by fsync. A reader ignores a torn last line (a run killed while
appending), and the next run, holding the folder's lock, cuts it off before it appends anything.
So after ``kill -9`` at any moment, what the manifest calls done is done, and a rerun redoes only the
inputs that were in flight.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from camouflage_video.config import AnonymizeConfig, resolve_options
from camouflage_video.errors import OutputError
from camouflage_video.redact import redact_url

try:  # POSIX; on other systems two runs on one folder are not prevented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "camouflage_manifest.jsonl"
RUNS_NAME = "camouflage_runs.jsonl"
LOCK_NAME = ".camouflage_dataset.lock"
#: Names the dataset mode owns at the top of the output folder; no input may be written there.
RESERVED = frozenset({MANIFEST_NAME, RUNS_NAME, LOCK_NAME})

#: Record statuses: ``done`` and ``failed`` for media, ``listed`` and ``copied`` for other files.
STATUSES = ("done", "failed", "listed", "copied")


#: Settings that choose how a result is computed, not what it is: switching them redoes nothing.
RUNTIME_ONLY = ("detector_backend",)
#: Options that name reference photos of people.
PHOTO_OPTIONS = ("keep_person", "only_person")


def resolved_settings(config: AnonymizeConfig) -> dict[str, Any]:
    """The whole configuration as the run uses it, for ``camouflage_runs.jsonl``.

    Generative options are resolved (the ``--config`` TOML's contents, not its path; every default filled
    in; none for the classic methods, which ignore them), and credentials in any URL are redacted. The
    reference photos of ``keep_person``/``only_person`` are counted, not named: the file ships with the
    anonymized dataset, and a photo's file name often names the person.
    """
    settings = _redacted(resolve_options(config).to_dict())
    for name in PHOTO_OPTIONS:
        if settings.get(name):
            count = len(settings[name])
            settings[name] = f"{count} photo{'s' if count > 1 else ''}"
    return settings


def config_hash(config: AnonymizeConfig) -> str:
    """A short stable hash of everything in the configuration that decides the output.

    It covers the resolved options (see :func:`resolved_settings`): editing ``steps`` in the TOML file
    redoes the files, spelling the file's path another way does not.
    """
    settings = {k: v for k, v in resolved_settings(config).items() if k not in RUNTIME_ONLY}
    for name in PHOTO_OPTIONS:  # who is kept or removed is the photos' content, whatever their names
        if settings.get(name):
            settings[name] = [_content_digest(photo) for photo in getattr(config, name)]
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _content_digest(path: str) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return f"unreadable {Path(path).resolve()}"  # the run refuses it before any work anyway


def _redacted(value: Any) -> Any:
    """``value`` with credentials hidden in every string (model sources may be URLs with tokens)."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    return value


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content, read in chunks (memory stays flat on any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records in file order. A torn last line is ignored; a bad line elsewhere is skipped with a warning.

    Examples:
        >>> records = read_manifest("anonymized/camouflage_manifest.jsonl")  # doctest: +SKIP
        >>> latest = latest_records(records)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    # The text after the last newline is a record still being written, or one a crash cut short.
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        logger.debug("%s: ignoring an unfinished last line (%d bytes)", path, len(tail))
    records = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            logger.warning("%s: line %d is not valid JSON; skipped", path, number)
            continue
        if not isinstance(record, dict) or "input" not in record:
            continue
        if not isinstance(record["input"], str):
            logger.warning("%s: line %d does not name an input file; skipped", path, number)
            continue
        records.append(record)
    return records


def latest_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each input: the manifest's answer for that input."""
    return {record["input"]: record for record in records}


class Manifest:
    """The output folder's manifest, opened for appending by one run at a time.

    Opening takes an exclusive lock on the folder (released by the OS when the process dies, even on
    ``kill -9``), cuts off a torn last line, and loads the records.

    Args:
        root: The output folder (created if missing).

    Examples:
        >>> with Manifest("anonymized/") as manifest:  # doctest: +SKIP
        ...     manifest.latest.get("clips/a.mp4", {}).get("status")
        ...     manifest.append({"input": "clips/a.mp4", "status": "done", ...})
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self.records: list[dict[str, Any]] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self._lock_fd: int | None = None
        self._fd: int | None = None

    def open(self) -> Manifest:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.root}: cannot write here ({exc.strerror or exc})") from exc
        if fcntl is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.close()
                raise OutputError(f"{self.root}: another dataset run is writing to this folder") from None
        self._repair()
        self.records = read_manifest(self.path)
        self.latest = latest_records(self.records)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            fsync_folder(self.root)
        return self

    def _repair(self) -> None:
        """Cut off a torn last line, so the next record starts on a line of its own."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            # Find the last newline by reading backwards; a record line is a few hundred bytes.
            pos, keep = size, 0
            while pos > 0:
                step = min(4096, pos)
                pos -= step
                f.seek(pos)
                block = f.read(step)
                index = block.rfind(b"\n")
                if index >= 0:
                    keep = pos + index + 1
                    break
            logger.warning("%s: removed an unfinished last record (%d bytes) left by a crash", self.path, size - keep)
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """Add one record durably: one write of one line, then fsync."""
        if self._fd is None:
            raise OutputError(f"{self.path}: manifest is not open")
        if record.get("status") not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        view = memoryview(line)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:  # a torn line is cut off by the next run (see _repair)
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        self.records.append(record)
        self.latest[record["input"]] = record

    def log_run(self, entry: dict[str, Any]) -> None:
        """Append a line to the runs log (what configuration each config hash stands for)."""
        entry = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}
        try:
            with open(self.root / RUNS_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise OutputError(f"{self.root / RUNS_NAME}: cannot write ({exc.strerror or exc})") from exc

    def close(self) -> None:
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)  # closing the lock file releases the lock
                setattr(self, name, None)

    def __enter__(self) -> Manifest:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a finished file to disk, so a record never outlives its output on a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file) to disk; a no-op where folders cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_partials(root: Path) -> list[Path]:
    """Delete the hidden temporary files (``.name.XXXX.partial.ext``) that killed runs left behind.

    Call only while holding the folder's lock: a live run's temporaries look the same. Another dataset run's
    output folder inside this one (which this run never writes into) is left to that run.
    """
    removed = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not any(os.path.lexists(os.path.join(dirpath, d, own))
                                                      for own in (MANIFEST_NAME, LOCK_NAME))]
        for name in filenames:
            if name.startswith(".") and ".partial" in name:
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
