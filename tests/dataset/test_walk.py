"""Which files a dataset run reads, and where their outputs go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camouflage_video.dataset.walk import check_roots, classify, output_name, walk
from camouflage_video.errors import ConfigError, InputError, InputNotFoundError


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("clip.mp4", "video"),
        ("CLIP.MOV", "video"),
        ("anim.gif", "video"),
        ("raw.h264", "video"),
        ("photo.jpeg", "image"),
        ("scan.TIF", "image"),
        ("labels.csv", "other"),
        ("Makefile", "other"),
    ],
)
def test_classify_by_extension(name: str, kind: str) -> None:
    assert classify(name) == kind


@pytest.mark.parametrize(
    ("relative", "kind", "expected"),
    [
        ("day1/cam.mp4", "video", "day1/cam.mp4"),  # labels that point at the file stay valid
        ("day1/cam.mkv", "video", "day1/cam.mkv"),
        ("old/cam.avi", "video", "old/cam.mp4"),  # containers we do not write become mp4
        ("anim.gif", "video", "anim.mp4"),
        ("raw.h264", "video", "raw.mp4"),
        ("p/photo.webp", "image", "p/photo.webp"),
        ("notes.txt", "other", "notes.txt"),
    ],
)
def test_output_mirrors_the_input_path(relative: str, kind: str, expected: str) -> None:
    assert output_name(relative, kind) == expected


def test_walk_lists_every_file_sorted_and_skips_hidden_ones(tmp_path: Path) -> None:
    for name in ("b/z.mp4", "a.jpg", "b/notes.txt", ".hidden/x.mp4", "b/.DS_Store"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path / "missing.mp4", tmp_path / "dangling.mp4")
    entries = walk(tmp_path)
    assert [e.relative for e in entries] == ["a.jpg", "b/notes.txt", "b/z.mp4", "dangling.mp4"]
    assert [e.kind for e in entries] == ["image", "other", "video", "video"]
    assert entries[0].size == 1
    assert entries[-1].size == -1  # listed, so the run records why it cannot be read


def _dirs(tmp: Path) -> dict[str, Path]:
    (tmp / "in" / "sub").mkdir(parents=True)
    (tmp / "file.mp4").write_bytes(b"x")
    return {
        "in": tmp / "in",
        "sub": tmp / "in" / "sub",
        "tmp": tmp,
        "file": tmp / "file.mp4",
        "none": tmp / "nope",
    }


@pytest.mark.parametrize(
    ("source", "target", "error", "message"),
    [
        ("in", "in", ConfigError, "outside the input"),
        ("in", "sub", ConfigError, "outside the input"),  # a rerun would anonymize its own outputs
        ("sub", "in", ConfigError, "not contain it"),
        ("none", "tmp", InputNotFoundError, "no such folder"),
        ("file", "in", InputError, "not a folder"),
        ("in", "file", ConfigError, "not a folder"),
    ],
)
def test_overlapping_or_missing_folders_are_refused(
    tmp_path: Path, source: str, target: str, error: type, message: str
) -> None:
    dirs = _dirs(tmp_path)
    with pytest.raises(error, match=message):
        check_roots(dirs[source], dirs[target])
