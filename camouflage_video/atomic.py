"""Files (and folders) that appear whole or not at all: write under a temporary name, fsync, rename.

Every file the tool writes goes through here or through a sink (which stages under ``temporary_path`` and
finishes with :func:`replace`): a reader, a monitor or a rerun after a crash sees the old file, no file, or
the whole new one, never half of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

#: The longest file name most file systems take, in bytes (ext4, XFS, btrfs, tmpfs; NTFS and APFS in UTF-16/8).
NAME_MAX = 255
#: What a temporary name adds to the name it is made from, at most: ``.`` ``.<pid>-<8 hex>.recording``.
_TEMPORARY_ADDS = len(f"..{'9' * 10}-{'f' * 8}.recording")


def fitting_stem(stem: str, rest: str = "") -> str:
    """``stem``, or where a temporary name made from it (and ``rest``, what follows it: an extension) would not
    fit in :data:`NAME_MAX` bytes, its beginning with a digest of the whole of it (``LLLL~3fa9c0e1b2d4``): a
    name that fits as a final name fits as a temporary too, and two long names stay apart.

    Examples:
        >>> fitting_stem("clip")
        'clip'
        >>> len(os.fsencode(fitting_stem("L" * 246, ".jpg"))) + len(".jpg") <= NAME_MAX - _TEMPORARY_ADDS
        True
    """
    # As the file system sees them: a name that is not UTF-8 (Latin-1 from an old archive) is bytes too.
    room, name = NAME_MAX - _TEMPORARY_ADDS - len(os.fsencode(rest)), os.fsencode(stem)
    if len(name) <= room:
        return stem
    digest = hashlib.sha256(name).hexdigest()[:12]
    return f"{os.fsdecode(name[: max(0, room - len(digest) - 1)])}~{digest}"


def temporary_name(final: str | os.PathLike[str], suffix: str = "") -> Path:
    """A hidden name beside ``final``, unique to this process and call (concurrent writers never share one)."""
    final = Path(final)
    name = fitting_stem(final.name, suffix)
    return final.with_name(f".{name}.{os.getpid()}-{secrets.token_hex(4)}.partial{suffix}")


def replace(temporary: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Move a finished ``temporary`` file or folder to ``final``: its data reaches the disk first, then the
    rename, then the folder entry (a power cut leaves the old file or the new one, not an empty one)."""
    temporary, final = Path(temporary), Path(final)
    if temporary.is_file():
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
    os.replace(temporary, final)
    _sync_folder(final.parent)


def _sync_folder(folder: Path) -> None:
    """Make a folder's new entries reach the disk (a rename is not durable until then)."""
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened and synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def place_new(temporary: str | os.PathLike[str], final: str | os.PathLike[str]) -> bool:
    """Move a finished ``temporary`` file to ``final`` only if no file is there; whether it was moved.

    Unlike a check followed by :func:`replace`, a file that appears at ``final`` in between (another process
    choosing the same free name) is never replaced: the name is taken with a hard link, which fails when it
    exists. On a file system without hard links the check and the rename are as close as they can be.
    """
    temporary, final = Path(temporary), Path(final)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    try:
        os.link(temporary, final)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (FAT, some network shares)
        if final.exists():
            return False
        os.replace(temporary, final)
    else:
        temporary.unlink()
    _sync_folder(final.parent)
    return True


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """A temporary path to write ``final`` under; renamed into place when the block ends, removed on error.

    ``suffix`` keeps an extension that a writer insists on (``np.savez`` adds ``.npz``). The block may make a
    file or a folder there; a folder replaces an older ``final`` folder whole.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "stats.json"
        >>> with atomic_path(target) as temporary:
        ...     _ = temporary.write_text("{}")
        >>> target.read_text()
        '{}'
    """
    final = Path(final)
    temporary = temporary_name(final, suffix)
    try:
        yield temporary
        if temporary.is_dir() and final.is_dir():
            shutil.rmtree(final)
        replace(temporary, final)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def write_text(final: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``final`` atomically; returns ``final``."""
    with atomic_path(final) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(final)
