"""Files of several pictures: none is dropped silently (pages, animation frames, video streams, cover art)."""

from __future__ import annotations

import logging
import shutil
import subprocess

import av
import numpy as np
import pytest
from PIL import Image

from camouflage_video.errors import InputError
from camouflage_video.samples import make_sample_video
from camouflage_video.sources import ImageFolderSource, ImageSource, open_source
from tests.conftest import media_file, run_cli


@pytest.fixture(scope="module")
def face() -> Image.Image:
    return Image.open(media_file("group/ultralytics_zidane.jpg")).convert("RGB").resize((320, 180))


def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.mark.parametrize(
    "pages, message",
    [
        (lambda face: [Image.new("RGB", face.size), face, face], "a TIFF of 3 pages"),  # first page blank
        (lambda face: [face.resize((32, 18)), face], "a TIFF of 2 pages"),  # a preview before the photo
    ],
)
def test_a_multi_page_tiff_is_refused_naming_its_pages(tmp_path, face, pages, message):
    path = tmp_path / "scan.tif"
    first, *rest = pages(face)
    first.save(path, save_all=True, append_images=rest)
    for opener in (open_source, ImageSource):
        with pytest.raises(InputError, match=message) as info:
            opener(path)
        assert "would be lost" in str(info.value) and "\n" not in str(info.value)


def test_a_folder_skips_a_multi_page_tiff_and_says_so(tmp_path, face, caplog):
    face.save(tmp_path / "one.png")
    face.save(tmp_path / "scan.tif", save_all=True, append_images=[face])
    with caplog.at_level(logging.WARNING), ImageFolderSource(tmp_path) as src:
        frames = list(src)
    assert [f.key for f in frames] == ["one.png"]
    assert src.skipped == ["scan.tif"] and src.corrupt_frames == 1
    assert "a TIFF of 2 pages" in caplog.text


def _avif() -> str:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    return ".avif"


@pytest.mark.parametrize("suffix", [".webp", ".png", "avif"])
def test_an_animated_image_is_read_as_a_video_with_every_frame(tmp_path, face, suffix):
    suffix = _avif() if suffix == "avif" else suffix
    path = tmp_path / f"wave{suffix}"
    flipped = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    Image.new("RGB", face.size).save(path, save_all=True, append_images=[face, flipped], duration=[100, 200, 300])
    with open_source(path) as src:
        assert (src.info.kind, src.info.frame_count, src.info.fps) == ("video", 3, 10)
        frames = list(src)
    assert [f.pts for f in frames] == [0, 100, 300]  # each frame at its own duration, in milliseconds
    assert frames[0].image.max() == 0
    assert np.abs(frames[1].image.astype(int) - np.asarray(face)).mean() < 8  # the faces are there, not frame 0
    assert np.abs(frames[2].image.astype(int) - np.asarray(flipped)).mean() < 8
    with pytest.raises(InputError, match="an animated .* of 3 frames"):
        ImageSource(path)  # one frame alone would lose the others


def test_cover_art_is_passed_over_for_the_real_video(tmp_path, caplog):
    clip = make_sample_video(tmp_path / "clip.mp4", seconds=1.0, audio=None)
    cover = tmp_path / "cover.png"
    Image.new("RGB", (64, 64), "red").save(cover)
    covered = tmp_path / "covered.mp4"
    _ffmpeg("-i", str(cover), "-i", str(clip), "-map", "0", "-map", "1", "-c:v:0", "mjpeg", "-c:v:1", "copy",
            "-disposition:v:0", "attached_pic", str(covered))
    with caplog.at_level(logging.WARNING), open_source(covered) as src:
        assert (src.info.width, src.info.height) == (640, 360)
        assert len(list(src)) == 25
    assert "cover picture" in caplog.text


@pytest.mark.parametrize("first", ["still", "clip"])
def test_a_file_of_two_real_video_streams_is_refused_naming_them(tmp_path, first):
    clip = make_sample_video(tmp_path / "clip.mp4", seconds=1.0, audio=None)
    still = tmp_path / "still.png"
    Image.new("RGB", (320, 180), "blue").save(still)
    both = tmp_path / "both.mkv"
    _ffmpeg("-i", str(still if first == "still" else clip), "-i", str(clip), "-map", "0", "-map", "1",
            "-c:v", "mpeg4", str(both))
    with pytest.raises(InputError, match=r"has 2 video streams \(#0 mpeg4 .*; #1 mpeg4 640x360.*would be lost"):
        open_source(both)


@pytest.mark.parametrize("suffix", [".webp", ".png", "avif"])
def test_a_dataset_anonymizes_an_animated_image_as_a_video(tmp_path, face, suffix):
    suffix = _avif() if suffix == "avif" else suffix
    tree = tmp_path / "in"
    tree.mkdir()
    face.save(tree / f"wave{suffix}", save_all=True, append_images=[face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)],
              duration=100)
    done = run_cli("dataset", str(tree), str(tmp_path / "out"), "-q")
    assert done.returncode == 0, done.stderr
    with av.open(str(tmp_path / "out" / "wave.mp4")) as container:  # named as a video, every frame in it
        assert sum(1 for _ in container.decode(video=0)) == 2


def test_an_image_folder_skips_an_animation_or_a_clip_named_as_a_picture_and_says_so(tmp_path, face, caplog):
    face.save(tmp_path / "one.png")
    face.save(tmp_path / "anim.png", "GIF", save_all=True, append_images=[Image.new("RGB", face.size)], duration=100)
    make_sample_video(tmp_path / "clip.mp4", seconds=0.5, audio=None).rename(tmp_path / "clip.jpg")
    with caplog.at_level(logging.WARNING), ImageFolderSource(tmp_path) as src:
        frames = list(src)
    assert [f.key for f in frames] == ["one.png"]  # not their first pictures alone
    assert sorted(src.skipped) == ["anim.png", "clip.jpg"]
    assert "an animated GIF of 2 frames" in caplog.text and "a video, not a picture" in caplog.text


def test_subtitles_are_not_carried_and_the_run_says_so(tmp_path, caplog):
    clip = make_sample_video(tmp_path / "clip.mp4", seconds=1.0, audio=None)
    (tmp_path / "names.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nJane Doe, 12 High Street\n")
    subtitled = tmp_path / "subtitled.mkv"
    _ffmpeg("-i", str(clip), "-i", str(tmp_path / "names.srt"), "-map", "0", "-map", "1", "-c", "copy",
            str(subtitled))
    with caplog.at_level(logging.WARNING), open_source(subtitled) as src:
        assert src.info.kind == "video"
    assert "its subtitle streams are not carried into the output" in caplog.text


def test_an_icon_is_anonymized_at_its_largest_size_and_the_others_are_named(tmp_path, face, caplog):
    face.resize((128, 128)).save(tmp_path / "app.ico", sizes=[(16, 16), (48, 48), (128, 128)])
    with caplog.at_level(logging.WARNING), open_source(tmp_path / "app.ico") as src:
        (frame,) = list(src)
    assert frame.image.shape[:2] == (128, 128)  # FFmpeg decodes the first, 16x16
    assert "3 sizes of the icon: the largest is anonymized and written" in caplog.text


def test_the_second_picture_of_a_stereo_jpeg_is_named_as_not_written(tmp_path, face, caplog):
    face.save(tmp_path / "pair.jpg", "MPO", save_all=True, append_images=[face])
    with caplog.at_level(logging.WARNING), open_source(tmp_path / "pair.jpg") as src:
        assert len(list(src)) == 1
    assert "1 more picture(s) after the first (a stereo view, a preview) not written" in caplog.text
