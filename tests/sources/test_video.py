from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.samples import make_sample_video
from camouflage_video.sources import ImageFolderSource, ImageSource, VideoFileSource, open_source
from tests.conftest import media_file


def test_frames_carry_source_timestamps_and_exact_fps(tmp_path):
    clip = make_sample_video(tmp_path / "ntsc.mp4", seconds=1.0, fps=Fraction(30000, 1001), audio=None)
    with VideoFileSource(clip) as src:
        assert src.info.fps == Fraction(30000, 1001)  # never rounded to 29 or 30
        frames = list(src)
    assert len(frames) == 30
    assert [f.index for f in frames] == list(range(30))
    steps = {b.pts - a.pts for a, b in zip(frames, frames[1:], strict=False)}
    assert len(steps) == 1
    assert float(steps.pop() * frames[0].time_base) == pytest.approx(1001 / 30000)


def test_variable_frame_rate_is_kept(tmp_path):
    durations = [100, 100, 300, 50, 50, 200, 100, 100]
    clip = make_sample_video(tmp_path / "vfr.mkv", fps=Fraction(25), audio=None, frame_durations=durations)
    with VideoFileSource(clip) as src:
        times = [float(f.time) for f in src]
    assert np.allclose(np.diff(times), np.array(durations[:-1]) / 2500, atol=1e-3)


def test_iteration_is_lazy(tmp_path):
    clip = make_sample_video(tmp_path / "lazy.mp4", seconds=2.0, audio=None)
    with VideoFileSource(clip) as src:
        frames = iter(src)
        first = next(frames)
        assert first.index == 0 and first.image.shape == (360, 640, 3)


@pytest.mark.parametrize(
    "name, count",
    [
        ("videos/intel_asl_thanks.mkv", 51),
        ("videos/dlib_elon-musk-smoke.gif", 35),
        ("videos/dlib_MOT20-08-raw_shorter.h264", 127),  # raw Annex-B: no container timestamps
        ("videos/opencv_vtest.avi", None),
    ],
)
def test_real_containers_decode(name, count):
    with VideoFileSource(media_file(name)) as src:
        n, last_pts = 0, -1
        for frame in src:
            assert frame.pts is not None and frame.pts > last_pts  # strictly increasing, even for raw h264
            last_pts = frame.pts
            n += 1
            if count is None and n >= 30:
                break
    assert count is None or n == count


def test_rotation_metadata_is_honoured(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    import cv2

    clip = make_sample_video(tmp_path / "flat.mp4", seconds=0.4, size=(320, 180), audio=None)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated)],
        check=True,
    )
    # FFmpeg's own autorotation is the reference picture
    reference_png = tmp_path / "reference.png"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(rotated), "-frames:v", "1", str(reference_png)], check=True)
    reference = cv2.imread(str(reference_png))[..., ::-1]
    with VideoFileSource(rotated) as src:
        assert src.info.rotation != 0
        assert (src.info.width, src.info.height) == (180, 320)
        frame = next(iter(src))
    assert frame.image.shape == reference.shape == (320, 180, 3)
    assert np.abs(frame.image.astype(int) - reference).mean() < 2


def test_corrupt_packets_in_the_middle_are_skipped_and_counted(tmp_path):
    clip = make_sample_video(tmp_path / "clean.mkv", seconds=2.0, audio=None, codec="mpeg4")
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    for offset in rng.integers(middle - 20000, middle + 20000, 400):
        data[offset] = rng.integers(0, 256)
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(bytes(data))
    with VideoFileSource(broken) as src:
        frames = list(src)
    assert 0 < len(frames) <= 50  # decoding went on past the damage
    assert frames[-1].index == len(frames) - 1


def test_image_and_folder_sources(tmp_path, astronaut):
    import cv2

    (tmp_path / "a" / "b").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "a" / "b" / "two.png"), astronaut[..., ::-1])
    cv2.imwrite(str(tmp_path / "a" / "one.jpg"), astronaut[..., ::-1])
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "bad.png").write_bytes(b"\x89PNG broken")
    with ImageFolderSource(tmp_path / "a") as src:
        frames = list(src)
        assert [f.key for f in frames] == ["b/two.png", "one.jpg"]
        assert src.corrupt_frames == 1 and src.skipped == ["bad.png"]
    assert np.array_equal(frames[0].image, astronaut)  # RGB order, lossless png
    with ImageSource(tmp_path / "a" / "one.jpg") as src:
        assert src.info.kind == "image" and len(list(src)) == 1


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "setup, error, message",
    [
        (lambda p: p / "missing.mp4", InputNotFoundError, "no such file"),
        (lambda p: _write(p / "empty.mp4", b""), InputError, "empty"),
        (lambda p: _write(p / "text.mp4", b"hello\n"), InputError, "not a readable video"),
        (lambda p: (p / "empty_dir").mkdir() or p / "empty_dir", InputError, "no images"),
    ],
)
def test_bad_inputs_raise_typed_one_line_errors(tmp_path, setup, error, message):
    with pytest.raises(error, match=message) as info:
        open_source(setup(tmp_path))
    assert "\n" not in str(info.value)
