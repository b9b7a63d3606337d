"""The examples are documentation: they must keep running."""

from __future__ import annotations

import subprocess
import sys

import cv2

from tests.conftest import REPO, read_frames


def run_example(name, *args):
    return subprocess.run([sys.executable, str(REPO / "examples" / name), *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO)}, timeout=300)


def test_anonymize_file(sample_clip, tmp_path):
    result = run_example("anonymize_file.py", str(sample_clip), str(tmp_path / "out.mp4"))
    assert result.returncode == 0, result.stderr
    assert "50 frames" in result.stdout and len(read_frames(tmp_path / "out.mp4")[0]) == 50


def test_anonymize_folder(astronaut, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "in" / "sub" / "a.png"), astronaut[..., ::-1])
    result = run_example("anonymize_folder.py", str(tmp_path / "in"), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "sub" / "a.png").is_file() and "1 faces" in result.stdout


def test_custom_obfuscation(sample_clip, tmp_path):
    result = run_example("custom_obfuscation.py", str(sample_clip), str(tmp_path / "flat.mp4"))
    assert result.returncode == 0, result.stderr
    before, _, _ = read_frames(sample_clip)
    after, _, _ = read_frames(tmp_path / "flat.mp4")
    from camouflage_video.annotators import CenterFaceDetector

    x1, y1, x2, y2 = CenterFaceDetector(thresh=0.5).detect(before[0]).xyxy[0].astype(int)
    face = (slice(y1 + (y2 - y1) // 4, y2 - (y2 - y1) // 4), slice(x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4))
    spread = lambda image: image[face].reshape(-1, 3).astype(float).std(axis=0).max()  # noqa: E731
    assert spread(after[0]) < 0.25 * spread(before[0])  # one flat colour where the face was
