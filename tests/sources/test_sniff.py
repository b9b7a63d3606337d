"""Files are images, videos or neither by what they hold, not by what they are called."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
import uuid
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


# Every way a text file can spell out a picture that the break-tests tried: each must be found.
def _face() -> tuple[np.ndarray, bytes]:
    from tests.conftest import media_file

    img = cv2.resize(cv2.imread(str(media_file("identity/fr_kit_harington_1.jpg"))), (120, 80))
    return img, cv2.imencode(".jpg", img)[1].tobytes()


def _thumbnail(img: np.ndarray) -> bytes:
    """A 48 px face as JPEG: small enough that ascii85's spread rule alone misses it in base85."""
    return cv2.imencode(".jpg", cv2.resize(img, (48, 32), interpolation=cv2.INTER_AREA))[1].tobytes()


def _xxd(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        groups = " ".join(row[j:j + 2].hex() for j in range(0, len(row), 2))
        lines.append(f"{i:08x}: {groups:<39}  {''.join(chr(b) if 32 <= b < 127 else '.' for b in row)}")
    return "\n".join(lines) + "\n"


def _hexdump_c(data: bytes) -> str:
    return "".join(f"{i:08x}  {' '.join(f'{b:02x}' for b in data[i:i + 8])}  "
                   f"{' '.join(f'{b:02x}' for b in data[i + 8:i + 16])}  |{'.' * len(data[i:i + 16])}|\n"
                   for i in range(0, len(data), 16))


def _uu(data: bytes, header: bool = True) -> str:
    import binascii

    body = "".join(binascii.b2a_uu(data[i:i + 45]).decode() for i in range(0, len(data), 45))
    return f"begin 644 f.jpg\n{body}`\nend\n" if header else body


def _eps(img: np.ndarray) -> str:
    return ("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 120 80\n120 80 8 [120 0 0 -80 0 80] "
            "{currentfile 360 string readhexstring pop} false 3 colorimage\n"
            + img[..., ::-1].tobytes().hex() + "\nshowpage\n")


def _grey48(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)


def _savetxt(values: np.ndarray, **kwargs) -> str:
    out = io.StringIO()
    np.savetxt(out, values, **kwargs)
    return out.getvalue()


def _yolo_segments() -> str:
    """YOLO segmentation labels: a class, then a polygon's normalised x y pairs, one object per line."""
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(200):
        (cx, cy), r, t = rng.uniform(0.1, 0.9, 2), rng.uniform(0.01, 0.1), np.linspace(0, 2 * np.pi, 60)
        points = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).ravel()
        lines.append(f"{rng.integers(0, 3)} " + " ".join(f"{v:.6f}" for v in points))
    return "\n".join(lines) + "\n"


def _mask_rows(between: str) -> str:
    """A person's mask as text, 0 and 1 (hex digits and bits too), 96 rows of 96."""
    yy, xx = np.mgrid[:96, :96]
    mask = ((xx - 48) ** 2 / 20**2 + (yy - 30) ** 2 / 24**2 < 1) | ((abs(xx - 48) < 34) & (yy > 56))
    return "".join(between.join(map(str, row.astype(int))) + "\n" for row in mask)


def _wrap(text: str, width: int) -> str:
    return "\n".join(text[i:i + width] for i in range(0, len(text), width)) + "\n"


