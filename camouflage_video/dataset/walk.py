"""The input tree: which files are videos, images or something else, and where each one's output goes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from camouflage_video.dataset.manifest import MANIFEST_NAME
from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.sinks import output_suffix
from camouflage_video.sources.sniff import KINDS, VIDEO_EXTENSIONS, Sniffed, classify

__all__ = ["FOLDER_LINK", "KINDS", "VIDEO_EXTENSIONS", "Entry", "OutputTree", "check_roots", "folder_ids",
           "output_name", "walk"]

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


def check_roots(input_root: Path, output_root: Path) -> frozenset[tuple[int, int]]:
    """Refuse trees that overlap, by name, through links or through a bind mount (a folder of the input mounted
    elsewhere is the same folder on disk): a rerun would anonymize its own outputs, and an output could replace
    an input. Refuse an output folder inside another dataset run's: each run's clean-up and outputs would reach
    into the other's. Returns the input's :func:`folder_ids` (for :class:`OutputTree`)."""
    if not input_root.exists():
        raise InputNotFoundError(f"{input_root}: no such folder")
    if not input_root.is_dir():
        raise InputError(f"{input_root}: not a folder (use 'camouflage-video anonymize' for one file)")
    if output_root.exists() and not output_root.is_dir():
        raise ConfigError(f"{output_root}: exists and is not a folder")
    source, target, inputs = input_root.resolve(), output_root.resolve(), folder_ids(input_root)
    if source == target or source in target.parents or target in source.parents \
            or _reaches(target, inputs) or _reaches(source, folder_ids(output_root)):
        raise ConfigError(f"{output_root}: the output folder must lie outside the input folder and not contain it")
    for folder in target.parents:
        if (folder / MANIFEST_NAME).is_file():
            raise ConfigError(f"{output_root}: lies inside another dataset run's output folder ({folder}); "
                              "choose a folder outside it")
    return inputs


class OutputTree:
    """Where a dataset run may write and delete: below its output folder only, never in its input folder (by
    path, through a link or through a mount of any folder of it) nor in another dataset run's output folder.

    A path an earlier run's manifest names is checked as an input's output is: a manifest is a plain file
    anyone can edit, and a link in the output tree is a user's. Each folder is answered once per run.

    Examples:
        >>> OutputTree(Path("raw"), Path("anonymized")).refusal("../raw/a.jpg")  # doctest: +SKIP
        "'../raw/a.jpg' is not a path inside the output folder"
    """

    def __init__(self, input_root: Path, output_root: Path,
                 inputs: frozenset[tuple[int, int]] | None = None) -> None:
        self.output_root = output_root
        self.inputs = folder_ids(input_root) if inputs is None else inputs  # check_roots returns them
        self._folders: dict[tuple[str, ...], str | None] = {}

    def refusal(self, relative: object) -> str | None:
        """Why the output path ``relative`` (to the output folder) must not be written or deleted, or ``None``."""
        if not isinstance(relative, str) or not relative:
            return f"{relative!r} is not a file name"
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or "\x00" in relative:
            return f"{relative!r} is not a path inside the output folder"
        parts = path.parent.parts
        if parts not in self._folders:
            self._folders[parts] = self._folder_refusal(parts)
        reason = self._folders[parts]
        return None if reason is None else f"{relative}: {reason}"

    def _folder_refusal(self, parts: tuple[str, ...]) -> str | None:
        root = self.output_root.resolve()
        real = self.output_root.joinpath(*parts).resolve()
        if not real.is_relative_to(root):
            return f"its folder leads out of the output folder (to {real}) through a symbolic link"
        if _reaches(real, self.inputs):
            return "its folder is in the input folder (through a symbolic link or a mount)"
        for depth in range(1, len(parts) + 1):  # the folders between the output folder and the file
            folder = self.output_root.joinpath(*parts[:depth])
            if folder.resolve() == root:  # its outputs would take the names of the ones at the top
                return "its folder is the output folder itself, through a symbolic link"
            if (folder / MANIFEST_NAME).is_file():
                return "its folder is another dataset run's output folder"
        return None


def folder_ids(root: Path) -> frozenset[tuple[int, int]]:
    """The (device, inode) of every folder of ``root``'s tree, hidden ones included: what makes a folder the
    same on disk whatever path reaches it. Mounts inside it are entered, links to folders are not, and a folder
    reached twice (a mount of a folder above it) is entered once."""
    try:
        seen = {(st.st_dev, st.st_ino) for st in [root.stat()]}
    except OSError:
        return frozenset()
    for dirpath, dirnames, _ in os.walk(root):
        folder = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (folder / d).is_symlink() and _first_visit(folder / d, seen)]
    return frozenset(seen)


def _reaches(folder: Path, ids: frozenset[tuple[int, int]]) -> bool:
    """Whether ``folder`` or a folder above it is one of ``ids`` (see :func:`folder_ids`)."""
    for candidate in (folder, *folder.parents):
        try:
            st = candidate.stat()
        except OSError:
            continue  # not made yet: the folders created below an existing one are new
        if (st.st_dev, st.st_ino) in ids:
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
    seen = {(st.st_dev, st.st_ino) for st in [root.stat()]}
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        links = [d for d in dirnames if not d.startswith(".") and (folder / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links
                             and _first_visit(folder / d, seen))
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


def _first_visit(folder: Path, seen: set[tuple[int, int]]) -> bool:
    """Whether ``folder`` is met for the first time (a mount of a folder above it would loop the walk)."""
    try:
        st = folder.stat()
    except OSError:
        return True  # os.walk reports what it cannot list
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True
