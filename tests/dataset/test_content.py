"""A dataset run sorts files by what they hold: media with odd names is anonymized, never copied as it is."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset import DatasetOptions, run_dataset
from camouflage_video.samples import make_sample_video
from tests.conftest import MEDIA, run_cli
from tests.dataset.conftest import FAST, latest, manifest_lines

# A HEIC photo's first box: its content says image, no decoder here reads it.
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
REAL_FACE = MEDIA / "identity" / "fr_kit_harington_1.jpg"


def _jpeg(astronaut: np.ndarray) -> bytes:
    face = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))[1].tobytes()


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mp3", rate=44100)
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            frame.sample_rate = 44100
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture
def raw(tmp_path: Path, astronaut: np.ndarray) -> Path:
    """Media under names that do not say so, and files that really are not media."""
    root = tmp_path / "raw"
    root.mkdir()
    jpeg = _jpeg(astronaut)
    for name in ("kit.jfif", "scan.dat", "noext"):
        (root / name).write_bytes(jpeg)
    make_sample_video(root / "made.mp4", seconds=0.5, fps=Fraction(10), size=(160, 96), audio=None)
    (root / "made.mp4").rename(root / "clip.3g2")
    (root / "photo.heic").write_bytes(HEIC)
    (root / "README.txt").write_text("A dataset of faces.\n" * 40)  # FFmpeg would open this as a video
    labelme = {"imagePath": "kit.jpg", "shapes": [], "imageData": base64.b64encode(jpeg).decode()}
    (root / "kit.json").write_text(json.dumps(labelme))
    _audio_only(root / "song.mp3")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + jpeg)
    import zipfile

    with zipfile.ZipFile(root / "photos.zip", "w") as archive:  # photos inside an archive
        archive.writestr("kit.jpg", jpeg)
    np.save(root / "faces.npy", cv2.resize(astronaut, (64, 64)))  # face crops as an array, a common layout
    return root


def _face_changed(original: Path, anonymized: Path) -> float:
    before = cv2.imdecode(np.fromfile(str(original), np.uint8), cv2.IMREAD_COLOR).astype(int)
    after = cv2.imread(str(anonymized)).astype(int)
    assert after.shape == before.shape
    h, w = before.shape[:2]
    return float(np.abs(after - before)[h // 5 : h // 2, w // 3 : 2 * w // 3].mean())


def test_copy_other_anonymizes_media_with_odd_names_and_copies_only_what_holds_no_picture(
    raw: Path, tmp_path: Path
) -> None:
    out, stats = tmp_path / "out", tmp_path / "summary.json"
    loud = [a for a in FAST if a != "-q"]  # warnings shown
    result = run_cli("dataset", str(raw), str(out), "--copy-other", "--stats", str(stats), *loud)
    assert result.returncode == 1, result.stderr  # the HEIC photo cannot be read: a failure, reported
    records = latest(out)
    for name, output in (("kit.jfif", "kit.jpg"), ("scan.dat", "scan.jpg"), ("noext", "noext.jpg")):
        assert records[name]["kind"] == "image" and records[name]["status"] == "done", records[name]
        assert records[name]["output"] == output and records[name]["faces"] >= 1
        assert _face_changed(raw / name, out / output) > 8, f"{name}: the face was not anonymized"
        assert not (out / name).exists()  # no byte-for-byte copy under the original name
    assert records["clip.3g2"]["kind"] == "video" and records["clip.3g2"]["status"] == "done"
    assert records["clip.3g2"]["output"] == "clip.mp4" and not (out / "clip.3g2").exists()
    assert records["photo.heic"]["status"] == "failed" and "failed: photo.heic" in result.stderr
    assert not list(out.glob("photo.*"))
    # Only what holds no picture is copied, and the manifest says why each one is safe.
    assert (records["README.txt"]["status"], records["README.txt"]["reason"]) == ("copied", "text")
    assert records["song.mp3"]["status"] == "copied" and "no picture stream" in records["song.mp3"]["reason"]
    assert (out / "song.mp3").read_bytes() == (raw / "song.mp3").read_bytes()
    # A label file that carries the photo inline is not copied.
    assert records["kit.json"]["status"] == "listed" and not (out / "kit.json").exists()
    assert "embeds base64 JPEG" in records["kit.json"]["error"]
    assert "kit.json: not copied" in result.stderr
    # Neither is the thumbnail cache Windows leaves beside photos.
    assert records["Thumbs.db"]["status"] == "listed" and "thumbnail cache" in records["Thumbs.db"]["error"]
    # Nor what nobody looks into: an archive or an array may hold a face.
    for name in ("photos.zip", "faces.npy"):
        assert records[name]["status"] == "listed" and not (out / name).exists(), records[name]
        assert "may hold pictures" in records[name]["error"]
    summary = json.loads(stats.read_text())
    assert summary["copied"] == 2
    assert sorted(n["input"] for n in summary["not_copied"]) == [
        "Thumbs.db", "faces.npy", "kit.json", "photos.zip"]


def test_the_reported_photo_is_anonymized_when_named_jfif(tmp_path: Path) -> None:
    """The break-test's reproduction, with its real photo: ``cp kit.jpg IN/kit.jfif; dataset IN OUT --copy-other``."""
    if not REAL_FACE.is_file():
        pytest.skip(f"real test media {REAL_FACE} not present")
    raw = tmp_path / "IN"
    raw.mkdir()
    shutil.copy(REAL_FACE, raw / "kit.jfif")
    summary = run_dataset(raw, tmp_path / "OUT", AnonymizeConfig(det_size=320), DatasetOptions(copy_other=True))
    assert (summary.processed, summary.copied, summary.failed) == (1, 0, 0)
    assert not (tmp_path / "OUT" / "kit.jfif").exists()
    assert _face_changed(raw / "kit.jfif", tmp_path / "OUT" / "kit.jpg") > 8


