"""A copied audio track carries nothing but sound: no picture in its samples or its codec's setup data, no sound
an edit list cut off.

Audio is copied packet by packet where the output container takes its codec, so whatever bytes the packets and
the codec's setup data hold reach the output as they are.
"""

from __future__ import annotations

import shutil
import subprocess

import av
import cv2
import numpy as np
import pytest

from camouflage_video.sources.sniff import carried_picture
from tests.conftest import media_file, run_cli


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    image = cv2.imread(str(media_file("identity/fr_kit_harington_1.jpg")))
    return cv2.imencode(".jpg", cv2.resize(image, (320, 180)))[1].tobytes()


def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _face_file(suffix: str) -> bytes:
    image = cv2.resize(cv2.imread(str(media_file("identity/fr_kit_harington_1.jpg"))), (160, 90))
    if suffix == ".tif":  # as Pillow writes it, its first directory at the start (OpenCV puts it at the end)
        import io

        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(image[..., ::-1]).save(out, "TIFF")
        return out.getvalue()
    return cv2.imencode(suffix, image)[1].tobytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".tif", ".ppm"])
def test_a_picture_written_as_audio_samples_fails_the_output_and_leaves_no_file(tmp_path, sample_clip, suffix):
    picture = _face_file(suffix)
    samples = tmp_path / "samples.raw"
    samples.write_bytes(b"\0" * 9601 + picture + b"\0" * (96000 - (len(picture) + 1) % 2))  # after 0.1 s, odd
    clip = tmp_path / "clip.mkv"
    _ffmpeg("-i", str(sample_clip), "-f", "s16le", "-ar", "48000", "-ac", "1", "-i", str(samples),
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "pcm_s16le", str(clip))
    for container in (".mkv", ".mov"):  # both copy PCM
        out = tmp_path / f"out{container}"
        done = run_cli("anonymize", str(clip), "-o", str(out), "-q")
        assert done.returncode != 0
        name = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".ppm": "PNM"}[suffix]
        assert f"its audio carries a {name} at 0.0" in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    assert run_cli("anonymize", str(clip), "-o", str(tmp_path / "quiet.mkv"), "--no-audio", "-q").returncode == 0


def test_a_picture_in_the_audio_setup_data_is_re_encoded_not_copied(tmp_path, sample_clip, face_jpeg):
    clip = tmp_path / "clip.mkv"
    with av.open(str(sample_clip)) as source, av.open(str(clip), "w") as target:
        video = target.add_stream_from_template(source.streams.video[0])
        audio = target.add_stream_from_template(source.streams.audio[0])
        audio.codec_context.extradata = bytes(source.streams.audio[0].codec_context.extradata) + face_jpeg
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = video if packet.stream.type == "video" else audio
                target.mux(packet)
    assert face_jpeg[:256] in clip.read_bytes()
    for suffix in (".mkv", ".mp4"):
        out = tmp_path / f"out{suffix}"
        done = run_cli("anonymize", str(clip), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert "codec setup data holds a JPEG: the audio is re-encoded" in done.stderr
        assert face_jpeg[:64] not in out.read_bytes()
        with av.open(str(out)) as written:
            assert sum(frame.samples for frame in written.decode(audio=0)) > 48000  # re-encoded, still the sound


def test_sound_an_edit_list_cut_off_is_not_written(tmp_path, sample_clip):
    cut = tmp_path / "cut.mp4"
    _ffmpeg("-ss", "1", "-i", str(sample_clip), "-c", "copy", str(cut))  # an edit list hides the first second
    with av.open(str(cut)) as container:
        stream = container.streams.audio[0]
        assert min(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None) < -0.5
    out = tmp_path / "out.mp4"
    assert run_cli("anonymize", str(cut), "-o", str(out), "-q").returncode == 0
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        starts = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None]
    assert min(starts) > -0.05  # an encoder's priming at most, not the second that was cut


def test_sound_is_not_taken_for_a_picture():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()  # compressed sound looks like this
    t = np.arange(4 << 20)
    sounds = {
        "room tone": rng.normal(0, 50, 8 << 20),  # quiet 16-bit samples: ff d8 ff cX all the time
        "a fade-out": np.sin(t * 0.03) * 3000 * np.exp(-t / 4e5),
        "a tone": np.sin(t * 0.03) * 30000,
    }
    for name, samples in sounds.items():
        pcm = samples.astype(np.int16).tobytes()
        assert not [i for i in range(0, len(pcm), 4096) if carried_picture(pcm[i:i + 4096])], name
    assert not [i for i in range(0, len(noise), 1500) if carried_picture(noise[i:i + 1500])]


def test_the_leak_gate_fails_an_output_that_carries_a_picture_beside_its_video(tmp_path, sample_clip, face_jpeg):
    anonymized = tmp_path / "anonymized.mkv"
    assert run_cli("anonymize", str(sample_clip), "-o", str(anonymized), "-q").returncode == 0
    clean = run_cli("evaluate", str(sample_clip), str(anonymized), "--fail-on-leak", "-q")
    assert clean.returncode == 0, clean.stderr
    samples = tmp_path / "samples.raw"
    samples.write_bytes(face_jpeg + b"\0" * (96000 - len(face_jpeg) % 2))
    smuggled = tmp_path / "smuggled.mkv"  # what another tool, or a hand, may have written
    _ffmpeg("-i", str(anonymized), "-f", "s16le", "-ar", "48000", "-ac", "1", "-i", str(samples),
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "pcm_s16le", str(smuggled))
    done = run_cli("evaluate", str(sample_clip), str(smuggled), "--fail-on-leak", "-q")
    assert done.returncode == 3
    assert "the anonymized file holds pictures beside its video (stream #1 (audio): a JPEG at 0.00 s)" in done.stderr
