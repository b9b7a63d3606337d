"""The input tree: which files are videos, images or something else, and where each one's output goes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.sinks.video import FORMATS
from camouflage_video.sources.images import IMAGE_EXTENSIONS

#: Extensions read as videos (anything FFmpeg demuxes; animated GIFs and raw elementary streams included).
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .gif .mpg .mpeg .ts .mts .m2ts .flv .wmv .3gp .ogv .mxf .y4m "
    ".h264 .264 .h265 .265 .hevc".split()
)

KINDS = ("video", "image", "other")


@dataclass(frozen=True)
class Entry:
    """One file of the input tree.

    Attributes:
        relative: Path below the input folder, with forward slashes (the manifest's key).
        kind: ``video``, ``image`` or ``other`` (from the extension; the content is checked when it is read).
        size: Bytes.
        mtime_ns: Modification time; with ``size`` it tells a rerun whether the file may have changed.
        output: Path of its output below the output folder (see :func:`output_name`).

    Examples:
        >>> Entry("trip/a.avi", "video", 1024, 0, "trip/a.mp4").output
        'trip/a.mp4'
    """

    relative: str
    kind: str
    size: int
    mtime_ns: int
    output: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Entry.kind must be one of {KINDS}, got {self.kind!r}")
        if not self.relative or self.relative.startswith("/"):
            raise ValueError(f"Entry.relative must be a relative path, got {self.relative!r}")


def classify(name: str) -> str:
    """``video``, ``image`` or ``other``, by extension."""
    ext = PurePosixPath(name).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "other"


def output_name(relative: str, kind: str) -> str:
    """The output path of an input: the same relative path, so existing labels keep pointing at it.

    Videos in containers we cannot write (avi, gif, raw .h264, ...) become ``.mp4``, as
    ``camouflage-video anonymize`` names them.
    """
    path = PurePosixPath(relative)
    if kind == "video" and path.suffix.lower() not in FORMATS:
        return str(path.with_suffix(".mp4"))
    return relative


def check_roots(input_root: Path, output_root: Path) -> None:
    """Refuse trees that overlap: a rerun would otherwise anonymize its own outputs."""
    if not input_root.exists():
        raise InputNotFoundError(f"{input_root}: no such folder")
    if not input_root.is_dir():
        raise InputError(f"{input_root}: not a folder (use 'camouflage-video anonymize' for one file)")
    if output_root.exists() and not output_root.is_dir():
        raise ConfigError(f"{output_root}: exists and is not a folder")
    source, target = input_root.resolve(), output_root.resolve()
    if source == target or source in target.parents or target in source.parents:
        raise ConfigError(f"{output_root}: the output folder must lie outside the input folder and not contain it")


def walk(root: Path) -> list[Entry]:
    """Every file below ``root`` in sorted relative-path order; hidden files and folders are skipped.

    Symbolic links to files are followed; links to folders are not (no cycles). A file that cannot be
    stat'ed (a dangling link) is still listed, with size -1, so the run records why it failed.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            kind = classify(name)
            try:
                st = path.stat()
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime_ns = -1, 0
            entries.append(Entry(relative, kind, size, mtime_ns, output_name(relative, kind)))
    return sorted(entries, key=lambda e: e.relative)