def test_without_copy_other_media_with_odd_names_is_anonymized_too(raw: Path, tmp_path: Path) -> None:
    summary = run_dataset(raw, tmp_path / "out", AnonymizeConfig(det_size=320))
    records = latest(tmp_path / "out")
    assert {n for n, r in records.items() if r["status"] == "done"} == {"kit.jfif", "scan.dat", "noext", "clip.3g2"}
    assert (summary.media, summary.processed, summary.failed, summary.other) == (5, 4, 1, 6)
    listed = {n for n, r in records.items() if r["status"] == "listed"}
    assert listed == {"README.txt", "kit.json", "song.mp3", "Thumbs.db", "photos.zip", "faces.npy"}
    assert summary.copied == 0 and summary.not_copied == []


def test_a_rerun_removes_an_unanonymized_copy_an_older_version_made(raw: Path, tmp_path: Path) -> None:
    """Older versions sorted by extension and copied kit.jfif as it was, faces included."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(raw / "kit.jfif", out / "kit.jfif")
    old = {"input": "kit.jfif", "kind": "other", "status": "copied", "output": "kit.jfif", "size": 1, "mtime_ns": 0}
    (out / "camouflage_manifest.jsonl").write_text(json.dumps(old) + "\n")
    summary = run_dataset(raw, out, AnonymizeConfig(det_size=320))
    assert summary.stale_copies_removed == 1
    assert not (out / "kit.jfif").exists() and (out / "kit.jpg").is_file()
    assert latest(out)["kit.jfif"]["status"] == "done"


def test_symlinked_folders_are_reported_not_silently_skipped(tmp_path: Path, astronaut, caplog) -> None:
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    raw.mkdir()
    elsewhere.mkdir()
    (elsewhere / "face.jpg").write_bytes(_jpeg(astronaut))
    (raw / "face.jpg").write_bytes(_jpeg(astronaut))
    os.symlink(elsewhere, raw / "more")
    with caplog.at_level(logging.WARNING):
        summary = run_dataset(raw, tmp_path / "out", AnonymizeConfig(det_size=320), DatasetOptions(copy_other=True))
    assert summary.folder_links == ["more"]
    assert "more: a symbolic link to a folder" in caplog.text and "not anonymized" in caplog.text
    record = latest(tmp_path / "out")["more"]
    assert record["status"] == "listed" and "not followed" in record["reason"]
    assert not (tmp_path / "out" / "more").exists()
    assert json.loads(json.dumps(summary.to_dict()))["folder_links"] == ["more"]


def test_a_generative_method_without_its_extra_fails_before_creating_the_output(tmp_path: Path, monkeypatch) -> None:
    from camouflage_video.errors import MissingDependencyError

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jpg").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without the 'light' extra looks like
    with pytest.raises(MissingDependencyError, match=r"camouflage-video\[light\]"):
        run_dataset(tmp_path / "raw", tmp_path / "out", AnonymizeConfig(method="light"))
    assert not (tmp_path / "out").exists()


def test_a_bad_config_file_fails_before_creating_the_output(tmp_path: Path) -> None:
    from camouflage_video.errors import ConfigError

    (tmp_path / "raw").mkdir()
    (tmp_path / "bad.toml").write_text("stepz = 4\n")
    config = AnonymizeConfig(method="base", generative={"config": str(tmp_path / "bad.toml")})
    with pytest.raises(ConfigError, match="stepz"):
        run_dataset(tmp_path / "raw", tmp_path / "out", config)
    assert not (tmp_path / "out").exists()


def test_every_manifest_line_of_an_other_file_says_why_it_is_not_media(raw: Path, tmp_path: Path) -> None:
    run_dataset(raw, tmp_path / "out", AnonymizeConfig(det_size=320))
    others = [r for r in manifest_lines(tmp_path / "out") if r["kind"] == "other"]
    assert others and all(r["reason"] for r in others)


def _wav(path: Path, extra: bytes = b"") -> Path:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(8000))
    path.write_bytes(path.read_bytes() + extra)
    return path


def test_copy_other_copies_no_text_or_audio_that_carries_a_face(tmp_path: Path) -> None:
    """The break-test's files: a real face as hex, ascii85, base64url, uuencode, EPS, and after a WAV's end."""
    if not REAL_FACE.is_file():
        pytest.skip(f"real test media {REAL_FACE} not present")
    import binascii

    img = cv2.resize(cv2.imread(str(REAL_FACE)), (120, 80))
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    raw = tmp_path / "IN"
    raw.mkdir()
    refused = {
        "hex.txt": jpg.hex() + "\n",
        "b85.txt": base64.a85encode(jpg).decode() + "\n",
        "url.txt": base64.urlsafe_b64encode(jpg).decode().rstrip("=") + "\n",
        "uu.txt": "begin 644 f.jpg\n" + "".join(binascii.b2a_uu(jpg[i:i + 45]).decode()
                                               for i in range(0, len(jpg), 45)) + "`\nend\n",
        "figure.eps": ("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 120 80\n120 80 8 [120 0 0 -80 0 80] "
                       "{currentfile 360 string readhexstring pop} false 3 colorimage\n"
                       + img[..., ::-1].tobytes().hex() + "\nshowpage\n"),
    }
    for name, text in refused.items():
        (raw / name).write_text(text)
    _wav(raw / "song_jpg.wav", jpg)
    _audio_only(raw / "song.mp3").write_bytes((raw / "song.mp3").read_bytes() + jpg)
    _wav(raw / "song.wav")
    _audio_only(raw / "clean.mp3")
    (raw / "labels.txt").write_text("0 0.5 0.5 0.2 0.3\n" * 20)
    summary = run_dataset(raw, tmp_path / "OUT", AnonymizeConfig(det_size=320), DatasetOptions(copy_other=True))
    copied = sorted(p.name for p in (tmp_path / "OUT").iterdir() if not p.name.startswith(("camouflage_", ".")))
    assert copied == ["clean.mp3", "labels.txt", "song.wav"]
    assert sorted(name for name, _ in summary.not_copied) == sorted([*refused, "song.mp3", "song_jpg.wav"])
    records = latest(tmp_path / "OUT")
    assert "after its last frame" in records["song.mp3"]["error"]
    assert "the file has" in records["song_jpg.wav"]["error"]
