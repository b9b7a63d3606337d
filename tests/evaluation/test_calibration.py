"""The null calibration: a match that context alone explains is no leak, at any face size; real leaks stay flagged.

Real media: Intel's walking clip, whose faces are 16-33 px tall. There dlib puts a black ellipse within 0.6
of the original for about half of the faces, so the plain threshold flags a solid fill as a leak.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from camouflage_video.evaluation import Recognizer, render_report
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def walking_results(evaluator, walking_versions) -> dict:
    """Every 5th frame of the walking clip against each version (7 frames, 14 faces, 5 under 20 px)."""
    original = walking_versions["original"]
    versions = {"identical": original, **{k: v for k, v in walking_versions.items() if k != "original"}}
    return {name: evaluator.run(original, path) for name, path in versions.items()}


@pytest.mark.parametrize("method", ["solid", "blur"])
def test_solid_and_blur_on_small_faces_are_not_flagged(walking_results, method):
    result = walking_results[method]
    summary = result.summary()
    assert summary["faces"] == 14 and summary["small_faces"]["faces"] >= 4
    # The plain threshold would call these leaks: dlib matches the context around the filled faces.
    assert summary["threshold_reidentification_rate"] > 0.3
    assert summary["context_matches"] > 0
    assert summary["reidentification_rate"] == 0.0
    assert summary["verdict"] == "pass" and not result.leaks
    assert summary["rank1_rate"] <= 0.75  # near chance (0.5): nothing identifies these people
    assert summary["recovery"]["max"] < 0.5


def test_solid_fill_recovers_nothing_beyond_its_null(walking_results):
    # The null version is a black ellipse where `anonymize --method solid` drew one: the two embed alike.
    assert walking_results["solid"].summary()["recovery"]["max"] < 0.1


@pytest.mark.parametrize("version", ["identical", "reencoded"])
def test_unchanged_copy_is_flagged_on_every_face_small_ones_included(walking_results, version):
    result = walking_results[version]
    summary = result.summary()
    assert summary["verdict"] == "leak"
    assert summary["reidentification_rate"] == 1.0
    small = summary["small_faces"]
    assert small["min_face_size"] == 20 and small["faces"] >= 4
    assert small["leaks"] == small["faces"]
    sizes = sorted(f.size for f in result.leaks)
    assert sizes[0] < 20 < sizes[-1]
    assert min(f.recovery for f in result.faces) > 0.6  # codec noise aside, the face is all there


def test_report_shows_null_distances_small_faces_and_sizes(walking_results):
    result = walking_results["solid"]
    html = render_report(result)
    assert 'id="fig-recovery"' in html and "null: face blacked out" in html
    assert re.search(r"Faces under 20 px</th><td>\d+</td>", html)
    assert "Below the threshold alone" in html
    table = re.search(r"<table id='by-size'>(.*?)</table>", html, re.S).group(1)
    assert "0-19 px" in table and "20-29 px" in table
    data = result.to_dict()
    assert data["summary"]["calibration"] == {
        "leak_rule": "null",
        "null_scale": 1.3,
        "min_recovery": 0.5,
        "min_face_size": 20,
    }
    face = data["faces"][0]
    assert face["null_distance"] is not None and face["recovery"] is not None and "small" in face and face["size"]


@pytest.mark.parametrize(
    ("rule", "exit_status", "first_word"),
    [("null", 0, "PASS"), ("threshold", 3, "LEAK")],
)
def test_cli_gate_on_small_solid_faces(walking_versions, tmp_path, rule, exit_status, first_word):
    metrics = tmp_path / "m.json"
    args = [str(walking_versions["original"]), str(walking_versions["solid"]), "--step", "5"]
    result = run_cli("evaluate", *args, "--fail-on-leak", "--leak-rule", rule, "--json", str(metrics))
    assert result.returncode == exit_status, result.stderr
    assert result.stderr.startswith(f"{first_word}: 14 faces, ")
    summary = json.loads(metrics.read_text())["summary"]
    assert summary["calibration"]["leak_rule"] == rule
    if rule == "null":
        assert "below the threshold alone" in result.stderr.splitlines()[0]
    else:
        assert summary["null_distance"]["count"] == 0  # no null embedding under the plain rule


class _Plain(Recognizer):
    name = "plain"


@pytest.mark.parametrize(
    ("anonymized", "expected"),
    [
        ([0.0, 0.0], 0.0),  # at its null: the face region adds nothing
        ([2.0, 0.0], 1.0),  # at the original
        ([1.0, 5.0], 0.5),  # halfway along the null-to-original line; the sideways noise does not count
        ([-1.0, 0.0], -0.5),  # farther from the original than its null
    ],
)
def test_recovery_is_the_share_of_the_way_from_null_to_original(anonymized, expected):
    original, null = np.array([[2.0, 0.0]]), np.array([[0.0, 0.0]])
    assert _Plain().recovery(original, np.array([anonymized]), null) == pytest.approx([expected])


def test_recovery_falls_back_to_the_threshold_where_the_null_embeds_as_the_original():
    same = np.array([[0.3, 0.4]])
    assert _Plain().recovery(same, np.array([[9.0, 9.0]]), same) == pytest.approx([1.0])


def test_recovery_compares_directions_for_cosine_recognizers():
    cosine = _Plain()
    cosine.metric = "cosine"
    # Scaled copies of the same directions: halfway between the null and the original direction.
    assert cosine.recovery([[10.0, 0.0]], [[5.0, 5.0]], [[0.0, 3.0]]) == pytest.approx([0.5])
