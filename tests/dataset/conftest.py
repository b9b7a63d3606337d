"""A small dataset tree: real clips and photos from ../shared/media where present, generated ones always,
two corrupt files, non-media files and a hidden file; and helpers to read what a run left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import MEDIA, REPO

#: Options every dataset run in these tests uses: a small detection input keeps the runs quick.
FAST = ("--det-size", "320", "-q")

REAL = {
    "real/asl_thanks.mkv": "videos/intel_asl_thanks.mkv",
    "real/elon_smoke.gif": "videos/dlib_elon-musk-smoke.gif",
    "real/people/img25.jpg": "identity/deepface/img25.jpg",
    "real/people/tom_hanks.png": "identity/insightface_Tom_Hanks_54745.png",
    "real/people/kit_harington.jpg": "identity/fr_kit_harington_2.jpg",
    "real/groups/selfie.jpg": "group/deepface_selfie-many-people.jpg",
}
CORRUPT = ("clips/broken.mp4", "photos/broken.jpg")


def make_tree(root: Path) -> Path:
    """About 20 media files in nested folders; returns ``root``."""
    from camouflage_video.samples import astronaut, make_sample_video

    small = {"seconds": 0.5, "fps": Fraction(20), "size": (160, 96)}
    clips = root / "clips"
    for sub in ("day1", "day2"):
        (clips / sub).mkdir(parents=True)
    make_sample_video(clips / "day1" / "cam1.mp4", **small)
    make_sample_video(clips / "day1" / "cam2.mp4", audio=None, **small)
    make_sample_video(clips / "day2" / "cam1.mkv", **small)
    make_sample_video(clips / "day2" / "cam3.mov", audio="pcm_s16le", **small)
    make_sample_video(clips / "day2" / "cam4.webm", codec="libvpx-vp9", audio="libopus", **small)
    make_sample_video(clips / "legacy.avi", codec="mpeg4", audio=None, **small)
    make_sample_video(
        clips / "vfr.mp4",
        fps=Fraction(20),
        size=(160, 96),
        frame_durations=[100, 100, 300, 100, 200, 100, 100],
    )
    photos = root / "photos"
    (photos / "nested").mkdir(parents=True)
    face = astronaut()
    for name, size in (
        ("a.png", (128, 128)),
        ("b.jpg", (200, 150)),
        ("nested/c.webp", (96, 96)),
        ("nested/d.bmp", (120, 80)),
    ):
        image = cv2.resize(face, size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(photos / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    # Two corrupt files with media extensions: a video that is noise, a JPEG cut after its header.
    (clips / "broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    jpeg = (photos / "b.jpg").read_bytes()
    (photos / "broken.jpg").write_bytes(jpeg[:200])
    (root / "labels").mkdir()
    (root / "labels" / "boxes.csv").write_text("file,label\nclips/day1/cam1.mp4,person\n")
    (root / "README.txt").write_text("a test dataset\n")
    (root / ".DS_Store").write_bytes(b"\0")
    if MEDIA.is_dir():
        for relative, source in REAL.items():
            if (MEDIA / source).is_file():
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(MEDIA / source, root / relative)
    return root


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The input tree, built once; tests must not modify it (copy it first)."""
    return make_tree(tmp_path_factory.mktemp("dataset") / "raw")


def media_inputs(root: Path) -> list[str]:
    """Relative paths of the videos and images below ``root`` (hidden files excluded)."""
    from camouflage_video.dataset.walk import walk

    return [e.relative for e in walk(root) if e.kind != "other"]


def good_inputs(root: Path) -> list[str]:
    return [r for r in media_inputs(root) if r not in CORRUPT]


def manifest_lines(out: Path) -> list[dict]:
    """Every record, asserting each line is complete JSON (a consistent manifest)."""
    text = (out / "camouflage_manifest.jsonl").read_text()
    assert text.endswith("\n"), "the manifest ends in an unfinished line"
    return [json.loads(line) for line in text.splitlines()]


def latest(out: Path) -> dict[str, dict]:
    return {r["input"]: r for r in manifest_lines(out)}


def partial_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".partial" in p.name]


def cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def start_cli(*args: str) -> subprocess.Popen:
    """Start ``camouflage-video`` in its own process group (so a test can kill it with its workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "camouflage_video", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )
