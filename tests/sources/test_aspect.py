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


def _two_kinds_joined(path: Path) -> Path:
    """An MPEG-TS file of two recordings joined: 10 pictures of 640x360 in square pixels, then 10 of the same
    scene stored squeezed to 320x360 with a 2:1 sample aspect (displayed 640x360). Dark left half, bright right."""
    scene = np.full((360, 640, 3), 220, np.uint8)
    scene[:, :320] = 30
    time_base = Fraction(1, 90000)
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.time_base = 640, 360, "yuv420p", time_base
        second = av.CodecContext.create("libx264", "w")
        second.width, second.height, second.pix_fmt = 320, 360, "yuv420p"
        second.time_base, second.framerate, second.sample_aspect_ratio = time_base, Fraction(25), Fraction(2)
        for i in range(20):
            context, image = (stream.codec_context, scene) if i < 10 else (second, scene[:, ::2].copy())
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts, vf.time_base = i * 3600, time_base
            for packet in (stream.encode(vf) if i < 10 else context.encode(vf)):
                packet.stream = stream
                container.mux(packet)
            if i == 9:
                container.mux(stream.encode(None))
        for packet in second.encode(None):
            packet.stream = stream
            container.mux(packet)
    return path


@pytest.mark.parametrize("live", [False, True])
def test_a_change_to_anamorphic_pictures_mid_stream_keeps_their_true_shape(tmp_path, live):
    """Read as stored, the second part would be a 320x360 picture: faces squeezed to half their width."""
    clip = _two_kinds_joined(tmp_path / "joined.ts")
    if live:
        from camouflage_video.sources.stream import StreamSource
        from camouflage_video.streaming import Backoff

        src = StreamSource(clip.resolve().as_uri(), open_timeout=5, pace=True, reconnect=Backoff(attempts=0))
    else:
        src = VideoFileSource(clip)
    with src:
        images = [frame.image for frame in src if frame.image.max() > 0][:20]
    later = images[-3:]  # pictures of the second part
    assert all(image.shape == (360, 640, 3) for image in later), [image.shape for image in later]
    for image in later:  # the dark half is the left half of the picture, not a quarter of it
        columns = image.mean(axis=(0, 2))
        assert columns[:300].max() < 80 and columns[340:].min() > 170, columns[::40]
