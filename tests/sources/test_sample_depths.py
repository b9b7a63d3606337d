"""Pictures are read as they show: samples of more than 8 bits at their levels, transparent pixels as the
background they show, and faces in 1-bit pictures are found.

A 10-bit camera picture in a 16-bit PNG, read by dropping the low byte as OpenCV does, became values 0..3:
no face was found in it, and the output, black to the eye, showed the face to anyone who stretched its levels.
A PNG whose background was "removed" by clearing its alpha came out with that background in plain view.
"""

from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from camouflage_video.annotators.faces import CenterFaceDetector
from camouflage_video.sources.images import read_image
from tests.conftest import media_file, run_cli


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    """A real face, 300 px, grey."""
    rgb = Image.open(media_file("identity/fr_kit_harington_1.jpg")).convert("RGB").crop((597, 7, 897, 307))
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2GRAY)


def _png_with_sbit(values: np.ndarray, bits: int) -> bytes:
    png = cv2.imencode(".png", values)[1].tobytes()
    chunk = b"sBIT" + bytes([bits])
    return png[:33] + struct.pack(">I", 1) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]  # after IHDR


def _pgm(values: np.ndarray, maxval: int) -> bytes:
    h, w = values.shape
    return f"P5\n# a scanner's comment\n{w} {h}\n{maxval}\n".encode() + values.astype(">u2").tobytes()


