"""Identity-verified anonymization: a face that a recognizer still re-identifies never reaches an output.

The recognizer is dlib's real ResNet (weights ship in the face-recognition-models wheel), the faces real
photos: the public-domain astronaut and, where ../shared/media is present, other people's photos.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from camouflage_video.annotators import CenterFaceDetector
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, Frame, FrameContext
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.pipelines.verify import VerifiedAnonymizer, VerifyOptions
from tests.conftest import media_file


class MildBlur(Anonymizer):
    """What a weak obfuscation does: a light Gaussian blur of each face box, identity intact."""

    name = "mild-blur"

    def __call__(self, ctx):
        image = ctx.frame.image.copy()
        for x1, y1, x2, y2 in ctx.faces.xyxy.astype(int):
            image[y1:y2, x1:x2] = cv2.GaussianBlur(image[y1:y2, x1:x2], (0, 0), 1.0)
        return image


def detected(image: np.ndarray, index: int = 0, track_id: int = -1) -> FrameContext:
    ctx = FrameContext(Frame(np.ascontiguousarray(image), index, pts=index, time_base=Fraction(1, 25)))
    CenterFaceDetector().annotate(ctx)
    assert len(ctx.faces) >= 1
    if track_id >= 0:
        f = ctx.faces
        ctx.faces = Faces(f.xyxy, f.scores, np.full(len(f), track_id), f.held, f.landmarks)
    return ctx


def identity_left(recognizer, original: np.ndarray, anonymized: np.ndarray, faces: Faces) -> tuple[float, float]:
    """(distance, recovery) of the first face, measured independently of the verifier (whole frames)."""
    null = anonymized.copy()
    ClassicObfuscator("solid", mask_scale=1.3, shape="box").obfuscate(null, faces.xyxy[:1])
    one = Faces.from_boxes(faces.xyxy[:1])
    o, a, n = recognizer.embed_versions(original, [anonymized, null], one)
    return float(recognizer.rowwise_distance(o, a)[0]), float(recognizer.recovery(o, a, n)[0])


def ladder(*methods: str) -> list[ClassicObfuscator]:
    return [ClassicObfuscator(m, mask_scale=1.3) for m in methods]


@pytest.fixture(params=["astronaut", "identity/fr_kit_harington_1.jpg", "identity/deepface/img1.jpg"])
def face_photo(request, astronaut) -> np.ndarray:
    if request.param == "astronaut":
        return astronaut
    return cv2.cvtColor(cv2.imread(str(media_file(request.param))), cv2.COLOR_BGR2RGB)


def test_a_face_the_recognizer_still_knows_is_escalated_until_it_clears(recognizer, face_photo):
    ctx = detected(face_photo)
    weak = MildBlur()(ctx)
    distance, recovery = identity_left(recognizer, face_photo, weak, ctx.faces)
    assert distance < recognizer.threshold and recovery > 0.5  # the weak obfuscation leaks: the premise

    verified = VerifiedAnonymizer(MildBlur(), recognizer, ladder("blur", "solid"))
    out = verified(ctx)
    distance, recovery = identity_left(recognizer, face_photo, out, ctx.faces)
    assert distance >= recognizer.threshold or recovery < 0.25
    counts = verified.stats()["verify"]
    assert counts["escalations"] >= 1 and counts["checks"] >= 2
    assert not np.array_equal(out, weak)


def test_a_cleared_face_is_left_as_the_anonymizer_wrote_it(recognizer, astronaut):
    ctx = detected(astronaut)
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), recognizer, ladder("solid"))
    out = verified(ctx)
    assert np.array_equal(out, ClassicObfuscator("blur")(ctx))
    counts = verified.stats()["verify"]
    assert counts["checks"] == counts["cleared"] == len(ctx.faces) and counts["escalations"] == 0


def test_an_escalated_track_stays_escalated_between_checks(recognizer, astronaut):
    verified = VerifiedAnonymizer(MildBlur(), recognizer, ladder("solid"), options=VerifyOptions(every=50))
    verified(detected(astronaut, 0, track_id=7))
    checks = verified.stats()["verify"]["checks"]
    later = detected(astronaut, 1, track_id=7)
    out = verified(later)
    assert verified.stats()["verify"]["checks"] == checks  # not due: no new check ...
    expected = MildBlur()(later)
    ClassicObfuscator("solid").obfuscate(expected, later.faces.xyxy)
    assert np.array_equal(out, expected)  # ... and still solid
    assert verified.stats()["verify"]["faces_by_level"] == {"solid": 2}


def test_a_track_is_checked_again_when_due(recognizer, astronaut):
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), recognizer, ladder("solid"),
                                  options=VerifyOptions(every=3))
    for index in range(7):
        verified(detected(astronaut, index, track_id=1))
    assert verified.stats()["verify"]["checks"] == 3  # frames 0, 3 and 6


def test_an_untracked_face_is_followed_not_checked_every_frame(recognizer, astronaut):
    """A faint face the tracker never confirms, then one it confirms after a frame: one check, not one a frame."""
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), recognizer, ladder("solid"))
    for index in range(4):
        verified(detected(astronaut, index))  # track id -1
    for index in range(4, 8):
        verified(detected(astronaut, index, track_id=3))
    assert verified.stats()["verify"]["checks"] == 1


def test_a_predicted_box_is_not_checked_but_keeps_its_tracks_level(recognizer, astronaut):
    """Held boxes (tracker predictions, faces carried back) mark where a face may be; only detections are judged."""

    def held(ctx):
        f = ctx.faces
        ctx.faces = Faces(f.xyxy, np.zeros(len(f)), f.track_ids, np.ones(len(f), bool), f.landmarks)
        return ctx

    verified = VerifiedAnonymizer(MildBlur(), recognizer, ladder("solid"))
    verified(held(detected(astronaut, 0)))  # carried back before the first detection: not judged
    assert verified.stats()["verify"]["checks"] == 0 and verified.stats()["verify"]["held_unchecked"] == 1
    verified(detected(astronaut, 1, track_id=2))  # detected: checked, escalated (the mild blur leaks)
    later = held(detected(astronaut, 2, track_id=2))  # the tracker holds it over a miss
    out = verified(later)
    expected = MildBlur()(later)
    ClassicObfuscator("solid").obfuscate(expected, later.faces.xyxy)
    assert np.array_equal(out, expected) and verified.stats()["verify"]["checks"] >= 1


def test_a_face_elsewhere_is_a_new_face_to_check(recognizer, astronaut):
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), recognizer, ladder("solid"))
    verified(detected(astronaut, 0))
    moved = detected(np.roll(astronaut, 250, axis=1), 1)  # the face is now 250 px to the right
    verified(moved)
    assert verified.stats()["verify"]["checks"] == 1 + len(moved.faces)


def test_a_face_too_small_to_verify_is_not_trusted(recognizer, astronaut):
    small = cv2.resize(astronaut, (96, 96), interpolation=cv2.INTER_AREA)  # the face is ~15 px tall
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[60:156, 100:196] = small
    ctx = FrameContext(Frame(frame, 0))
    ctx.faces = Faces.from_boxes([[140, 80, 153, 96]], scores=[0.9])
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), recognizer, ladder("solid"))
    out = verified(ctx)
    assert np.array_equal(out, ClassicObfuscator("solid")(ctx))
    assert verified.stats()["verify"]["too_small"] == 1


def test_a_recognizer_failure_ends_in_solid_and_is_counted(astronaut):
    class Broken:
        name, threshold, min_face_size = "broken", 0.6, 20

        def embed_versions(self, *args):
            raise RuntimeError("the recognizer crashed")

    ctx = detected(astronaut)
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), Broken(), ladder("blur", "solid"))
    out = verified(ctx)
    assert np.array_equal(out, ClassicObfuscator("solid")(ctx))
    counts = verified.stats()["verify"]
    assert counts["errors"] == 2 and counts["cleared"] == 0 and counts["escalations"] == 2


def test_the_ladder_must_end_in_solid(recognizer):
    with pytest.raises(ConfigError, match="must end with solid"):
        VerifiedAnonymizer(ClassicObfuscator("blur"), recognizer, ladder("pixelate"))
    with pytest.raises(ConfigError, match="margin"):
        VerifyOptions(margin=0)


def test_a_generated_face_that_matches_its_original_ends_in_the_classic_fallback(recognizer, astronaut, tmp_path):
    """CAMOUFLaGE-Base on tiny random models, with the original face pasted back over what it generated.

    The paste stands in for a generation that kept the identity (tiny random models cannot produce a face
    at all); the verifier must catch it, fall back to the classic blur for that face, and count it.
    """
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.tiny_models import annotate, tiny_base_anonymizer, tiny_components

    base = tiny_base_anonymizer(tiny_components(tmp_path))

    class KeptIdentity(Anonymizer):
        name = "base"

        def annotators(self):
            return base.annotators()

        def stats(self):
            return base.stats()

        def __call__(self, ctx):
            image = base(ctx)
            x1, y1, x2, y2 = ctx.faces.xyxy[0].astype(int)
            image[y1:y2, x1:x2] = ctx.frame.image[y1:y2, x1:x2]
            return image

    frame = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    ctx = annotate(base, [detected(frame)])[0]
    verified = VerifiedAnonymizer(KeptIdentity(), recognizer, ladder("blur", "solid"))
    out = verified(ctx)
    counts = verified.stats()["verify"]
    assert counts["escalations"] >= 1 and set(counts["faces_by_level"]) <= {"blur", "solid"}
    distance, recovery = identity_left(recognizer, frame, out, ctx.faces)
    assert distance >= recognizer.threshold or recovery < 0.25
    assert set(base.stats()) < set(verified.stats())  # the generative method's own counters are still reported


class Gated:
    """The real recognizer, answering only once ``gate`` is open (a check that takes its time)."""

    def __init__(self, recognizer):
        import threading

        self.inner, self.gate = recognizer, threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_versions(self, original, versions, faces):
        assert self.gate.wait(30)
        return self.inner.embed_versions(original, versions, faces)


def answered(verified, track_id):
    pending = verified._tracks[track_id].pending
    if pending is not None:
        pending.result(timeout=30)


def test_a_live_frame_does_not_wait_for_its_check_the_face_is_solid_until_it_clears(recognizer, astronaut):
    gated = Gated(recognizer)
    verified = VerifiedAnonymizer(ClassicObfuscator("blur"), gated, ladder("solid"))
    verified.wait_for_checks = False
    first = detected(astronaut, 0, track_id=4)
    out = verified(first)  # returns while the check waits at the gate
    solid = ClassicObfuscator("blur")(first)
    ClassicObfuscator("solid").obfuscate(solid, first.faces.xyxy)
    assert np.array_equal(out, solid)  # the next step up the ladder while the check runs
    second = detected(astronaut, 1, track_id=4)
    assert np.array_equal(verified(second), out)  # still unanswered: still solid
    gated.gate.set()
    answered(verified, 4)
    third = detected(astronaut, 2, track_id=4)
    assert np.array_equal(verified(third), ClassicObfuscator("blur")(third))  # cleared: blur from then on
    counts = verified.stats()["verify"]
    assert counts["checks"] == counts["cleared"] == 1 and counts["covered_pending"] == 2


def test_a_live_face_that_does_not_clear_never_goes_out_weaker_than_the_margin_allows(recognizer, face_photo):
    verified = VerifiedAnonymizer(MildBlur(), recognizer, ladder("blur", "solid"))
    verified.wait_for_checks = False
    levels = []
    for index in range(8):
        ctx = detected(face_photo, index, track_id=9)
        out = verified(ctx)
        distance, recovery = identity_left(recognizer, face_photo, out, ctx.faces)
        assert distance >= recognizer.threshold or recovery < 0.25, index  # no frame leaks, answered or not
        answered(verified, 9)
        levels.append(verified._tracks[9].level)
    assert levels[-1] >= 1 and verified.stats()["verify"]["escalations"] >= 1


def test_a_live_face_escalated_by_its_check_stays_a_step_higher_until_the_new_level_is_checked(recognizer, astronaut):
    verified = VerifiedAnonymizer(MildBlur(), recognizer, ladder("blur", "solid"))
    verified.wait_for_checks = False
    verified(detected(astronaut, 0, track_id=5))
    answered(verified, 5)  # mild blur leaks: escalated to blur, not checked yet
    held = detected(astronaut, 1, track_id=5)
    f = held.faces
    held.faces = Faces(f.xyxy, f.scores, f.track_ids, np.ones(len(f), bool), f.landmarks)  # a predicted box
    out = verified(held)
    expected = MildBlur()(held)
    ClassicObfuscator("blur", mask_scale=1.3).obfuscate(expected, held.faces.xyxy[:1])
    ClassicObfuscator("solid", mask_scale=1.3).obfuscate(expected, held.faces.xyxy[:1])
    assert verified._tracks[5].level == 1  # blur, the ladder's first step
    assert np.array_equal(out, expected)  # solid on top: blur has not been checked
    # Frame 0: the ladder's next step (blur) while its check ran; frame 1: the next step after blur (solid).
    assert verified.stats()["verify"]["faces_by_level"] == {"blur": 1, "solid": 1}
