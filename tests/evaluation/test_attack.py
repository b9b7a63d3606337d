"""The attacker who owns the tool: candidates anonymized the same way, anonymized probes searched among them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.errors import ConfigError, InputError
from camouflage_video.evaluation import EvaluationConfig, Evaluator
from camouflage_video.evaluation.attack import identity_from_name, tool_anonymizer
from camouflage_video.sources.images import read_image
from tests.conftest import run_cli
from tests.evaluation.conftest import write_rgb

# Probe photo -> another photo of the same person (deepface protocol and face_recognition's examples).
PEOPLE = {
    "kit_harington": ("identity/fr_kit_harington_2.jpg", "identity/fr_kit_harington_1.jpg"),
    "rose_leslie": ("identity/fr_rose_leslie_2.jpg", "identity/fr_rose_leslie_1.jpg"),
    "alex_lacamoire": ("identity/fr_alex_lacamoire_2.jpg", "identity/fr_alex_lacamoire_1.jpg"),
    "person_a": ("identity/deepface/img2.jpg", "identity/deepface/img1.jpg"),
    "person_b": ("identity/deepface/img14.jpg", "identity/deepface/img13.jpg"),
    "person_c": ("identity/deepface/img19.jpg", "identity/deepface/img18.jpg"),
    "person_d": ("identity/deepface/img21.jpg", "identity/deepface/img20.jpg"),
    "person_e": ("identity/deepface/img9.jpg", "identity/deepface/img8.jpg"),
}
DISTRACTORS = ("identity/skimage_astronaut.png", "identity/fnp_kate_siegel_1.jpg", "identity/deepface/img22.jpg")


def shrink(image: np.ndarray, long_side: int = 640) -> np.ndarray:
    scale = long_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


@pytest.fixture(scope="module")
def people(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Probe photos (with identities.csv) and a candidate gallery named by file (``<identity>_<n>.png``)."""
    root = tmp_path_factory.mktemp("people")
    probes, gallery = root / "probes", root / "gallery"
    rows = []
    for identity, (probe, candidate) in PEOPLE.items():
        write_rgb(probes / f"{identity}.png", shrink(read_image(media_dir / probe)))
        write_rgb(gallery / f"{identity}_1.png", shrink(read_image(media_dir / candidate)))
        rows.append({"file": f"{identity}.png", "identity": identity})
    for i, distractor in enumerate(DISTRACTORS):
        write_rgb(gallery / f"other{i}_1.png", shrink(read_image(media_dir / distractor)))
    with (probes / "identities.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["file", "identity"])
        writer.writeheader()
        writer.writerows(rows)
    return {"probes": probes, "gallery": gallery, "root": root}


def anonymize_folder(source: Path, target: Path, method: str) -> Path:
    anonymize = tool_anonymizer(method)
    for path in sorted(source.glob("*.png")):
        write_rgb(target / path.name, anonymize(read_image(path)))
    return target


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("kit_harington_2.jpg", "kit_harington"),
        ("people/rose-leslie-10.png", "rose-leslie"),
        ("astronaut.png", "astronaut"),
        ("img_2024.jpg", "img"),
        ("_3.jpg", "_3"),
    ],
)
def test_identity_comes_from_the_file_name_without_its_number(name, identity):
    assert identity_from_name(name) == identity


@pytest.mark.slow
def test_an_output_that_keeps_faces_is_identified_far_above_chance(recognizer, people):
    config = EvaluationConfig(attack_gallery=str(people["gallery"]), attack_anonymized=str(people["gallery"]))
    result = Evaluator(config, recognizer=recognizer).run(people["probes"], people["probes"])
    attack = result.summary()["attack"]
    assert attack["identities"] == len(PEOPLE) + len(DISTRACTORS)
    assert attack["chance"] == pytest.approx(1 / attack["identities"], abs=1e-4)
    assert attack["probes"] == len(PEOPLE)  # every labelled probe has a candidate of its own identity
    assert attack["rank1_rate"] >= 0.75  # the clear recognizer finds most people among 11
    assert attack["solid_rank1_rate"] < attack["rank1_rate"]
    assert attack["verdict"] == "above-floor"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["solid", "blur"])