WRITERS = {
    "10-bit values in a 16-bit PNG": (".png", lambda g: cv2.imencode(".png", g.astype(np.uint16) * 4)[1].tobytes()),
    "10-bit values in a 16-bit PNG with sBIT": (".png", lambda g: _png_with_sbit(g.astype(np.uint16) * 4, 10)),
    "10-bit values in a 16-bit TIFF": (".tif", lambda g: cv2.imencode(".tif", g.astype(np.uint16) * 4)[1].tobytes()),
    "10-bit values scaled to 16 bits, with sBIT (as the standard says)": (".png", lambda g: _png_with_sbit(
        (g.astype(np.uint16) * 4) * 64 + (g.astype(np.uint16) * 4) // 16, 10)),
    "12-bit values with an sBIT that says 16": (".png", lambda g: _png_with_sbit(g.astype(np.uint16) * 16, 16)),
    "a PGM of maxval 1023": (".pgm", lambda g: _pgm(g.astype(np.uint32) * 1023 // 255, 1023)),
    "floats of 0..255 in a one-channel TIFF": (".tif", lambda g: cv2.imencode(".tif", g.astype(np.float32))[1]
                                               .tobytes()),
    "floats of 0..1 in a TIFF, one value over 1": (".tif", lambda g: cv2.imencode(".tif", cv2.cvtColor(
        np.where(np.arange(g.size).reshape(g.shape) == 5, 1.3, g / 255.0).astype(np.float32),
        cv2.COLOR_GRAY2BGR))[1].tobytes()),
    "8-bit values in a 16-bit PNG": (".png", lambda g: cv2.imencode(".png", g.astype(np.uint16))[1].tobytes()),
    "full 16-bit values in a PNG": (".png", lambda g: cv2.imencode(".png", g.astype(np.uint16) * 257)[1].tobytes()),
    "floats of 0..1 in a PFM": (".pfm", lambda g: cv2.imencode(".pfm", cv2.cvtColor(
        (g / 255.0).astype(np.float32), cv2.COLOR_GRAY2BGR))[1].tobytes()),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_pictures_of_more_than_8_bits_are_read_at_the_levels_they_hold(tmp_path, grey, kind):
    suffix, write = WRITERS[kind]
    path = tmp_path / f"face{suffix}"
    path.write_bytes(write(grey))
    image = read_image(path)
    assert image.dtype == np.uint8
    assert np.abs(image[..., 0].astype(int) - grey).mean() < 3  # the face as it looks, not values 0..3
    assert len(CenterFaceDetector().detect(image)) == 1


def test_a_10_bit_png_is_anonymized_not_passed_through_dark(tmp_path, grey):
    path = tmp_path / "face.png"
    path.write_bytes(_png_with_sbit(grey.astype(np.uint16) * 4, 10))
    tracks = tmp_path / "tracks.json"
    run_cli("anonymize", str(path), "-o", str(tmp_path / "out.png"), "--tracks-out", str(tracks), "-q")
    assert len(json.loads(tracks.read_text())["frames"][0]["faces"]) == 1
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2GRAY).astype(int)
    assert out.max() > 200  # written at its levels: the face blurred in a picture one can see


@pytest.mark.parametrize("name", ["fr_kit_harington_2.jpg", "fr_rose_leslie_2.jpg", "gfpgan_Blake_Lively.jpg",
                                  "fnp_paul_rudd_1.jpg"])
def test_faces_in_a_dithered_1_bit_picture_are_found(name):
    picture = Image.open(media_file(f"identity/{name}")).convert("L")
    size = (600, round(picture.height * 600 / picture.width))
    expected = len(CenterFaceDetector().detect(np.asarray(picture.resize(size).convert("RGB"))))
    dots = np.asarray(picture.resize(size).convert("1").convert("RGB"))  # Floyd-Steinberg, as a fax or scanner
    assert set(np.unique(dots)) == {0, 255}
    assert expected >= 1 and len(CenterFaceDetector().detect(dots)) == expected


def _scene_behind_a_face(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A face in front (opaque) and a scene behind it made transparent, its colours still in the file."""
    rgb = np.repeat(grey[..., None], 3, axis=2)
    scene = np.zeros((300, 600, 3), np.uint8)
    scene[:, :, 0] = 200  # the "removed" background: red
    scene[:, 300:] = rgb
    alpha = np.zeros((300, 600), np.uint8)
    alpha[:, 300:] = 255
    return scene, alpha


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_colours_under_transparent_pixels_are_not_written(tmp_path, grey, suffix):
    scene, alpha = _scene_behind_a_face(grey)
    path = tmp_path / f"cutout{suffix}"
    Image.fromarray(np.dstack([scene, alpha]), "RGBA").save(path, **({"lossless": True} if suffix == ".webp" else {}))
    image = read_image(path)
    assert (image[:, :300] == 255).all()  # shown over white, as viewers show it: the red scene is gone
    assert np.abs(image[:, 300:, 0].astype(int) - grey).mean() < 2
    tracks = tmp_path / "tracks.json"
    out = tmp_path / f"out{suffix}"
    run_cli("anonymize", str(path), "-o", str(out), "--tracks-out", str(tracks), "-q")
    assert len(json.loads(tracks.read_text())["frames"][0]["faces"]) == 1
    written = np.asarray(Image.open(out).convert("RGB"))
    assert (written[:, :300, 0] > 240).all() and (written[:, :300, 1] > 240).all()


def test_a_half_transparent_face_is_still_found(tmp_path, grey):
    path = tmp_path / "faded.png"
    Image.fromarray(np.dstack([np.repeat(grey[..., None], 3, axis=2), np.full(grey.shape, 96, np.uint8)]),
                    "RGBA").save(path)
    assert len(CenterFaceDetector().detect(read_image(path))) == 1


def test_transparent_frames_of_an_animation_are_shown_over_white(tmp_path, grey):
    scene, alpha = _scene_behind_a_face(grey)
    path = tmp_path / "cutout.png"
    frames = [Image.fromarray(np.dstack([np.roll(scene, 40 * i, axis=0), alpha]), "RGBA") for i in range(2)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    from camouflage_video.sources import open_source

    with open_source(str(path)) as source:
        pictures = [frame.image for frame in source]
    assert len(pictures) == 2 and all((picture[:, :300] == 255).all() for picture in pictures)


def test_transparency_of_a_picture_ffmpeg_decodes_is_shown_over_white(tmp_path, grey):
    scene, alpha = _scene_behind_a_face(grey)
    path = tmp_path / "cutout.tga"  # OpenCV has no TGA decoder: FFmpeg reads it
    Image.fromarray(np.dstack([scene, alpha]), "RGBA").save(path)
    image = read_image(path)
    assert (image[:, :300] == 255).all() and np.abs(image[:, 300:, 0].astype(int) - grey).mean() < 2


def test_a_jpeg_cut_short_is_anonymized_with_a_warning(tmp_path, grey, caplog):
    import logging

    whole = cv2.imencode(".jpg", grey)[1].tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    with caplog.at_level(logging.WARNING):
        image = read_image(path)
    assert image.shape[:2] == grey.shape and "the JPEG ends inside its picture data" in caplog.text
    caplog.clear()
    path.write_bytes(whole + b"\0" * 64)  # padding after the end marker: whole
    with caplog.at_level(logging.WARNING):
        read_image(path)
    assert "ends inside" not in caplog.text


@pytest.mark.parametrize("top", [3, 8, 24])
def test_faces_in_a_very_dark_picture_are_found(top):
    picture = np.asarray(Image.open(media_file("identity/fr_rose_leslie_1.jpg")).convert("RGB").resize((640, 800)))
    dark = np.round(picture.astype(np.float32) * top / 255).astype(np.uint8)  # a face within levels 0..top
    assert dark.max() <= top
    assert len(CenterFaceDetector().detect(dark)) == 1  # as stretching the levels shows it to anyone


@pytest.mark.parametrize("kind", ["thresholded", "large dots"])
def test_faces_in_1_bit_pictures_without_fine_dots_are_found(kind):
    picture = Image.open(media_file("identity/fr_kit_harington_2.jpg")).convert("L")
    size = (480, round(picture.height * 480 / picture.width))
    grey = picture.resize(size)
    if kind == "thresholded":  # black and white, no dots: a blur can lose what the network sees in it
        dots = grey.point(lambda v: 255 if v > 110 else 0)
    else:  # a dithered picture enlarged: dots of 3 px
        dots = grey.resize((size[0] // 3, size[1] // 3)).convert("1").resize(size, Image.Resampling.NEAREST)
    bilevel = np.asarray(dots.convert("RGB"))
    assert set(np.unique(bilevel)) == {0, 255}
    assert len(CenterFaceDetector().detect(bilevel)) >= 1


def test_a_lit_face_in_a_dark_picture_is_still_found():
    face = np.asarray(Image.open(media_file("identity/fr_rose_leslie_1.jpg")).convert("RGB").resize((96, 120)))
    night = np.full((1080, 1920, 3), 6, np.uint8)  # a dark street: all but the lit face under level 16
    night[500:620, 900:996] = face  # lit by a lamp, at its own levels: the stretched copy blows it out
    assert np.percentile(night, 99.5) < 40
    assert len(CenterFaceDetector().detect(night)) == 1
