"""The HTML report: self-contained, escaped, and rendered by a real browser (Debian's headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.evaluation import EvaluationConfig, Evaluator, render_report, write_json, write_report
from tests.evaluation.conftest import write_rgb

FIGURES = ("fig-distance-histogram", "fig-track-timelines", "fig-warping", "fig-stability")


@pytest.fixture(scope="module")
def leaking_video_report(clip_copy_result, tmp_path_factory) -> Path:
    """The report of a video 'anonymized' by copying it: every figure and the leak audit have content."""
    result = clip_copy_result
    folder = tmp_path_factory.mktemp("report")
    write_json(result, folder / "metrics.json")
    return write_report(result, folder / "report.html")


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--mute-audio",
            "--no-first-run",
            "--disable-extensions",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_report_renders_in_headless_chromium(leaking_video_report, tmp_path):
    shot = tmp_path / "shot.png"
    chromium("--window-size=1100,2600", f"--screenshot={shot}", leaking_video_report.as_uri())
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2600, 1100)
    # Not blank: text, plots and thumbnails give a page far from one flat colour.
    assert image.std() > 20
    background = np.all(np.abs(image.astype(int) - image[5, 5].astype(int)) < 8, axis=-1)
    assert background.mean() < 0.85
    # The red leak verdict is drawn (#fde2e1 banner) near the top.
    banner = np.all(np.abs(image[:400].astype(int) - [0xE1, 0xE2, 0xFD]) < 6, axis=-1)
    assert banner.sum() > 2000


def test_report_dom_has_every_figure_and_the_leak_thumbnails(leaking_video_report):
    dom = chromium("--dump-dom", leaking_video_report.as_uri()).stdout
    for figure in FIGURES:
        match = re.search(rf'<figure class="plot" id="{figure}">(.*?)</figure>', dom, re.S)
        assert match, f"{figure} missing from the rendered DOM"
        assert "<svg" in match.group(1) and ("<polyline" in match.group(1) or 'class="bar"' in match.group(1))
    leak_cases = re.search(r'<div class="cases" id="leak-cases">(.*?)</section>', dom, re.S).group(1)
    assert leak_cases.count('src="data:image/jpeg;base64,') == 2  # one track: original and anonymized face
    assert 'id="verdict"' in dom and "LEAK" in dom


def test_report_is_self_contained(leaking_video_report):
    text = leaking_video_report.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<script" not in text and "url(" not in text
    assert text.count("<img ") >= 2


def test_no_thumbnails_leaves_no_face_pixels_in_the_report(recognizer, astronaut_pair, tmp_path):
    config = EvaluationConfig(thumbnails=False)
    result = Evaluator(config, recognizer=recognizer).run(astronaut_pair["original"], astronaut_pair["copy"])
    html = render_report(result)
    assert result.leaks and "<img" not in html and "base64" not in html


def test_file_names_are_escaped(recognizer, astronaut, tmp_path):
    name = 'a<script>alert("x")</script>.png'
    write_rgb(tmp_path / "raw" / name, astronaut)
    write_rgb(tmp_path / "anon" / name, astronaut)
    result = Evaluator(EvaluationConfig(), recognizer=recognizer).run(tmp_path / "raw", tmp_path / "anon")
    html = render_report(result)
    assert "<script>" not in html and "a&lt;script&gt;" in html


def test_a_pair_without_faces_reports_nothing_to_judge(recognizer, tmp_path):
    grey = np.full((120, 160, 3), 128, np.uint8)
    result = Evaluator(EvaluationConfig(), recognizer=recognizer).run(
        write_rgb(tmp_path / "a.png", grey), write_rgb(tmp_path / "b.png", grey)
    )
    assert result.verdict() == "no-faces" and result.summary()["reidentification_rate"] is None
    html = render_report(result)
    assert "NO FACES" in html and "<figure" not in html
    write_json(result, tmp_path / "m.json")  # nulls, no NaN: strict JSON
