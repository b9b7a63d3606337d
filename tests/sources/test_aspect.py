"""Anamorphic input (sample aspect ratio != 1): faces are found on square pixels and outputs play undistorted."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from camouflage_video.sources import VideoFileSource
from camouflage_video.sources.video import square_size
from tests.conftest import media_file, read_frames, run_cli


def anamorphic_clip(path: Path, photo: Path, sar: Fraction, frames: int = 5) -> Path:
    """``photo`` at 640x360 display size, stored squeezed to about 640/sar x 360 with sample aspect ``sar``."""
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    stored = cv2.resize(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA),
                        (2 * round(320 / sar), 360), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
        stream.codec_context.sample_aspect_ratio = sar
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(stored, format="rgb24")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return path


def displayed(path: Path) -> tuple[list[np.ndarray], Fraction]:
    """A file's pictures as a player shows them (stretched by its sample aspect), and that aspect."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sar = Fraction(stream.sample_aspect_ratio or 1)
    frames, _, _ = read_frames(path)
    size = square_size(frames[0].shape[1], frames[0].shape[0], sar)
    return [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames], sar


@pytest.fixture(scope="module")
def sar3_clip(tmp_path_factory) -> Path:
    photo = media_file("group/ultralytics_zidane.jpg")  # two faces, found at 640x360 when not squeezed
    return anamorphic_clip(tmp_path_factory.mktemp("anamorphic") / "sar3.mp4", photo, Fraction(3))


def test_an_anamorphic_video_is_read_in_square_pixels(sar3_clip):
    with VideoFileSource(sar3_clip) as src:
        assert (src.info.width, src.info.height, src.info.sample_aspect) == (642, 360, 3)
        assert src.info.to_dict()["sample_aspect_ratio"] == "3"
        frames = list(src)
    assert len(frames) == 5 and all(f.image.shape == (360, 642, 3) for f in frames)


def test_a_live_source_reads_anamorphic_pictures_in_square_pixels(sar3_clip):
    from camouflage_video.sources.stream import StreamSource

    with StreamSource(sar3_clip.resolve().as_uri(), open_timeout=5) as src:
        assert (src.info.width, src.info.height, src.info.sample_aspect) == (642, 360, 3)
        frame = next(iter(src))
    assert frame.image.shape == (360, 642, 3) and frame.image.std() > 20


def test_every_face_of_an_anamorphic_video_is_covered_and_it_plays_at_its_aspect(sar3_clip, tmp_path):
    from camouflage_video.annotators import CenterFaceDetector

    detector = CenterFaceDetector(thresh=0.5)
    original, _ = displayed(sar3_clip)
    assert len(detector.detect(original[0])) >= 2  # the faces are there to be found at the display aspect
    out = tmp_path / "out.mp4"
    result = run_cli("anonymize", str(sar3_clip), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    shown, sar = displayed(out)
    assert sar == 1 and shown[0].shape == (360, 642, 3)  # square pixels, shown 642x360 like the input
    assert len(shown) == 5
    assert [len(detector.detect(f)) for f in shown] == [0] * 5