def test_the_tool_anonymizing_candidates_the_same_way_leaves_the_attacker_at_the_floor(recognizer, people, method):
    anonymized = anonymize_folder(people["probes"], people["root"] / f"probes_{method}", method)
    shutil.copy(people["probes"] / "identities.csv", anonymized / "identities.csv")
    config = EvaluationConfig(attack_gallery=str(people["gallery"]), attack_method=method,
                              identities=str(people["probes"] / "identities.csv"))
    result = Evaluator(config, recognizer=recognizer).run(people["probes"], anonymized)
    attack = result.attack
    assert attack["method"] == method and attack["probes"] == len(PEOPLE)
    assert attack["clear_rank1_rate"] >= 0.75  # the same probes unanonymized are found: the attack works
    assert attack["rank1_rate"] <= max(attack["chance"], attack["solid_rank1_rate"]) + 1 / len(PEOPLE)
    assert attack["verdict"] == "at-floor"


@pytest.mark.slow
def test_a_probes_own_source_photo_is_left_out_of_its_search(recognizer, people, tmp_path):
    # The probe is the candidate photo itself: found at once, unless its source is named.
    probes = tmp_path / "probes"
    shutil.copytree(people["gallery"], probes)
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "identity", "source"])
        for path in sorted(probes.glob("*.png")):
            writer.writerow([path.name, identity_from_name(path.name), path.name])
    config = EvaluationConfig(attack_gallery=str(people["gallery"]), attack_anonymized=str(people["gallery"]),
                              identities=str(labels))
    attack = Evaluator(config, recognizer=recognizer).run(probes, probes).attack
    # Every person has a single candidate photo: without it nobody is left to find, and nothing is counted.
    assert attack["probes"] == 0 and attack["probes_without_candidate"] == len(PEOPLE) + len(DISTRACTORS)
    assert attack["verdict"] == "no-probes"


@pytest.mark.slow
def test_cli_reports_the_attack_in_its_summary_and_json(people, tmp_path):
    anonymized = anonymize_folder(people["probes"], tmp_path / "anonymized", "blur")
    metrics = tmp_path / "m.json"
    result = run_cli("evaluate", str(people["probes"]), str(anonymized), "--attack-gallery", str(people["gallery"]),
                     "--json", str(metrics))
    assert result.returncode == 0, result.stderr
    assert "tool-aware attack (blur): rank-1" in result.stderr
    attack = json.loads(metrics.read_text())["summary"]["attack"]
    assert attack["method"] == "blur" and attack["probes"] == len(PEOPLE)
    assert attack["verdict"] == "at-floor"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"attack_anonymized": "x"}, ConfigError, "need attack_gallery"),
        ({"identities": "x.csv"}, ConfigError, "need attack_gallery"),
        ({"attack_gallery": "g", "attack_mask_scale": 9.0}, ConfigError, "attack_mask_scale"),
    ],
)
def test_bad_attack_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        EvaluationConfig(**options)


def test_an_attack_with_a_method_the_evaluator_cannot_run_names_the_way_out():
    with pytest.raises(ConfigError, match="--attack-anonymized"):
        tool_anonymizer("light")


def test_a_gallery_without_faces_is_an_input_error(recognizer, astronaut_pair, tmp_path):
    empty = tmp_path / "gallery"
    write_rgb(empty / "wall_1.png", np.full((120, 160, 3), 90, np.uint8))
    config = EvaluationConfig(attack_gallery=str(empty))
    with pytest.raises(InputError, match="no face"):
        Evaluator(config, recognizer=recognizer).run(astronaut_pair["original"], astronaut_pair["solid"])
