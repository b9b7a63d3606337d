"""The 41-channel attribute map and per-track stabilization (pure NumPy: no model involved)."""

from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.annotators.attribute_map import (
    KEYPOINT_CHANNEL,
    MAP_CHANNELS,
    NUM_ATTRIBUTES,
    AttributeStabilizer,
    FaceAttributes,
    build_attribute_map,
    face_regions,
    landmarks_from_boxes,
    track_seed,
)
from camouflage_video.errors import ConfigError


def _attributes(boxes, probs, frame=(320, 240), masks=None) -> FaceAttributes:
    boxes = np.asarray(boxes, np.float32)
    probs = np.asarray(probs, np.float32)
    return FaceAttributes(
        xyxy=boxes, probs=probs, observed=probs, keypoints=landmarks_from_boxes(boxes),
        regions=face_regions(boxes, frame, masks=masks), seeds=np.full(len(boxes), -1, np.int64), frame_size=frame,
    )


def test_two_people_get_disjoint_regions_and_their_own_attributes():
    # Two faces whose grown boxes overlap: the overlap must be split, never averaged.
    a = np.linspace(0.05, 0.95, NUM_ATTRIBUTES)
    b = 1.0 - a
    attrs = _attributes([[60, 60, 150, 170], [130, 70, 220, 180]], [a, b])
    condition = build_attribute_map(attrs, 160, 120)

    assert condition.shape == (MAP_CHANNELS, 120, 160)
    vectors = np.moveaxis(condition[:NUM_ATTRIBUTES], 0, -1)
    is_a = np.isclose(vectors, a, atol=1e-6).all(-1)
    is_b = np.isclose(vectors, b, atol=1e-6).all(-1)
    empty = (vectors == 0).all(-1)
    assert (is_a | is_b | empty).all(), "some pixel mixes the attributes of two people"
    assert is_a.sum() > 100 and is_b.sum() > 100
    assert not (is_a & is_b).any()
    # The contested strip goes to the nearer face: left of the midpoint A, right of it B.
    row = vectors[55]
    owners = [("a" if np.allclose(v, a) else "b" if np.allclose(v, b) else "-") for v in row]
    first_b = owners.index("b")
    assert "a" not in owners[first_b:], "regions interleave instead of splitting the overlap"
    # Every face's keypoints are drawn in the keypoint channel, and nowhere else is.
    assert condition[KEYPOINT_CHANNEL].max() == 1.0
    assert set(np.unique(condition[KEYPOINT_CHANNEL])) <= {0.0, 1.0}


def test_regions_follow_parsing_masks_and_stay_one_owner_per_pixel():
    boxes = [[40, 40, 120, 140]]
    mask = np.zeros((240, 320), bool)
    mask[40:90, :] = True  # the parser says: only the upper half is head
    with_mask = face_regions(boxes, (320, 240), masks=[mask])
    without = face_regions(boxes, (320, 240))
    assert with_mask.max() == 1 and without.max() == 1
    assert (with_mask[90:] == 0).all()
    assert 0 < (with_mask == 1).sum() < (without == 1).sum()


def test_a_tiny_face_still_owns_a_pixel():
    labels = face_regions([[100.2, 100.2, 100.6, 100.7]], (320, 240), region_size=(80, 60))
    assert (labels == 1).sum() >= 1


def test_empty_frame_gives_an_all_zero_map():
    condition = build_attribute_map(FaceAttributes.empty((64, 48)), 32, 24)
    assert condition.shape == (41, 24, 32) and not condition.any()


def _noisy_frames(rng, truth, frames, noise=0.2):
    return [np.clip(truth + rng.normal(0, noise, truth.shape), 0, 1).astype(np.float32) for _ in range(frames)]