ENCODINGS = {
    "hex in one run (SQL dump)": lambda img, jpg: f"INSERT INTO faces VALUES (1, X'{jpg.hex()}');\n",
    "hex of raw pixels": lambda img, jpg: img.tobytes().hex() + "\n",
    "hex wrapped (xxd -p)": lambda img, jpg: _wrap(jpg.hex(), 60),
    "xxd dump": lambda img, jpg: _xxd(jpg),
    "hexdump -C": lambda img, jpg: _hexdump_c(jpg),
    "C array (xxd -i)": lambda img, jpg: "unsigned char f[] = {" + ", ".join(f"0x{b:02x}" for b in jpg) + "};\n",
    "python bytes literal": lambda img, jpg: "data = b'" + "".join(f"\\x{b:02x}" for b in jpg) + "'\n",
    "percent-encoded": lambda img, jpg: "".join(f"%{b:02X}" for b in jpg),
    "decimal byte list": lambda img, jpg: json.dumps({"blob": list(jpg)}),
    "ascii85": lambda img, jpg: base64.a85encode(jpg).decode() + "\n",
    "ascii85 wrapped, Adobe": lambda img, jpg: base64.a85encode(jpg, wrapcol=72, adobe=True).decode() + "\n",
    "base64 of raw pixels": lambda img, jpg: base64.b64encode(img.tobytes()).decode(),
    "base64 wrapped at 40": lambda img, jpg: _wrap(base64.b64encode(jpg).decode(), 40),
    "base64url unpadded": lambda img, jpg: base64.urlsafe_b64encode(jpg).decode().rstrip("=") + "\n",
    "base32": lambda img, jpg: base64.b32encode(jpg).decode() + "\n",
    "base32 lower case": lambda img, jpg: base64.b32encode(jpg).decode().lower() + "\n",
    "base64 in a JSON array of lines": lambda img, jpg: json.dumps(
        {"chunks": [base64.b64encode(jpg).decode()[i:i + 48] for i in range(0, 4000, 48)]}, indent=0),
    "base64 in an indented YAML block": lambda img, jpg: "image: >\n" + "".join(
        f"  {line}\n" for line in _wrap(base64.b64encode(jpg).decode(), 40).split()),
    "base64 in a CSV column": lambda img, jpg: "id,part\n" + "".join(
        f"{i},{line}\n" for i, line in enumerate(_wrap(base64.b64encode(jpg).decode(), 40).split())),
    "base64 in groups of four": lambda img, jpg: " ".join(
        base64.b64encode(jpg).decode()[i:i + 4] for i in range(0, 4000, 4)),
    "hex pairs with colons": lambda img, jpg: ":".join(f"{b:02x}" for b in jpg),
    "hex pairs with commas": lambda img, jpg: ",".join(f"{b:02X}" for b in jpg),
    "binary digits": lambda img, jpg: " ".join(f"{b:08b}" for b in jpg),
    "binary digits in one run": lambda img, jpg: "".join(f"{b:08b}" for b in jpg),
    "hex lines in a JSON array": lambda img, jpg: json.dumps([jpg.hex()[i:i + 64] for i in range(0, 8000, 64)]),
    "C uint32 array": lambda img, jpg: "uint32_t f[] = {" + ", ".join(
        f"0x{int.from_bytes(jpg[i:i + 4], 'little'):08x}" for i in range(0, 4000, 4)) + "};\n",
    "hex pairs with dots": lambda img, jpg: ".".join(f"{b:02x}" for b in jpg),
    "base85 of a thumbnail": lambda img, jpg: base64.b85encode(_thumbnail(img)).decode(),
    "Z85 of a thumbnail": lambda img, jpg: base64.b85encode(_thumbnail(img)).decode().translate(str.maketrans(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")),
    "C uint16 array": lambda img, jpg: "{" + ", ".join(f"0x{jpg[i]:02x}{jpg[i + 1]:02x}" for i in range(0, 4000, 2))
                                       + "}\n",
    "base64 in deeply indented XML": lambda img, jpg: "<a>\n" + "".join(
        " " * 16 + line + "\n" for line in _wrap(base64.b64encode(jpg).decode(), 60).split()) + "</a>\n",
    "base64 in groups of five": lambda img, jpg: " ".join(
        base64.b64encode(jpg).decode()[i:i + 5] for i in range(0, 4000, 5)),
    "base32 wrapped, indented": lambda img, jpg: "".join(
        "    " + line + "\n" for line in _wrap(base64.b32encode(jpg).decode().lower(), 60).split()),
    "base32hex": lambda img, jpg: _wrap(base64.b32hexencode(jpg).decode(), 60),
    "escaped code points": lambda img, jpg: json.dumps({"img": jpg.decode("latin-1")}),
    "bytes repr in JSON": lambda img, jpg: json.dumps({"img": str(jpg)}),
    "decimal bytes with spaces": lambda img, jpg: " ".join(str(b) for b in jpg),
    "base64 as UTF-16 (PowerShell)": lambda img, jpg: "\ufeff" + base64.b64encode(jpg).decode(),
    "uuencode": lambda img, jpg: _uu(jpg),
    "uuencode without its header": lambda img, jpg: _uu(jpg, header=False),
    "mail attachment": lambda img, jpg: ("Content-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n"
                                         + _wrap(base64.b64encode(jpg[:30]).decode(), 76)),
    "sixel": lambda img, jpg: "\x1bPq#0;2;0;0;0~~@@vv@@~~\x1b\\\n",
    "grey values in a CSV (FER2013)": lambda img, jpg: "emotion,pixels,Usage\n" + "".join(
        f"{e},{' '.join(map(str, _grey48(img).ravel()))},Training\n" for e in range(3)),
    "an RGB array as JSON (tolist)": lambda img, jpg: json.dumps({"face": img[::2, ::2].tolist()}),
    "normalised values, savetxt's default format": lambda img, jpg: _savetxt(_grey48(img) / 255.0),
    "grey values, one row per line": lambda img, jpg: _savetxt(_grey48(img), fmt="%d"),
    "decimal bytes after the header": lambda img, jpg: " ".join(str(b) for b in jpg[4:]),
    "octal bytes without padding": lambda img, jpg: " ".join(f"{b:o}" for b in jpg),
    "keypoints, then pixels (Kaggle's facial keypoints CSV)": lambda img, jpg: "left_eye_x,left_eye_y,Image\n"
    + "".join(f"{30 + i}.5,{36 + i}.25,{' '.join(map(str, _grey48(img).ravel()))}\n" for i in range(3)),
    "grey values after an id column": lambda img, jpg: "id,pixels\n" + "".join(
        f"{1000 + i},{' '.join(map(str, _grey48(img).ravel()))}\n" for i in range(3)),
    "a Java byte[] of the JPEG": lambda img, jpg: "byte[] f = {" + ", ".join(
        str(b - 256 if b > 127 else b) for b in jpg) + "};\n",
    "grey values quoted in a CSV": lambda img, jpg: ",".join(f'"{v}"' for v in _grey48(img).ravel()) + "\n",
    "16-bit grey values": lambda img, jpg: _savetxt(_grey48(img).astype(np.uint32) * 257, fmt="%d"),
    "a network's normalised input": lambda img, jpg: _savetxt((_grey48(img) / 255.0 - 0.45) / 0.23, fmt="%.4f"),
    "RGBA as JSON (tolist)": lambda img, jpg: json.dumps(np.dstack(
        [img[::2, ::2], np.full(img[::2, ::2].shape[:2], 255, np.uint8)]).tolist()),
    "colour block art": lambda img, jpg: "".join(f"\x1b[38;2;{r};{g};{b}m\u2580"
                                                 for b, g, r in img[::4, ::2].reshape(-1, 3)),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_text_that_spells_out_a_picture_is_found(tmp_path: Path, encoding: str) -> None:
    img, jpg = _face()
    path = tmp_path / "labels.txt"
    text = ENCODINGS[encoding](img, jpg)
    if text.startswith("\ufeff"):
        path.write_bytes(text.encode("utf-16"))  # with its byte-order mark, as Windows writes "Unicode"
    else:
        path.write_text(text)
    assert classify(path).format == "text"  # text by content: only the embedding rules stop the copy
    assert embedded_picture(path) is not None


@pytest.mark.parametrize(
    ("name", "text", "format"),
    [
        ("figure.eps", lambda img, jpg: _eps(img), "PostScript"),
        ("figure.svg", lambda img, jpg: '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        ("notes.rtf", lambda img, jpg: r"{\rtf1\ansi{\pict\jpegblip " + jpg.hex() + "}}", "RTF"),
        ("face.ply", lambda img, jpg: "ply\nformat ascii 1.0\nelement vertex 0\nend_header\n", "PLY mesh"),
        ("mail.eml", lambda img, jpg: "MIME-Version: 1.0\nSubject: hi\n\nhello\n", "MIME message"),
    ],
)
def test_documents_written_as_text_are_not_plain_text(tmp_path: Path, name: str, text, format: str) -> None:
    img, jpg = _face()
    path = tmp_path / name
    path.write_text(text(img, jpg))
    assert (classify(path).kind, classify(path).format) == ("other", format)


def _coco_rle(counts: list[int]) -> str:
    """COCO's compressed RLE string (pycocotools' rleToString), as COCO files hold crowd masks."""
    out = []
    for i, x in enumerate(counts):
        x -= counts[i - 2] if i > 2 else 0
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def _coco(indent: int | None) -> str:
    rng = np.random.default_rng(1)
    polygon = [round(float(v), 2) for v in rng.uniform(0, 640, 400)]
    rle = _coco_rle([int(v) for v in rng.integers(1, 900, 300)])
    return json.dumps({
        "info": {"description": "COCO 2017", "url": "http://cocodataset.org", "date_created": "2017/09/01"},
        "images": [{"id": 397133, "file_name": "000000397133.jpg", "height": 427, "width": 640,
                    "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg"}] * 20,
        "annotations": [{"id": 1, "image_id": 397133, "category_id": 1, "iscrowd": 0, "area": 2765.14865,
                         "bbox": [102.49, 118.47, 7.9, 17.31], "segmentation": [polygon]},
                        {"id": 2, "image_id": 397133, "category_id": 1, "iscrowd": 1,
                         "segmentation": {"size": [427, 640], "counts": rle}}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }, indent=indent, separators=None if indent else (",", ":"))


ORDINARY = {
    "COCO, pretty": lambda: _coco(2),
    "COCO, minified": lambda: _coco(None),
    "YOLO labels": lambda: "".join(f"0 0.{i:04d} 0.4812 0.1523 0.2041\n" for i in range(500)),
    "WIDER FACE boxes": lambda: ("0--Parade/0_Parade_marchingband_1_849.jpg\n3\n"
                                 + "449 330 122 149 0 0 0 0 0 0\n" * 300),
    "CSV of boxes": lambda: "file,x,y,w,h,label\n" + "".join(f"img{i:06d}.jpg,{i % 640},{i % 480},32,40,face\n"
                                                             for i in range(500)),
    "README": lambda: ("# Faces dataset\n\nDownload with `wget http://example.org/a.tar`; then run\n```\n"
                       "python tools/convert_annotations_to_coco_format_with_all_the_options.py\n```\n") * 30,
    "YAML": lambda: "path: ../datasets/coco\ntrain: images/train2017\nnames:\n" + "".join(
        f"  {i}: {n}\n" for i, n in enumerate(["person", "bicycle", "car", "motorcycle", "traffic light"] * 16)),
    "class names": lambda: "\n".join(["person", "Bicycle", "car", "MotorCycle", "Airplane", "bus", "Train"] * 60),
    "checksums": lambda: "".join(f"{os.urandom(32).hex()}  images/{i:05d}.jpg\n" for i in range(50))
                         + f"{os.urandom(64).hex()}  all.tar\n",
    "ids": lambda: json.dumps([{"id": str(uuid.uuid4()), "sha256": os.urandom(32).hex(), "label": "face"}
                               for _ in range(100)], indent=1),
    "LabelMe without image data": lambda: json.dumps({"imagePath": "a.jpg", "imageData": None,
                                                      "shapes": [{"points": [[1.5, 2.25]] * 40}]}),
    "progress log": lambda: "epoch 1/10 loss=0.3521 lr=0.001\n" * 200,
    "a JSON list of digests": lambda: json.dumps([os.urandom(32).hex() for _ in range(60)], indent=1),
    "MAC addresses": lambda: "".join(":".join(f"{b:02x}" for b in os.urandom(6)) + "\n" for _ in range(40)),
    "certificate fingerprints": lambda: "".join("SHA256 Fingerprint=" + ":".join(f"{b:02X}" for b in os.urandom(32))
                                                + "\n" for _ in range(10)),
    "colour palette": lambda: "".join(f"#{os.urandom(3).hex()}\n" for _ in range(200)),
    "kernel oops": lambda: "Code: " + " ".join(f"{b:02x}" for b in os.urandom(64)) + "\n",
    "package-lock.json": lambda: json.dumps({"packages": {f"node_modules/p{i}": {
        "version": "1.0.0", "integrity": "sha512-" + base64.b64encode(os.urandom(64)).decode()} for i in range(50)}},
        indent=2),
    "HTML with integrity digests": lambda: "".join(
        f'<script src="/a{i}.js" integrity="sha384-{base64.b64encode(os.urandom(48)).decode()}"></script>\n'
        for i in range(20)),
    "random ids": lambda: json.dumps(["".join(chr(c) for c in np.random.default_rng(i).choice(
        [*range(48, 58), *range(65, 91), *range(97, 123), 45, 95], 33)) for i in range(20000)], indent=2),
    "code with long names": lambda: ("def convertAnnotationsToCocoFormat(inputFolderPath, outputFolderPath2):\n"
                                     "    return [normalizeBoundingBoxCoordinates(box, imageWidthInPixels) "
                                     "for box in detectedFaceBoundingBoxes]\n") * 40,
    # Decimal numbers are hex pieces: these spell "8BPS" (a PSD's signature) and "RIFF" in hex, without a letter.
    "keypoints as two-digit numbers": lambda: json.dumps({"annotations": [{"keypoints": [38, 42, 50, 53] + [
        int(v) for v in np.random.default_rng(5).integers(10, 99, 90)] + [52, 49, 46, 46]}]}),
    "YOLO segmentation labels": _yolo_segments,
    "integer polygons of a small picture": lambda: json.dumps({"annotations": [{"segmentation": [
        [int(v) for v in np.stack([128 + 100 * np.cos(t), 128 + 90 * np.sin(t)], 1).ravel()]]}
        for t in [np.linspace(0, 2 * np.pi, 600)]]}),
    "face-mesh points": lambda: json.dumps(np.random.default_rng(4).uniform([0, 0, -0.05], [1, 1, 0.05],
                                                                            (468, 3)).round(4).tolist()),
    "a box track": lambda: json.dumps({"track": [[round(0.3 + 0.001 * i, 4), round(0.2 + 0.0005 * i, 4),
                                                  0.1, round(0.15 + 0.0002 * i, 4)] for i in range(400)]}),
    "a mask of 0 and 1, a row per line": lambda: _mask_rows(""),
    "a mask of 0 and 1, spaced": lambda: _mask_rows(" "),
    "a segmentation map of a few classes": lambda: _savetxt(np.random.default_rng(2).integers(0, 12, (64, 64)),
                                                            fmt="%d"),
    "prose": lambda: ("Thirty Volunteers Recorded Walking Sequences In 2019 Using Handheld Smartphones, "
                      "Zoom Lenses And Quadcopter Footage; Japanese, Kenyan, Brazilian Participants.\n") * 40,
}


@pytest.mark.parametrize("kind", list(ORDINARY))
def test_ordinary_annotation_files_are_plain_text(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(ORDINARY[kind]())
    assert classify(path).format == "text"
    assert embedded_picture(path) is None
