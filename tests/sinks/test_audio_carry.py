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


def test_a_picture_written_as_audio_samples_fails_the_output_and_leaves_no_file(tmp_path, sample_clip, face_jpeg):
    samples = tmp_path / "samples.raw"
    samples.write_bytes(b"\0" * 9600 + face_jpeg + b"\0" * (96000 - len(face_jpeg) % 2))  # after 0.1 s of silence
    clip = tmp_path / "clip.mkv"
    _ffmpeg("-i", str(sample_clip), "-f", "s16le", "-ar", "48000", "-ac", "1", "-i", str(samples),
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "pcm_s16le", str(clip))
    for suffix in (".mkv", ".mov"):  # both copy PCM
        out = tmp_path / f"out{suffix}"
        done = run_cli("anonymize", str(clip), "-o", str(out), "-q")
        assert done.returncode != 0
        assert "its audio carries a JPEG at 0.0" in done.stderr and len(done.stderr.strip().splitlines()) == 1
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
            assert written.streams.audio[0].duration or written.streams.audio[0].frames or written.duration


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
    noise = np.random.default_rng(0).integers(-32768, 32767, 8 << 20, dtype=np.int16).tobytes()  # 16 MB
    tone = (np.sin(np.arange(4 << 20) * 0.03) * 30000).astype(np.int16).tobytes()
    assert carried_picture(noise) is None and carried_picture(tone) is None


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
