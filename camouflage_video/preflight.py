"""Every path a run will write, checked before any work starts.

A run that fails after an hour because its stats file sits in a missing folder has wasted the hour; one that
writes its stats over the input, or an image folder into the folder it reads, has destroyed what it was
given. So each command lists what it will write (outputs, stats, reports, track files) and what it reads,
and :func:`check_writes` refuses, in one line, anything that would overwrite an input or another output,
write into or over the input folder, replace a file the tool keeps (a dataset manifest), land on a folder,
or cannot be written at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from camouflage_video.errors import OutputError


@dataclass(frozen=True)
class Write:
    """One path a run will write.

    Attributes:
        role: What it is, for the message: ``"output"``, ``"--stats"``, ``"--report"`` ...
        path: Where.
        folder: The run writes a folder there (an image-folder output), not a file.

    Examples:
        >>> Write("--stats", Path("stats.json"))
        Write(role='--stats', path=PosixPath('stats.json'), folder=False)
    """

    role: str
    path: Path
    folder: bool = False

    def __post_init__(self) -> None:
        if not str(self.path):
            raise ValueError("Write.path must not be empty")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links and bind mounts too
    except OSError:
        return False


def check_writes(
    writes: Iterable[Write],
    *,
    reads: Iterable[str | os.PathLike[str]] = (),
    reserved: Mapping[str | os.PathLike[str], str] | None = None,
) -> None:
    """Refuse a set of paths to write before any work starts.

    Args:
        writes: What the run will write; stream URLs must be left out by the caller.
        reads: Inputs (files or folders): none may be overwritten, and no output may go into an input folder
            or contain one.
        reserved: Files the run keeps itself, with what they are (``{manifest: "the dataset manifest"}``).

    Raises:
        OutputError: One line naming the path and the reason.
    """
    inputs = [(Path(r), _real(Path(r))) for r in reads]
    kept = {_real(Path(p)): what for p, what in (reserved or {}).items()}
    seen: dict[Path, str] = {}
    for write in writes:
        path, real = write.path, _real(write.path)
        for given, source in inputs:
            if real == source or _same_file(path, given):
                raise OutputError(f"{path}: the {write.role} is the input; choose another name")
            if source.is_dir() and _inside(real, source) and write.folder:
                raise OutputError(f"{path}: the {write.role} folder is inside the input folder {given}; choose a "
                                  "folder outside it")
            if write.folder and _inside(source, real):
                raise OutputError(f"{path}: the {write.role} folder contains the input {given}; choose a folder "
                                  "outside it")
        if real in kept:
            raise OutputError(f"{path}: the {write.role} would overwrite {kept[real]}; choose another name")
        if real in seen:
            if seen[real] == write.role:
                raise OutputError(f"{path}: given twice as the {write.role}")
            raise OutputError(f"{path}: given as both the {seen[real]} and the {write.role}")
        seen[real] = write.role
        _check_writable(write)


def _check_writable(write: Write) -> None:
    path = write.path
    if write.folder:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path}: the {write.role} exists and is not a folder")
        existing = path
        while not existing.exists() and existing != existing.parent:  # the sink creates what is missing
            existing = existing.parent
    else:
        if path.is_dir():
            raise OutputError(f"{path}: the {write.role} is a folder; give a file name")
        existing = path.parent
        if not existing.is_dir():
            raise OutputError(f"{path}: {write.role} folder does not exist ({existing})")
    if not existing.is_dir():
        raise OutputError(f"{path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write in {existing} (permission denied)")
    if path.is_file() and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: the {write.role} exists and is read-only")
