"""Gallery ranks and fidelity outside faces, on arrays whose answers are known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camouflage_video.evaluation import Recognizer
from camouflage_video.evaluation.metrics import (
    PSNR_CAP_DB,
    identity_ranks,
    masked_psnr,
    masked_ssim,
    outside_faces_mask,
)


@pytest.mark.parametrize(
    ("query", "rank"),
    [
        ([0.0, 0.1], 1),  # nearest to its own identity 0
        ([1.0, 0.05], 2),  # nearer to identity 1 than to its own
        ([3.0, 3.0], 3),  # farthest from its own identity
        ([0.5, 0.0], 1),  # a tie counts for the attacker
    ],
)
def test_rank_of_the_true_identity(query, rank):
    gallery = np.array([[0, 0], [0.2, 0], [1, 0], [2, 2]], float)
    gallery_ids = np.array([0, 0, 1, 2])
    ranks = identity_ranks(Recognizer(), np.array([query]), np.array([0]), gallery, gallery_ids)
    assert ranks.tolist() == [rank]


def test_fidelity_ignores_what_changed_inside_the_faces():
    rng = np.random.default_rng(1)
    original = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    boxes = np.array([[40, 30, 80, 80]], np.float32)
    inside_only = original.copy()
    inside_only[30:80, 40:80] = 0
    mask = outside_faces_mask(120, 160, boxes, mask_scale=1.2)
    assert masked_psnr(original, inside_only, mask) == PSNR_CAP_DB
    assert masked_ssim(original, inside_only, mask) == pytest.approx(1.0)
    noisy = np.clip(original + rng.normal(0, 8, original.shape), 0, 255).astype(np.uint8)
    assert 25 < masked_psnr(original, noisy, mask) < 35
    assert masked_ssim(original, noisy, mask) < 0.95


def test_a_frame_that_is_all_face_has_no_fidelity_to_measure():
    image = np.zeros((20, 20, 3), np.uint8)
    mask = outside_faces_mask(20, 20, np.array([[0, 0, 20, 20]], np.float32), 1.5)
    assert masked_psnr(image, image, mask) is None and masked_ssim(image, image, mask) is None
