"""Pictures whose samples are not 8-bit are read at the levels they show, and faces in 1-bit pictures are found.

A 10-bit camera picture in a 16-bit PNG, read by dropping the low byte as OpenCV does, became values 0..3:
no face was found in it, and the output, black to the eye, showed the face to anyone who stretched its levels.
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
    "a PGM of maxval 1023": (".pgm", lambda g: _pgm(g.astype(np.uint32) * 1023 // 255, 1023)),
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
