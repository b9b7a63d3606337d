"""Files are images, videos or neither by what they hold, not by what they are called."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from camouflage_video.errors import InputError
from camouflage_video.samples import astronaut, make_sample_video
from camouflage_video.sources import ImageFolderSource, ImageSource, VideoFileSource, open_source
from camouflage_video.sources.sniff import classify, embedded_picture

SMALL = {"seconds": 0.3, "fps": Fraction(10), "size": (64, 48)}


def _jpeg() -> bytes:
    face = cv2.resize(astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))[1].tobytes()


def _image(ext: str) -> Callable[[Path], bytes]:
    def make(path: Path) -> bytes:
        face = cv2.resize(astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
        return cv2.imencode(ext, cv2.cvtColor(face, cv2.COLOR_RGB2BGR))[1].tobytes()

    return make


def _mp4(path: Path) -> bytes:
    return make_sample_video(path.with_name("made.mp4"), **SMALL).read_bytes()


def _mux(fmt: str, codec: str) -> Callable[[Path], bytes]:
    def make(path: Path) -> bytes:
        target = path.with_name(f"made.{fmt}")
        with av.open(str(target), "w", format=fmt) as out:
            stream = out.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(5):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        return target.read_bytes()

    return make


def _mp3(path: Path, cover: bytes | None = None) -> bytes:
    target = path.with_name("made.mp3")
    with av.open(str(target), "w") as out:
        audio = out.add_stream("mp3", rate=44100)
        picture = None
        if cover is not None:
            picture = out.add_stream("mjpeg")
            picture.width, picture.height, picture.pix_fmt = 128, 128, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            frame.sample_rate = 44100
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
        if picture is not None:
            packet = av.Packet(cover)
            packet.stream, packet.pts, packet.dts = picture, 0, 0
            packet.is_keyframe = True
            out.mux(packet)
    return target.read_bytes()


# A HEIC photo's first box (no decoder here reads it): content says image, so it must never be copied.
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
XPM = b'/* XPM */\nstatic char *x[] = {\n"2 2 1 1",\n"a c #ff0000",\n"aa",\n"aa"};\n'
TEXT = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * 80


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("kit.jfif", lambda p: _jpeg(), "image"),
        ("kit.dat", lambda p: _jpeg(), "image"),
        ("kit", lambda p: _jpeg(), "image"),  # no extension at all
        ("scan.ppm", _image(".ppm"), "image"),
        ("logo.bin", _image(".png"), "image"),
        ("photo.heic", lambda p: HEIC, "image"),
        ("icon.xpm", lambda p: XPM, "image"),
        ("clip.3g2", _mp4, "video"),
        ("clip.jpg", _mp4, "video"),  # content wins over a name in either direction
        ("clip.vob", _mux("vob", "mpeg2video"), "video"),
        ("clip.unknown", _mux("mpegts", "mpeg2video"), "video"),
        ("song.mp3", lambda p: _mp3(p, cover=_jpeg()), "video"),  # cover art is a picture stream
        ("song.mp3", lambda p: _mp3(p), "other"),  # audio only: no picture, nothing to anonymize
        ("notes.txt", lambda p: TEXT, "other"),  # FFmpeg would render it as an "ansi" video
        ("labels.csv", lambda p: b"file,label\na.mp4,person\n", "other"),
        ("weights.npy", lambda p: b"\x93NUMPY" + bytes(range(256)) * 8, "other"),
        ("photos.zip", lambda p: b"PK\x03\x04" + _jpeg(), "other"),  # archives are not looked into (docs)
        ("clip.mp4", _mp4, "video"),  # name and content agree: no probe needed
        ("noise.bin", lambda p: np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes(), "other"),
        ("empty.dat", lambda p: b"", "other"),
        # A media name makes unrecognised content media: it fails where it is read, it is never copied.
        ("notes.mp4", lambda p: TEXT, "video"),
        ("empty.jpg", lambda p: b"", "image"),
    ],
)
def test_content_decides_the_kind(tmp_path: Path, name: str, content: Callable[[Path], bytes], kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(content(path))
    assert classify(path).kind == kind, classify(path)


def test_a_jpeg_with_an_odd_name_is_opened_as_an_image(tmp_path: Path) -> None:
    path = tmp_path / "kit.jfif"
    path.write_bytes(_jpeg())
    with open_source(path) as src:
        assert isinstance(src, ImageSource) and src.info.kind == "image"
        assert next(iter(src)).image.shape == (128, 128, 3)


def test_a_video_named_like_an_image_is_opened_as_a_video(tmp_path: Path) -> None:
    path = tmp_path / "clip.jpg"
    path.write_bytes(_mp4(path))
    with open_source(path) as src:
        assert isinstance(src, VideoFileSource)


def test_text_is_refused_as_input_rather_than_rendered_as_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(TEXT)
    with pytest.raises(InputError, match="not an image or video \\(text\\)"):
        open_source(path)


def test_images_opencv_cannot_read_are_decoded_by_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "face.tga"
    face = cv2.resize(astronaut(), (64, 48), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("targa", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(face, format="rgb24")))
    assert cv2.imread(str(path)) is None  # the premise: OpenCV has no TGA reader
    with ImageSource(path) as src:
        assert np.array_equal(next(iter(src)).image, face)


def test_an_image_folder_warns_about_media_it_does_not_read(tmp_path: Path, caplog) -> None:
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    (tmp_path / "b.jfif").write_bytes(_jpeg())
    shutil.copy(make_sample_video(tmp_path / "c.mp4", **SMALL), tmp_path / "d.3g2")
    (tmp_path / "notes.txt").write_bytes(TEXT)
    with caplog.at_level(logging.WARNING), ImageFolderSource(tmp_path) as src:
        assert [f.key for f in src] == ["a.jpg"]
    assert src.not_read == ["b.jfif", "c.mp4", "d.3g2"]
    assert "3 image or video file(s) not anonymized" in caplog.text and "b.jfif" in caplog.text


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (lambda: json.dumps({"shapes": [], "imageData": base64.b64encode(_jpeg()).decode()}), "base64 JPEG"),
        (lambda: f'<img src="data:image/png;base64,{base64.b64encode(b"x" * 99).decode()}">', "data:image/png"),
        (lambda: "<svg><image href='DATA:IMAGE/JPEG;base64,AAAA'/></svg>", "DATA:IMAGE/JPEG"),
        (lambda: json.dumps({"imagePath": "a.jpg", "imageData": None, "shapes": [[1, 2]]}), None),
        (lambda: "see http://example.com/9j/abc and /9j/ in a path\n" * 50, None),
    ],
)
def test_text_that_embeds_a_picture_is_found(tmp_path: Path, text: Callable[[], str], found: str | None) -> None:
    path = tmp_path / "labels.json"
    path.write_text(text())
    assert embedded_picture(path) == found


def test_an_embedded_picture_across_a_chunk_boundary_is_found(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    payload = base64.b64encode(_jpeg()).decode()
    path.write_text('{"pad": "' + "x" * 1000 + '", "imageData": "' + payload + '"}')
    assert embedded_picture(path, chunk=1011) == "base64 JPEG"
