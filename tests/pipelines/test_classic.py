from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, Frame, FrameContext
from camouflage_video.pipelines.classic import ClassicObfuscator, fallback_image, scale_boxes


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
