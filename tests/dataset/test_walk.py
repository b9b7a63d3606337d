"""Which files a dataset run reads, and where their outputs go."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import pytest

from camouflage_video.dataset.walk import FOLDER_LINK, check_roots, output_name, walk
from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.samples import make_sample_video


@pytest.mark.parametrize(
    ("relative", "kind", "format", "expected"),
    [
        ("day1/cam.mp4", "video", "mp4", "day1/cam.mp4"),  # labels that point at the file stay valid
        ("day1/cam.mkv", "video", "matroska", "day1/cam.mkv"),
        ("old/cam.avi", "video", "avi", "old/cam.mp4"),  # containers we do not write become mp4
        ("anim.gif", "video", "gif", "anim.mp4"),
        ("raw.h264", "video", "h264", "raw.mp4"),
        ("old/cam.3g2", "video", "mp4", "old/cam.mp4"),
        ("p/photo.webp", "image", "webp", "p/photo.webp"),
        ("p/photo.png", "image", "jpeg", "p/photo.png"),  # a JPEG named .png is written as the PNG it claims
        ("p/kit.jfif", "image", "jpeg", "p/kit.jpg"),  # extensions the image writer does not know
        ("p/kit.dat", "image", "jpeg", "p/kit.jpg"),
        ("p/kit", "image", "jpeg", "p/kit.jpg"),
        ("p/IMG_1.HEIC", "image", "heif", "p/IMG_1.jpg"),
        ("p/scan.ppm", "image", "pnm", "p/scan.png"),
        ("notes.txt", "other", "text", "notes.txt"),
    ],
)
def test_output_mirrors_the_input_path(relative: str, kind: str, format: str, expected: str) -> None:
    assert output_name(relative, kind, format) == expected


def test_walk_lists_every_file_sorted_and_skips_hidden_ones(tmp_path: Path) -> None:
    for name in ("b/z.mp4", "a.jpg", "b/notes.txt", ".hidden/x.mp4", "b/.DS_Store"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path / "missing.mp4", tmp_path / "dangling.mp4")
    entries = walk(tmp_path)
    assert [e.relative for e in entries] == ["a.jpg", "b/notes.txt", "b/z.mp4", "dangling.mp4"]
    # Unrecognised content named like media stays media (it fails when read, it is never copied).
    assert [e.kind for e in entries] == ["image", "other", "video", "video"]
    assert entries[0].size == 1
    assert entries[-1].size == -1  # listed, so the run records why it cannot be read


def test_walk_sorts_files_by_content_and_names_outputs_for_it(tmp_path: Path, astronaut) -> None:
    jpeg = cv2.imencode(".jpg", cv2.resize(astronaut, (64, 64)))[1].tobytes()
    for name in ("kit.jfif", "kit.dat", "noext"):
        (tmp_path / name).write_bytes(jpeg)
    cv2.imwrite(str(tmp_path / "scan.ppm"), cv2.resize(astronaut, (64, 64)))
    make_sample_video(tmp_path / "clip.mp4", seconds=0.2, fps=Fraction(10), size=(64, 48), audio=None)
    (tmp_path / "clip.mp4").rename(tmp_path / "clip.3g2")
    (tmp_path / "notes.txt").write_text("Lorem ipsum dolor sit amet.\n" * 100)
    entries = {e.relative: e for e in walk(tmp_path)}
    assert {name: (e.kind, e.output) for name, e in entries.items()} == {
        "clip.3g2": ("video", "clip.mp4"),
        "kit.dat": ("image", "kit.jpg"),
        "kit.jfif": ("image", "kit.jpg"),
        "noext": ("image", "noext.jpg"),
        "notes.txt": ("other", "notes.txt"),
        "scan.ppm": ("image", "scan.png"),
    }
    assert entries["notes.txt"].reason == "text"


def test_a_symlinked_folder_is_listed_not_followed(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "a.jpg").write_bytes(b"x")
    os.symlink(elsewhere, root / "linked")
    os.symlink(root, root / "sub" / "loop")  # following this one would never end
    entries = walk(root)
    assert [(e.relative, e.kind, e.format) for e in entries] == [
        ("linked", "other", FOLDER_LINK),
        ("sub/loop", "other", FOLDER_LINK),
    ]
    assert "not followed" in entries[0].reason and str(elsewhere) in entries[0].reason


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
