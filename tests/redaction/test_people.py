"""--keep-person and --only-person on real photos of real people: the reference is a different picture of the
person in the clip. The kept face must come out unchanged; every other face hidden by evaluate's rule."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from camouflage_video.api import anonymize
from camouflage_video.config import AnonymizeConfig
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, Frame, FrameContext
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.redaction.decide import RedactingAnonymizer
from camouflage_video.redaction.people import VERDICTS, FaceVerdict, ReferencePeople, _unjudgeable
from tests.conftest import media_file
from tests.redaction.conftest import ALEX, KIT, compose, face_in, identity_left, portrait, read_frames, side_by_side

LEFT, RIGHT = (0, 320), (320, 640)


def hidden(recognizer, original, anonymized, face) -> bool:  # noqa: ANN001
    distance, recovery = identity_left(recognizer, original, anonymized, face)
    return not (distance < recognizer.threshold and recovery >= 0.5)


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("keep")
    clip = folder / "clip.mp4"
    originals = compose(clip, side_by_side(KIT[0], ALEX[0]))
    stats = anonymize(clip, folder / "out.mp4", AnonymizeConfig(keep_person=(str(media_file(KIT[1])),),
                                                                tracks_out=str(folder / "tracks.json")),
                      stats_path=folder / "stats.json")
    return originals, read_frames(folder / "out.mp4"), stats.to_dict(), json.loads((folder / "tracks.json").read_text())


def test_the_kept_person_is_unchanged_and_the_other_person_hidden(kept_run, recognizer, detector):
    originals, outputs, _, _ = kept_run
    assert len(outputs) == len(originals)
    for original, output in zip(originals, outputs, strict=True):
        kept, other = face_in(detector, original, LEFT), face_in(detector, original, RIGHT)
        distance, _ = identity_left(recognizer, original, output, kept)
        assert distance < 0.25
        assert hidden(recognizer, original, output, other)


def test_stats_and_tracks_file_say_which_tracks_were_kept_in_which_frames(kept_run):
    _, outputs, stats, tracks = kept_run
    redaction = stats["model"]["redaction"]
    assert redaction["mode"] == "keep"
    assert redaction["faces_kept"] == len(outputs) and redaction["faces_removed"] >= len(outputs)
    kept_tracks = [t for t, r in redaction["tracks"].items() if "kept" in r]
    assert len(kept_tracks) == 1 and "removed" not in redaction["tracks"][kept_tracks[0]]
    assert len(tracks["frames"]) == len(outputs) == tracks["video"]["frame_count"]
    for frame in tracks["frames"]:
        decisions = sorted(f["decision"] for f in frame["faces"])
        assert decisions == ["kept", "removed"]
        for face in frame["faces"]:
            assert face["method"] == ("none" if face["decision"] == "kept" else "blur")


def test_the_evaluate_report_says_which_tracks_were_kept_on_purpose_and_where(kept_run, tmp_path: Path):
    from camouflage_video.evaluation import evaluate

    _, _, stats, _ = kept_run
    folder = Path(stats["input"]["uri"]).parent
    kept = next(t for t, r in stats["model"]["redaction"]["tracks"].items() if "kept" in r)
    first, last = stats["model"]["redaction"]["tracks"][kept]["kept"][0]
    result = evaluate(folder / "clip.mp4", folder / "out.mp4", run_stats=folder / "stats.json",
                      report=tmp_path / "report.html", step=6)
    assert result.run["redaction"]["mode"] == "keep"
    page = (tmp_path / "report.html").read_text()
    assert "--keep-person: only matching faces left visible" in page
    assert f"<th>track {kept}</th><td>kept in frames {first}-{last}</td>" in page


def test_a_track_that_switches_to_another_face_is_hidden_from_the_switch(tmp_path: Path, recognizer, detector):
    # The same place, the same size: the tracker carries one track over from one person to the other.
    kit, alex = portrait(KIT[0]), portrait(ALEX[0])
    clip = tmp_path / "switch.mp4"
    originals = compose(clip, lambda i: [(kit if i < 6 else alex, 180, 10)])
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(keep_person=(str(media_file(KIT[1])),),
                                                          tracks_out=str(tmp_path / "tracks.json")))
    outputs = read_frames(tmp_path / "out.mp4")
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    for i, (original, output) in enumerate(zip(originals, outputs, strict=True)):
        face = face_in(detector, original, (0, 640))
        if i >= 6:
            assert hidden(recognizer, original, output, face), f"frame {i}: the other person shows"
            assert all(f["decision"] == "removed" for f in tracks["frames"][i]["faces"])


def test_two_faces_that_match_one_reference_are_both_hidden(tmp_path: Path, recognizer, detector):
    clip = tmp_path / "twice.mp4"
    originals = compose(clip, side_by_side(KIT[0], KIT[0]), frames=4)
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(keep_person=(str(media_file(KIT[1])),)))
    for original, output in zip(originals, read_frames(tmp_path / "out.mp4"), strict=True):
        for half in (LEFT, RIGHT):
            assert hidden(recognizer, original, output, face_in(detector, original, half))


def test_only_person_hides_the_matching_person_and_leaves_the_other_visible(tmp_path: Path, recognizer, detector):
    clip = tmp_path / "clip.mp4"
    originals = compose(clip, side_by_side(KIT[0], ALEX[0]), frames=6)
    stats = anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(only_person=(str(media_file(KIT[1])),)))
    assert stats.to_dict()["model"]["redaction"]["mode"] == "only"
    for original, output in zip(originals, read_frames(tmp_path / "out.mp4"), strict=True):
        assert hidden(recognizer, original, output, face_in(detector, original, LEFT))
        distance, _ = identity_left(recognizer, original, output, face_in(detector, original, RIGHT))
        assert distance < 0.25


def test_dataset_mode_keeps_only_the_reference_person(tmp_path: Path, recognizer, detector):
    from camouflage_video.dataset import DatasetOptions, run_dataset

    source = tmp_path / "raw"
    source.mkdir()
    originals = compose(source / "clip.mp4", side_by_side(KIT[0], ALEX[0]), frames=4)
    summary = run_dataset(source, tmp_path / "anon", AnonymizeConfig(keep_person=(str(media_file(KIT[1])),)),
                          DatasetOptions(workers=1))
    assert summary.failed == 0
    for original, output in zip(originals, read_frames(tmp_path / "anon" / "clip.mp4"), strict=True):
        assert identity_left(recognizer, original, output, face_in(detector, original, LEFT))[0] < 0.25
        assert hidden(recognizer, original, output, face_in(detector, original, RIGHT))


# -- reference photos -------------------------------------------------------------------------------------


def test_a_reference_photo_with_no_face_is_a_config_error_before_any_output(tmp_path: Path, sample_clip):
    blank = tmp_path / "wall.png"
    import cv2

    cv2.imwrite(str(blank), np.full((400, 400, 3), 128, np.uint8))
    with pytest.raises(ConfigError, match="no face found in the reference photo"):
        anonymize(sample_clip, tmp_path / "out.mp4", AnonymizeConfig(keep_person=(str(blank),)))
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_a_reference_photo_with_several_faces_is_a_config_error(detector, recognizer):
    with pytest.raises(ConfigError, match="shows 2 faces"):
        ReferencePeople([media_file("group/fr_two_people.jpg")], detector, recognizer)


def test_keep_and_only_person_exclude_each_other():
    with pytest.raises(ConfigError, match="exclude each other"):
        AnonymizeConfig(keep_person=("a.jpg",), only_person=("b.jpg",))


def test_one_photo_given_as_a_string_is_one_reference_not_its_letters():
    assert AnonymizeConfig(keep_person="me.jpg").keep_person == ("me.jpg",)


# -- what cannot be judged is anonymized --------------------------------------------------------------------


def _face(box, landmarks=None) -> Faces:  # noqa: ANN001
    return Faces.from_boxes([box], landmarks=None if landmarks is None else [landmarks])


FRONTAL_POINTS = [[130, 140], [170, 140], [150, 160], [135, 180], [165, 180]]


@pytest.mark.parametrize(("faces", "reason"), [
    (_face([130, 120, 160, 150], FRONTAL_POINTS), "small"),
    (_face([100, 100, 200, 220]), "no landmarks"),
    (_face([100, 100, 200, 220], [[130, 140], [170, 140], [178, 160], [135, 180], [165, 180]]), "profile"),
    (_face([100, 100, 200, 220], [[150, 140], [155, 140], [152, 160], [148, 180], [156, 180]]), "profile"),
    (_face([100, 100, 300, 220], FRONTAL_POINTS), "odd box shape"),  # two faces side by side in one box
])
def test_small_turned_away_or_unlocated_faces_are_not_judged(faces, reason):
    assert _unjudgeable(faces, 0) == reason
    assert _unjudgeable(_face([100, 100, 200, 220], FRONTAL_POINTS), 0) == ""


class Failing:
    """A recognizer whose embedding fails on frames (the reference is embedded by a working one)."""

    threshold, name = 0.6, "failing"

    def __init__(self, real) -> None:  # noqa: ANN001
        self.real, self.fail = real, False

    def embed_versions(self, *args):  # noqa: ANN002, ANN201
        if self.fail:
            raise RuntimeError("no descriptor")
        return self.real.embed_versions(*args)

    def distance(self, a, b):  # noqa: ANN001, ANN201
        return self.real.distance(a, b)


def test_a_recognizer_failure_makes_the_face_uncertain(detector, recognizer):
    failing = Failing(recognizer)
    people = ReferencePeople([media_file(KIT[1])], detector, failing)
    failing.fail = True
    verdict = people.judge(np.zeros((300, 300, 3), np.uint8), _face([100, 100, 200, 220], FRONTAL_POINTS), 0)
    assert (verdict.verdict, verdict.reason) == ("uncertain", "recognizer failed")


class Untouched(Anonymizer):
    name = "untouched"

    def __call__(self, ctx):  # noqa: ANN001, ANN204
        return ctx.frame.image.copy()


def _ctx(faces: Faces, verdicts: dict) -> FrameContext:
    ctx = FrameContext(Frame(np.zeros((300, 400, 3), np.uint8), 5, pts=5, time_base=Fraction(1, 25)), faces)
    ctx.extras[VERDICTS] = verdicts
    return ctx


def test_only_a_detected_face_that_matched_in_this_frame_is_kept():
    box = [100, 100, 200, 220]
    faces = Faces.from_boxes([box, box, box, [250, 100, 350, 220]], track_ids=[7, 7, -1, 8],
                             held=[False, True, True, False])
    match = FaceVerdict(tuple(float(v) for v in box), "match", 0.3, 0)
    # The verdict of face 3 was computed on another box (the face moved after it was judged): not its own.
    stale = FaceVerdict((0.0, 0.0, 10.0, 10.0), "match", 0.3, 0)
    redacting = RedactingAnonymizer(Untouched(), mode="keep")
    decisions = redacting.decide(_ctx(faces, {0: match, 1: match, 2: match, 3: stale}))
    assert [d.kept for d in decisions] == [True, False, False, False]
    assert [d.why for d in decisions[1:3]] == ["held", "backfilled"]


def test_in_only_mode_a_track_that_once_matched_stays_anonymized():
    box = (100.0, 100.0, 200.0, 220.0)
    faces = Faces.from_boxes([box], track_ids=[4])
    redacting = RedactingAnonymizer(Untouched(), mode="only")
    assert not redacting.decide(_ctx(faces, {0: FaceVerdict(box, "match", 0.3, 0)}))[0].kept
    later = redacting.decide(_ctx(faces, {0: FaceVerdict(box, "nonmatch", 0.8, 0)}))[0]
    assert (later.kept, later.why) == (False, "its track matches elsewhere")


def test_a_dataset_run_refuses_a_bad_reference_photo_before_touching_its_output(tmp_path: Path):
    import cv2

    from camouflage_video.dataset import run_dataset

    (tmp_path / "raw").mkdir()
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((400, 400, 3), 128, np.uint8))
    with pytest.raises(ConfigError, match="no face found"):
        run_dataset(tmp_path / "raw", tmp_path / "anon", AnonymizeConfig(keep_person=(str(blank),)))
    assert not (tmp_path / "anon").exists()


def test_in_only_mode_a_track_that_matches_later_is_anonymized_in_the_frames_held_back_before():
    from camouflage_video.redaction.people import PersonMatcher

    box = (100.0, 100.0, 200.0, 220.0)
    faces = Faces.from_boxes([box], track_ids=[4])
    earlier = _ctx(faces, {0: FaceVerdict(box, "nonmatch", 0.8, 0)})
    later = _ctx(faces, {0: FaceVerdict(box, "match", 0.3, 0)})
    PersonMatcher(people=None, look_ahead=25).revise(later, [earlier])
    decision = RedactingAnonymizer(Untouched(), mode="only").decide(earlier)[0]
    assert (decision.kept, decision.why) == (False, "its track matches elsewhere")


def test_a_face_too_small_to_judge_is_anonymized_even_when_it_is_the_reference_person(tmp_path: Path, recognizer,
                                                                                     detector):
    small, other = portrait(KIT[0], width=70, height=90), portrait(ALEX[0])
    clip = tmp_path / "small.mp4"
    originals = compose(clip, lambda i: [(small, 100, 100), (other, 340, 10)], frames=4)
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(keep_person=(str(media_file(KIT[1])),),
                                                          tracks_out=str(tmp_path / "tracks.json")))
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert all(f["decision"] == "removed" for frame in tracks["frames"] for f in frame["faces"])
    assert any(f["why"] == "uncertain: small" for frame in tracks["frames"] for f in frame["faces"])
    for original, output in zip(originals, read_frames(tmp_path / "out.mp4"), strict=True):
        assert not np.array_equal(original[100:190, 100:170], output[100:190, 100:170])
        assert hidden(recognizer, original, output, face_in(detector, original, RIGHT))


def test_two_faces_that_match_two_photos_of_one_person_are_both_hidden(tmp_path: Path, recognizer, detector):
    # Two photos of one person as references (a photo and its mirror image), and the person twice in the frame
    # (the person and their photo on a screen, or a look-alike): each face is closest to another photo, yet
    # both match one person, so neither can be trusted to be the one kept.
    import cv2

    kit = portrait(KIT[0])
    mirrored = tmp_path / "kit_mirrored.jpg"
    cv2.imwrite(str(mirrored), cv2.imread(str(media_file(KIT[0])))[:, ::-1])
    clip = tmp_path / "twice.mp4"
    originals = compose(clip, lambda i: [(kit, 20 + i, 10), (np.ascontiguousarray(kit[:, ::-1]), 340 - i, 10)],
                        frames=3)
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(keep_person=(str(media_file(KIT[0])), str(mirrored))))
    for original, output in zip(originals, read_frames(tmp_path / "out.mp4"), strict=True):
        for half in (LEFT, RIGHT):
            assert hidden(recognizer, original, output, face_in(detector, original, half))