@pytest.mark.parametrize("mode, window", [("mean", 0), ("mean", 20), ("ema", 0)])
def test_noisy_per_frame_attributes_give_a_stable_per_track_encoding(mode, window):
    rng = np.random.default_rng(0)
    truth = np.stack([np.full(NUM_ATTRIBUTES, 0.35), np.full(NUM_ATTRIBUTES, 0.65)]).astype(np.float32)
    stabilizer = AttributeStabilizer(mode=mode, window=window, momentum=0.95, seed=11)
    ids = np.array([4, 9])
    encoded, raw, seeds = [], [], []
    for observed in _noisy_frames(rng, truth, 120):
        probs, frame_seeds = stabilizer.update(ids, observed)
        encoded.append(probs)
        raw.append(observed)
        seeds.append(frame_seeds)
    encoded, raw = np.array(encoded[40:]), np.array(raw[40:])
    # Frame to frame, the encoding barely moves while the classifier's output jumps around...
    assert np.abs(np.diff(encoded, axis=0)).max() < 0.05
    assert np.abs(np.diff(raw, axis=0)).max() > 0.3
    # ...so the binary attributes a viewer would notice (smiling, glasses...) stop flickering.
    assert ((encoded > 0.5) == (truth > 0.5)).all()
    assert ((raw > 0.5) != (truth > 0.5)).any()
    # One seed per track for its whole life, different between tracks.
    seeds = np.array(seeds)
    assert (seeds == seeds[0]).all() and seeds[0, 0] != seeds[0, 1]
    assert seeds[0, 0] == track_seed(11, 4)


def test_unconfirmed_faces_are_still_encoded_with_their_own_values():
    stabilizer = AttributeStabilizer(seed=3)
    observed = np.stack([np.full(NUM_ATTRIBUTES, 0.9), np.full(NUM_ATTRIBUTES, 0.1)]).astype(np.float32)
    stabilizer.update(np.array([7, -1]), observed)
    probs, seeds = stabilizer.update(np.array([7, -1]), observed[::-1].copy())
    assert np.allclose(probs[1], 0.9)  # per-frame value, not mixed with anything
    assert np.allclose(probs[0], 0.5)  # track 7: mean of 0.9 and 0.1
    assert seeds.tolist() == [track_seed(3, 7), -1]


def test_a_held_face_keeps_its_track_values():
    stabilizer = AttributeStabilizer()
    stabilizer.update(np.array([2]), np.full((1, NUM_ATTRIBUTES), 0.8, np.float32))
    probs, _ = stabilizer.update(np.array([2]), np.full((1, NUM_ATTRIBUTES), np.nan, np.float32))
    assert np.allclose(probs, 0.8)


def test_off_mode_passes_values_through():
    stabilizer = AttributeStabilizer(mode="off")
    stabilizer.update(np.array([1]), np.full((1, NUM_ATTRIBUTES), 0.2, np.float32))
    probs, _ = stabilizer.update(np.array([1]), np.full((1, NUM_ATTRIBUTES), 0.7, np.float32))
    assert np.allclose(probs, 0.7)


def test_tracks_not_seen_for_long_are_forgotten():
    stabilizer = AttributeStabilizer(forget_after=5)
    stabilizer.update(np.array([1]), np.full((1, NUM_ATTRIBUTES), 0.2, np.float32))
    for _ in range(6):
        stabilizer.update(np.array([2]), np.full((1, NUM_ATTRIBUTES), 0.2, np.float32))
    assert stabilizer.tracks == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "median"}, "attribute stabilization"),
        ({"window": -1}, "attribute window"),
        ({"momentum": 1.0}, "momentum"),
        ({"forget_after": 0}, "forget_after"),
    ],
)
def test_stabilizer_rejects_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AttributeStabilizer(**kwargs)


def test_face_attributes_validate_shapes():
    with pytest.raises(ValueError, match="probs"):
        FaceAttributes(
            xyxy=np.zeros((1, 4), np.float32), probs=np.zeros((1, 39), np.float32),
            observed=np.zeros((1, 40), np.float32),
            keypoints=np.zeros((1, 5, 2), np.float32), regions=np.zeros((4, 4), np.uint8), seeds=np.zeros(1, np.int64),
            frame_size=(4, 4),
        )
