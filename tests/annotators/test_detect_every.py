"""``--detect-every N``: the detector runs on every N-th frame of a file, and the frames between are still covered."""

from __future__ import annotations

import numpy as np

from camouflage_video.api import anonymize
from camouflage_video.config import AnonymizeConfig, StageCache
from camouflage_video.pipelines.classic import ClassicObfuscator
from tests.conftest import media_file

FRAMES = 40


class Recording(ClassicObfuscator):
    """The solid cover, recording the boxes it is given per frame."""

    def __init__(self) -> None:
        super().__init__("solid", mask_scale=1.3, shape="box")
        self.frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, ctx):  # noqa: ANN001, ANN204
        self.frames[ctx.frame.index] = (ctx.faces.xyxy.copy(), ctx.faces.held.copy())
        self.size = ctx.frame.image.shape[:2]
        return super().__call__(ctx)


def boxes_of(clip, every: int, tmp_path) -> tuple[Recording, object]:  # noqa: ANN001
    config = AnonymizeConfig(method="solid", shape="box", detect_every=every, verify=False)
    cache, recorder = StageCache(config), Recording()

    def stages(info):  # noqa: ANN001, ANN202
        return cache(info)[0], recorder

    def stop(stats):  # noqa: ANN001, ANN202
        if stats.frames_out >= FRAMES:
            raise KeyboardInterrupt

    try:
        anonymize(clip, tmp_path / f"every{every}.mp4", config, stages=stages, on_frame=stop)
    except KeyboardInterrupt:
        pass
    return recorder, cache  # the cache holds the detector


def test_the_frames_between_detections_cover_every_face_detecting_every_frame_finds(tmp_path):
    # A real clip of people walking in and pausing; detecting every frame is the reference.
    clip = media_file("videos/intel_preview_face-demographics-walking-and-pause.gif")
    reference, _ = boxes_of(clip, 1, tmp_path)
    sparse, cache = boxes_of(clip, 2, tmp_path)
    detector = cache._shared[0]
    assert detector.skipped_frames >= FRAMES // 2 - 1  # about every other frame was not detected
    h, w = reference.size
    faces = 0
    for index, (boxes, held) in reference.frames.items():
        cover = np.zeros((h, w), bool)
        for x1, y1, x2, y2 in sparse.frames[index][0]:
            cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.65, (y2 - y1) * 0.65  # mask scale 1.3
            cover[max(0, int(cy - hh)):int(np.ceil(cy + hh)), max(0, int(cx - hw)):int(np.ceil(cx + hw))] = True
        for x1, y1, x2, y2 in boxes[~held].astype(int):
            faces += 1
            assert cover[y1:y2, x1:x2].mean() > 0.9, f"frame {index}: a face the every-frame run found is exposed"
    assert faces > 50
