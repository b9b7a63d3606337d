from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, Frame, FrameContext
from camouflage_video.geometry import scale_boxes
from camouflage_video.pipelines.classic import ClassicObfuscator, fallback_image


@pytest.fixture
def ctx(astronaut):
    c = FrameContext(Frame(astronaut, index=0))
    c.faces = Faces.from_boxes([[170, 60, 260, 160]])
    return c


@pytest.mark.parametrize("method", ["blur", "pixelate", "solid"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_face_region_changes_and_the_rest_does_not(ctx, method, shape):
    original = ctx.frame.image.copy()
    out = ClassicObfuscator(method, mask_scale=1.0, shape=shape)(ctx)
    assert np.array_equal(ctx.frame.image, original)  # the input frame is never written to
    face = (slice(85, 135), slice(190, 240))  # centre of the box: inside the ellipse too
    assert np.abs(out[face].astype(int) - original[face]).mean() > 10
    outside = np.ones(original.shape[:2], bool)
    outside[60:160, 170:260] = False
    assert np.array_equal(out[outside], original[outside])


def test_blur_removes_detail(ctx):
    out = ClassicObfuscator("blur", mask_scale=1.0, shape="box")(ctx)
    face = out[60:160, 170:260].astype(float)
    original = ctx.frame.image[60:160, 170:260].astype(float)
    # high-frequency energy (what identifies a face) is gone
    assert np.abs(np.diff(face, axis=1)).mean() < 0.2 * np.abs(np.diff(original, axis=1)).mean()


def test_mask_scale_grows_the_covered_area(ctx):
    original = ctx.frame.image
    small = ClassicObfuscator("solid", mask_scale=1.0, shape="box")(ctx)
    large = ClassicObfuscator("solid", mask_scale=1.5, shape="box")(ctx)
    assert (large != original).any(axis=2).sum() > 2 * (small != original).any(axis=2).sum()


def test_boxes_at_the_border_are_clipped():
    boxes = scale_boxes(np.array([[-20, -10, 30, 40], [600, 300, 700, 400]], np.float32), 1.3, 640, 360)
    assert (boxes >= 0).all() and (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 360).all()


def test_fallback_changes_every_region(astronaut):
    out = fallback_image(astronaut)
    assert out.shape == astronaut.shape
    blocks = np.abs(out.astype(int) - astronaut).reshape(16, 32, 16, 32, 3).mean(axis=(1, 3, 4))
    assert (blocks > 1).mean() > 0.9  # almost every part of the picture was altered
    # 16 cells along the long side, each one flat: no detail finer than a cell survives
    cells = out.reshape(16, 32, 16, 32, 3)
    assert (cells == cells[:, :1, :, :1]).all()


@pytest.mark.parametrize("kwargs", [{"method": "smudge"}, {"shape": "star"}, {"mask_scale": 0.1}, {"cells": 0}])
def test_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError):
        ClassicObfuscator(**kwargs)


def _rotated_inside(image: np.ndarray, box: tuple[int, int, int, int], shape: str) -> np.ndarray:
    """The same picture with the face region (ellipse or box) turned upside down: same pixels, other places."""
    x1, y1, x2, y2 = box
    out = image.copy()
    region = out[y1:y2, x1:x2]
    mask = ClassicObfuscator("blur", shape=shape)._mask(y2 - y1, x2 - x1)
    np.copyto(region, region[::-1, ::-1].copy(), where=mask[..., None])
    return out


@pytest.mark.parametrize("method", ["blur", "pixelate"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_the_cover_holds_nothing_of_the_face_but_its_mean_colour(astronaut, method, shape):
    # The real face and the same face upside down have the same surroundings and the same mean colour: a
    # low-pass blur shows two different blobs (eyes at the top, then at the bottom); the identity-free fill one.
    box = (170, 60, 260, 160)
    turned = _rotated_inside(astronaut, box, shape)
    assert not np.array_equal(turned, astronaut)
    outputs = []
    for image in (astronaut.copy(), turned):
        ClassicObfuscator(method, mask_scale=1.0, shape=shape).obfuscate(image, np.array([box]))
        outputs.append(image)
    assert np.array_equal(outputs[0], outputs[1])


def test_overlapping_faces_take_nothing_from_each_other(astronaut):
    boxes = np.array([[170, 60, 260, 160], [230, 90, 320, 190]], np.float32)
    first = astronaut.copy()
    second = astronaut.copy()
    second[160:190, 230:320] = second[160:190, 230:320][:, ::-1]  # the second face's own part, mirrored
    for image in (first, second):
        ClassicObfuscator("blur", mask_scale=1.0, shape="box").obfuscate(image, boxes)
    # The first face is painted the same either way: it never reads its neighbour's pixels.
    assert np.array_equal(first[60:90, 170:230], second[60:90, 170:230])


def test_blur_is_continuous_with_its_surroundings(astronaut):
    out = astronaut.copy()
    ClassicObfuscator("blur", mask_scale=1.0, shape="box").obfuscate(out, np.array([[170, 60, 260, 160]]))
    # At the box's edges the blob takes the colour of what lies just outside it (the astronaut's dark hair on
    # the left, the bright wall on the right), not the face's: no hard rim around a uniform patch.
    for inside, outside in ((170, slice(160, 170)), (259, slice(260, 270))):
        rim = out[70:150, inside].astype(float).mean(axis=0)
        around = astronaut[70:150, outside].astype(float).mean(axis=(0, 1))
        face = astronaut[60:160, 170:260].astype(float).mean(axis=(0, 1))
        assert np.abs(rim - around).mean() < 0.6 * np.abs(face - around).mean()


@pytest.mark.parametrize(("height", "kept"), [(20, 0.15), (40, 0.15), (80, 0.575), (120, 1.0), (400, 1.0)])
def test_small_faces_are_shaded_towards_the_centre(height, kept):
    assert ClassicObfuscator.shade(height) == pytest.approx(kept)


def test_a_face_filling_the_frame_gets_its_mean_colour(astronaut):
    out = astronaut.copy()
    ClassicObfuscator("blur", mask_scale=1.0, shape="box").obfuscate(out, np.array([[0, 0, 512, 512]]))
    assert (out == out[0, 0]).all()  # nothing around it to paint from: one flat colour, no detail
