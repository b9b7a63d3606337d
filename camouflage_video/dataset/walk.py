"""The input tree: which files are videos, images or something else, and where each one's output goes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.sinks import output_suffix
from camouflage_video.sources.sniff import KINDS, VIDEO_EXTENSIONS, Sniffed, classify

__all__ = ["FOLDER_LINK", "KINDS", "VIDEO_EXTENSIONS", "Entry", "check_roots", "output_name", "unsafe_output",
           "walk"]

#: The file every dataset output folder holds (``manifest.MANIFEST_NAME``; named here, below the manifest).
_MANIFEST = "camouflage_manifest.jsonl"

#: ``Entry.format`` of a symbolic link to a folder: listed, never followed, never copied.
FOLDER_LINK = "folder-link"

@dataclass(frozen=True)
class Entry:
    """One file of the input tree.

    Attributes:
        relative: Path below the input folder, with forward slashes (the manifest's key).
        kind: ``video``, ``image`` or ``other``, by content (see :func:`~camouflage_video.sources.sniff.classify`).
        size: Bytes.
        mtime_ns: Modification time; with ``size`` it tells a rerun whether the file may have changed.
        output: Path of its output below the output folder (see :func:`output_name`).
        format: What the content is (``jpeg``, ``mp4``, ``text``, ...; ``folder-link`` for a link to a folder).
        reason: Why it is of that kind, for the manifest.

    Examples:
        >>> Entry("trip/a.avi", "video", 1024, 0, "trip/a.mp4").output
        'trip/a.mp4'
    """

    relative: str
    kind: str
    size: int
    mtime_ns: int
    output: str
    format: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Entry.kind must be one of {KINDS}, got {self.kind!r}")
        if not self.relative or self.relative.startswith("/"):
            raise ValueError(f"Entry.relative must be a relative path, got {self.relative!r}")


def output_name(relative: str, kind: str, format: str = "") -> str:
    """The output path of an input: the same relative path, so existing labels keep pointing at it.

    Videos in containers we cannot write (avi, gif, raw .h264, ...) become ``.mp4``, as
    ``camouflage-video anonymize`` names them. Images whose extension the image writer does not know
    (``.jfif``, ``.heic``, ``.ppm``, none at all) get the usual one of their format: ``.jpg`` for JPEG and
    other lossy photo formats, else ``.png``.

    Examples:
        >>> output_name("old/cam.avi", "video")
        'old/cam.mp4'
        >>> output_name("scans/kit.jfif", "image", "jpeg")
        'scans/kit.jpg'
    """
    path = PurePosixPath(relative)
    if kind not in ("video", "image"):
        return relative
    suffix = output_suffix(path.suffix, kind, format)
    return relative if suffix == path.suffix else str(path.with_suffix(suffix))


def check_roots(input_root: Path, output_root: Path) -> None:
    """Refuse trees that overlap, by name, through links or through a bind mount (the same folder twice): a
    rerun would anonymize its own outputs, and an output could replace an input. Refuse an output folder
    inside another dataset run's: each run's clean-up and outputs would reach into the other's."""
    if not input_root.exists():
        raise InputNotFoundError(f"{input_root}: no such folder")
    if not input_root.is_dir():
        raise InputError(f"{input_root}: not a folder (use 'camouflage-video anonymize' for one file)")
    if output_root.exists() and not output_root.is_dir():
        raise ConfigError(f"{output_root}: exists and is not a folder")
    source, target = input_root.resolve(), output_root.resolve()
    if source == target or source in target.parents or target in source.parents \
            or _within(target, input_root) or _within(source, output_root):
        raise ConfigError(f"{output_root}: the output folder must lie outside the input folder and not contain it")
    for folder in target.parents:
        if (folder / _MANIFEST).is_file():
            raise ConfigError(f"{output_root}: lies inside another dataset run's output folder ({folder}); "
                              "choose a folder outside it")


def unsafe_output(input_root: Path, output_root: Path, relative: object,
                  folders: dict[str, str | None] | None = None) -> str | None:
    """Why an output path (``relative`` to ``output_root``: an input's, or one an earlier run's manifest names)
    must not be written or deleted; ``None`` when it may. ``folders``: a run's answers so far, by folder.

    It must be a relative path that stays in the output folder: no ``..``, and no folder on the way that is
    a link (or a bind mount) leading out of it, into the input folder, or into another dataset run's output
    folder. A manifest is a plain file anyone can edit; a link in the output tree is a user's.

    Examples:
        >>> unsafe_output(Path("raw"), Path("anonymized"), "../raw/a.jpg")
        "'../raw/a.jpg' is not a path inside the output folder"
    """
    if not isinstance(relative, str) or not relative:
        return f"{relative!r} is not a file name"
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or "\x00" in relative:
        return f"{relative!r} is not a path inside the output folder"
    folder = path.parent.as_posix()
    if folders is None or folder not in folders:
        reason = _unsafe_folder(input_root, output_root, path.parent.parts)
        if folders is not None:
            folders[folder] = reason
    else:
        reason = folders[folder]
    return None if reason is None else f"{relative}: {reason}"


def _unsafe_folder(input_root: Path, output_root: Path, parts: tuple[str, ...]) -> str | None:
    root = output_root.resolve()
    real = output_root.joinpath(*parts).resolve()
    if real != root and root not in real.parents:
        return f"its folder leads out of the output folder (to {real}) through a symbolic link"
    if _within(real, input_root):
        return "its folder is in the input folder (through a symbolic link or a mount)"
    for depth in range(1, len(parts) + 1):  # the folders between the output folder and the file
        if (output_root.joinpath(*parts[:depth]) / _MANIFEST).is_file():
            return "its folder is another dataset run's output folder"
    return None


def _within(folder: Path, other: Path) -> bool:
    """Whether ``folder`` or a folder above it is ``other`` itself (the same folder on disk: a bind mount or a
    link is seen through)."""
    try:
        mark = other.stat()
    except OSError:
        return False
    for candidate in (folder, *folder.parents):
        try:
            st = candidate.stat()
        except OSError:
            continue  # not made yet: the folders created below an existing one are new
        if (st.st_dev, st.st_ino) == (mark.st_dev, mark.st_ino):
            return True
    return False


def walk(root: Path) -> list[Entry]:
    """Every file below ``root`` in sorted relative-path order, classified by content; hidden files and
    folders are skipped.

    Symbolic links to files are followed. Links to folders are not (a link can loop, or lead out of the
    tree): each is listed as an ``other`` entry of format :data:`FOLDER_LINK`, so the run reports it. A
    file that cannot be stat'ed (a dangling link) is still listed, with size -1, so the run records why.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        links = [d for d in dirnames if not d.startswith(".") and (folder / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
        for name in links:
            relative = (folder / name).relative_to(root).as_posix()
            reason = f"a symbolic link to a folder ({os.readlink(folder / name)}), not followed"
            entries.append(Entry(relative, "other", -1, 0, relative, FOLDER_LINK, reason))
        for name in filenames:
            if name.startswith("."):
                continue
            path = folder / name
            relative = path.relative_to(root).as_posix()
            try:
                st = path.stat()
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime_ns = -1, 0
            found: Sniffed = classify(path)
            output = output_name(relative, found.kind, found.format)
            entries.append(Entry(relative, found.kind, size, mtime_ns, output, found.format, found.reason))
    return sorted(entries, key=lambda e: e.relative)
