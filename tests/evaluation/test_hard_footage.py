"""Hard footage: real faces made small, dark, flat and compressed, anonymized with the defaults, then attacked."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from camouflage_video.evaluation import EvaluationConfig, Evaluator
from camouflage_video.evaluation.attack import tool_anonymizer
from camouflage_video.evaluation.hard_footage import DEGRADATIONS, build_suite, place_face
from camouflage_video.sources.images import read_image
from tests.evaluation.conftest import write_rgb

PHOTOS = [
    "fr_kit_harington_2.jpg", "fr_rose_leslie_2.jpg", "fr_alex_lacamoire_1.jpg", "skimage_astronaut.png",
    "deepface/img15.jpg", "deepface/img7.jpg", "deepface/img23.jpg", "deepface/img9.jpg",
]


@pytest.fixture(scope="module")
def suite(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 frames of 640x360: 8 people, faces 16-48 px, darkened with noise, flattened, or x264-compressed."""
    folder = tmp_path_factory.mktemp("hard")
    build_suite(media_dir, folder, sizes=(16, 24, 32, 48), degradations=("dark", "low_contrast", "x264", "dark_x264"),
                photos=PHOTOS, per_photo=4, seed=3)
    return folder


def anonymized(suite: Path, method: str | None) -> Path:
    out = suite.parent / f"{suite.name}_{method}"
    anonymize = tool_anonymizer(method) if method else (lambda image: image.copy())
    for path in sorted(suite.glob("*.png")):
        write_rgb(out / path.name, anonymize(read_image(path)))
    return out


@pytest.fixture(scope="module")
def hard_evaluator(recognizer):
    return Evaluator(EvaluationConfig(thumbnails=False), recognizer=recognizer)


@pytest.mark.slow
def test_the_suite_is_hard_yet_its_faces_can_be_recognized(suite, hard_evaluator):
    rows = list(csv.DictReader((suite / "identities.csv").open()))
    assert len(rows) == 32 and {int(r["face_height"]) for r in rows} == {16, 24, 32, 48}
    summary = hard_evaluator.run(suite, anonymized(suite, None)).summary()
    # An output that forgot to anonymize is caught on every face the evaluator finds, small ones included.
    assert summary["faces"] >= 16
    assert summary["reidentification_rate"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_default_obfuscation_leaves_no_face_reidentified_on_hard_footage(suite, hard_evaluator, method):
    result = hard_evaluator.run(suite, anonymized(suite, method))
    summary = result.summary()
    assert summary["faces"] >= 16
    assert summary["leaks"] == 0
    recoveries = [f.recovery for f in result.faces]
    # blur, the default, keeps a margin: no face brings back even a quarter of its identity
    assert max(recoveries) < (0.25 if method == "blur" else 0.5)
    assert summary["detected_rate"] <= 0.25  # and what is left is mostly no longer a face to a detector


def test_a_placed_face_has_the_height_asked_for(astronaut):
    rng = np.random.default_rng(0)
    frame, box = place_face(astronaut, np.array([180, 60, 270, 170]), 24, np.zeros((360, 640, 3), np.uint8),
                            (640, 360), rng)
    assert frame.shape == (360, 640, 3)
    assert box[3] - box[1] == 24 and 0 <= box[0] < box[2] <= 640


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_every_degradation_keeps_the_frame_and_changes_it_unless_clean(astronaut, name):
    out = DEGRADATIONS[name](astronaut, np.random.default_rng(0))
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert np.array_equal(out, astronaut) == (name == "clean")
    if name in ("dark", "dark_x264"):
        assert out.mean() < 0.5 * astronaut.mean()
    if name == "low_contrast":
        assert out.std() < 0.5 * astronaut.std()
