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


def test_a_face_that_appears_in_the_last_skipped_frames_is_covered(tmp_path):
    # No later detected frame fills the last frames in: a face entering there must still be covered.
    import av
    import cv2

    from camouflage_video.annotators import CenterFaceDetector

    face = cv2.cvtColor(cv2.imread(str(media_file("identity/fr_kit_harington_2.jpg"))), cv2.COLOR_BGR2RGB)
    face = cv2.resize(face, (200, round(face.shape[0] * 200 / face.shape[1])))[:300]
    clip, written = tmp_path / "enters_last.mp4", []
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 480, 320, "yuv420p"
        for i in range(11):  # detected: 0, 4, 8; skipped: 9, 10, where the face is
            canvas = np.full((320, 480, 3), 90, np.uint8)
            if i >= 9:
                canvas[10 : 10 + face.shape[0], 140 : 340] = face
            written.append(canvas)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    found = CenterFaceDetector(precision="fp32").detect(written[9])
    assert len(found) == 1
    x1, y1, x2, y2 = found.xyxy[0]
    w, h = x2 - x1, y2 - y1
    centre = (slice(int(y1 + 0.2 * h), int(y2 - 0.2 * h)), slice(int(x1 + 0.2 * w), int(x2 - 0.2 * w)))
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(method="solid", detect_every=4, verify=False))
    with av.open(str(tmp_path / "out.mp4")) as container:
        outputs = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(outputs) == 11
    for i in (9, 10):
        assert outputs[i][centre].max() < 30, f"frame {i}: the face is exposed"
