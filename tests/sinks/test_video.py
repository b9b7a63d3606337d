from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from camouflage_video.errors import ConfigError, OutputError
from camouflage_video.samples import make_sample_video
from camouflage_video.sinks import VideoFileSink, default_output, open_sink
from camouflage_video.sources import VideoFileSource
from tests.conftest import ffprobe, read_frames, run_cli


def copy_through(src_path, out_path, **kwargs):
    with VideoFileSource(src_path) as src:
        sink = open_sink(out_path, src.info, **kwargs)
        for frame in src:
            sink.write(frame, frame.image)
        sink.close()
        return src.info


def audio_seconds(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        s = c.streams.audio[0]
        last = max(p.pts + (p.duration or 0) for p in c.demux(s) if p.pts is not None)
        return float(last * s.time_base), s.codec_context.name


@pytest.mark.parametrize(
    "src_name, audio, out_name, expected_audio",
    [
        ("in.mp4", "aac", "out.mp4", "aac"),  # remuxed as is
        ("in.mkv", "pcm_s16le", "out.mp4", "aac"),  # mp4 does not take raw PCM: re-encoded
        ("in.mkv", "libopus", "out.webm", "opus"),
        ("in.mp4", "aac", "out.mkv", "aac"),
        ("in.mov", "aac", "out.mov", "aac"),
    ],
)
def test_timestamps_frames_and_audio_survive(tmp_path, src_name, audio, out_name, expected_audio):
    src = make_sample_video(tmp_path / src_name, seconds=1.2, fps=Fraction(30000, 1001), audio=audio)
    out = tmp_path / out_name
    copy_through(src, out)
    in_frames, in_pts, in_tb = read_frames(src)
    out_frames, out_pts, out_tb = read_frames(out)
    assert len(out_frames) == len(in_frames) == 36
    assert [float(p * out_tb) for p in out_pts] == pytest.approx([float(p * in_tb) for p in in_pts], abs=1e-3)
    seconds_in, _ = audio_seconds(src)
    seconds_out, codec = audio_seconds(out)
    assert codec == expected_audio
    assert seconds_out == pytest.approx(seconds_in, abs=0.05)
    assert not list(tmp_path.glob(".*partial*"))


def test_no_audio_drops_it(tmp_path):
    src = make_sample_video(tmp_path / "in.mp4", seconds=0.5)
    copy_through(src, tmp_path / "out.mp4", audio=False)
    assert audio_seconds(tmp_path / "out.mp4") is None


def test_ffprobe_agrees_on_frames_size_and_rate(tmp_path):
    src = make_sample_video(tmp_path / "in.mp4", seconds=1.0, fps=Fraction(24000, 1001))
    copy_through(src, tmp_path / "out.mp4")
    lines = ffprobe(tmp_path / "out.mp4", "stream=codec_type,width,height,avg_frame_rate,nb_read_frames").split()
    video = next(line for line in lines if line.startswith("video"))
    assert video.split(",") == ["video", "640", "360", "24000/1001", "24"]


def test_odd_frame_size_is_kept(tmp_path):
    src = make_sample_video(tmp_path / "odd.mkv", seconds=0.4, size=(321, 181), audio=None, codec="ffv1")
    copy_through(src, tmp_path / "out.mp4")
    frames, _, _ = read_frames(tmp_path / "out.mp4")
    assert frames[0].shape == (181, 321, 3)


def test_abort_leaves_nothing_under_the_final_name(tmp_path):
    src = make_sample_video(tmp_path / "in.mp4", seconds=0.4)
    with VideoFileSource(src) as source:
        sink = VideoFileSink(tmp_path / "out.mp4", source.info, audio_from=src)
        for frame in source:
            sink.write(frame, frame.image)
        sink.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_sink_refuses_unknown_extension_and_unwritable_folder(tmp_path):
    src = make_sample_video(tmp_path / "in.mp4", seconds=0.2, audio=None)
    with VideoFileSource(src) as source:
        with pytest.raises(ConfigError, match="unsupported output extension"):
            open_sink(tmp_path / "out.xyz", source.info)
        with pytest.raises(OutputError, match="does not exist"):
            open_sink(tmp_path / "nowhere" / "out.mp4", source.info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize(
    "uri, kind, expected",
    [
        ("clips/street.mp4", "video", "clips/street_anonymized.mp4"),
        ("clips/street.MOV", "video", "clips/street_anonymized.mov"),
        ("clips/crowd.avi", "video", "clips/crowd_anonymized.mp4"),
        ("clips/raw.h264", "video", "clips/raw_anonymized.mp4"),
        ("photos/", "folder", "photos_anonymized"),
        ("me.jpg", "image", "me_anonymized.jpg"),
    ],
)
def test_default_output_names(uri, kind, expected):
    assert default_output(uri, kind).as_posix() == expected


def test_pixels_round_trip_closely(tmp_path):
    src = make_sample_video(tmp_path / "in.mp4", seconds=0.4, audio=None)
    copy_through(src, tmp_path / "out.mp4")
    a, _, _ = read_frames(src)
    b, _, _ = read_frames(tmp_path / "out.mp4")
    assert np.abs(a[5].astype(int) - b[5]).mean() < 3  # crf 18: visually lossless


def colour_bars_709(path, frames=6):
    """A BT.709-tagged clip of saturated bars, as phones and cameras write HD footage."""
    bars = np.zeros((96, 128, 3), np.uint8)
    colours = [(235, 16, 16), (16, 235, 16), (16, 16, 235), (235, 235, 16), (16, 235, 235), (200, 60, 160)]
    for i, rgb in enumerate(colours):
        bars[:, i * 21 : (i + 1) * 21 + 2] = rgb
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
        cc.color_range = 1
        cc.options = {"crf": "10"}
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(bars, format="rgb24").reformat(format="yuv420p", dst_colorspace=1)
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return path


def colour_tags(path):
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return int(cc.colorspace), int(cc.color_primaries), int(cc.color_trc)


def test_bt709_footage_keeps_its_colours_and_tags(tmp_path):
    src = colour_bars_709(tmp_path / "in709.mp4")
    info = copy_through(src, tmp_path / "out.mp4")
    assert info.to_dict()["color"] == {"space": 1, "primaries": 1, "transfer": 1}  # what --stats reports
    assert colour_tags(tmp_path / "out.mp4") == (1, 1, 1)
    a, _, _ = read_frames(src)  # PyAV decodes each file with the matrix it is tagged with
    b, _, _ = read_frames(tmp_path / "out.mp4")
    # Before: written with swscale's default BT.601 matrix and untagged, these bars read ~11 levels off in any
    # player that takes the footage for what it was (BT.709); tagged and encoded with BT.709 they do not.
    assert np.abs(a[3].astype(int) - b[3]).mean() < 2


def test_untagged_footage_stays_untagged(tmp_path):
    src = make_sample_video(tmp_path / "in.mp4", seconds=0.2, audio=None)
    copy_through(src, tmp_path / "out.mp4")
    assert colour_tags(tmp_path / "out.mp4") == colour_tags(src) == (2, 2, 2)


def test_a_resolution_change_mid_file_is_scaled_to_fit_not_cropped(tmp_path):
    """An H.264 stream that switches from 320x180 to 640x360 halfway: the second half keeps its whole picture."""
    first = make_sample_video(tmp_path / "a.h264", seconds=0.4, size=(320, 180), audio=None)
    second = make_sample_video(tmp_path / "b.h264", seconds=0.4, size=(640, 360), audio=None)
    spliced = tmp_path / "spliced.h264"
    spliced.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / "out.mp4"
    with VideoFileSource(spliced) as src:
        sink = open_sink(out, src.info)
        originals = []
        for frame in src:
            originals.append(frame.image)
            sink.write(frame, frame.image)
        sink.close()
    assert {o.shape for o in originals} == {(180, 320, 3), (360, 640, 3)}
    frames, _, _ = read_frames(out)
    assert len(frames) == len(originals) and {f.shape for f in frames} == {(180, 320, 3)}
    assert sink.describe()["resized_frames"] == sum(o.shape[0] == 360 for o in originals) > 0
    import cv2

    last = cv2.resize(originals[-1], (320, 180), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[-1].astype(int) - last).mean() < 6  # the whole picture, scaled; a crop differs a lot
    cropped = originals[-1][:180, :320]
    assert np.abs(frames[-1].astype(int) - cropped).mean() > 3 * np.abs(frames[-1].astype(int) - last).mean()


def test_a_picture_of_another_shape_mid_file_keeps_its_shape_between_black_bars(tmp_path):
    """A square picture into a 16:9 output: fitted at its own shape, not stretched to a distorted one."""
    from camouflage_video.frame import Frame

    src = make_sample_video(tmp_path / "in.mp4", seconds=0.2, size=(320, 180), audio=None)
    with VideoFileSource(src) as source:
        info = source.info
        first = next(iter(source))
    sink = open_sink(tmp_path / "out.mp4", info)
    square = np.zeros((180, 180, 3), np.uint8)
    square[:, :90] = (200, 60, 60)  # left half red, right half green: a stretch moves the edge off centre
    square[:, 90:] = (60, 200, 60)
    sink.write(first, first.image)
    sink.write(Frame(image=square, index=1, pts=first.pts + 1, time_base=first.time_base), square)
    sink.close()
    frames, _, _ = read_frames(tmp_path / "out.mp4")
    last = frames[-1].astype(int)
    assert last.shape == (180, 320, 3) and sink.describe()["resized_frames"] == 1
    assert last[:, :60].max() < 40 and last[:, -60:].max() < 40  # black bars either side (70 px each)
    assert np.abs(last[90, 75:160] - (200, 60, 60)).mean() < 20  # the red half, at its own width
    assert np.abs(last[90, 165:245] - (60, 200, 60)).mean() < 20  # the green half, edge at the centre


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run_to_that_output(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".out.{int(dead.stdout)}-0123abcd.partial.mp4"  # what kill -9 leaves
    left.write_bytes(b"\0" * 48)
    other = tmp_path / ".other.999999-0123abcd.partial.mp4"  # another output's: not ours to remove
    other.write_bytes(b"\0")
    src = make_sample_video(tmp_path / "in.mp4", seconds=0.2, audio=None)
    copy_through(src, tmp_path / "out.mp4")
    assert not left.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.glob(".*partial*")) == [other.name]


# -- a live run's recording when the run fails ------------------------------------------------------------------

def _live_info(live: bool):
    from camouflage_video.sources.base import SourceInfo

    return SourceInfo(uri="rtsp://cam/s" if live else "in.mp4", kind="stream" if live else "video", width=64,
                      height=48, fps=Fraction(25), time_base=Fraction(1, 90000), live=live)


def _write_levels(sink, count: int, level: int = 120) -> None:
    from camouflage_video.frame import Frame

    for index in range(count):
        image = np.full((48, 64, 3), level, np.uint8)
        sink.write(Frame(image, index=index, pts=index * 3600, time_base=Fraction(1, 90000)), image)


@pytest.mark.parametrize("live", [True, False])
def test_a_failed_run_keeps_a_live_recording_beside_its_name_and_discards_a_files_output(tmp_path, live) -> None:
    """A file's output can be made again (and half of one passed off as whole is worse than none); a live
    feed's anonymized minutes cannot: the runner's abort() finalizes them, beside the name (never over an
    earlier file, and where a rerun of the same command, which writes rec.mp4, does not replace them)."""
    (tmp_path / "rec.mp4").write_bytes(b"an earlier run's file")
    sink = open_sink(tmp_path / "rec.mp4", _live_info(live))
    _write_levels(sink, 40)
    sink.abort()  # what the runner does when anything else in the run failed
    assert (tmp_path / "rec.mp4").read_bytes() == b"an earlier run's file"
    if not live:
        assert [p.name for p in tmp_path.iterdir()] == ["rec.mp4"]
        return
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-1.mp4", "rec.mp4"]
    assert sink.describe()["uri"] == str(tmp_path / "rec-1.mp4")  # what the stats report
    frames, _, _ = read_frames(tmp_path / "rec-1.mp4")
    assert len(frames) == 40 and {int(f.mean()) for f in frames} <= {119, 120, 121}


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_live_recording_whose_finalizing_fails_keeps_what_of_it_plays(tmp_path, monkeypatch, suffix) -> None:
    sink = open_sink(tmp_path / f"rec{suffix}", _live_info(True))
    _write_levels(sink, 90)

    def encoder_failed(self, packets, end):  # noqa: ANN001
        raise OutputError(f"rec{suffix}: writing failed (Input/output error)")

    monkeypatch.setattr(VideoFileSink, "_last_lasting", encoder_failed)
    with pytest.raises(OutputError):
        sink.close()
    assert [p.name for p in tmp_path.iterdir()] == [f"rec-1{suffix}"]  # beside its name; no temporary left
    frames, _, _ = read_frames(tmp_path / f"rec-1{suffix}")
    assert 25 <= len(frames) <= 90 and {int(f.mean()) for f in frames} <= {119, 120, 121}


def test_a_live_run_that_fails_keeps_its_recording_and_still_fails(tmp_path) -> None:
    from camouflage_video.pipelines.classic import ClassicObfuscator
    from camouflage_video.runner import Runner
    from tests.fakes import MemorySink, MemorySource

    class BrokenRestream(MemorySink):
        remote = True

        def write(self, frame, image):  # noqa: ANN001
            if frame.index == 60:
                raise OutputError("rtmp://server/live/***: the server went away")
            super().write(frame, image)

    source = MemorySource([np.full((48, 64, 3), 120, np.uint8)] * 100)
    source.info = _live_info(True)
    recording = open_sink(tmp_path / "rec.mp4", source.info)
    with pytest.raises(OutputError, match="went away"):
        Runner(source, [recording, BrokenRestream()], [], ClassicObfuscator("blur"), progress=False).run()
    frames, _, _ = read_frames(tmp_path / "rec-1.mp4")
    assert len(frames) in (60, 61)  # up to the picture the restream failed on (written to the file first or not)



def test_a_stop_while_a_failed_recording_is_checked_keeps_it_whole_and_says_so(tmp_path, monkeypatch, caplog):
    from camouflage_video.sinks import video
    from camouflage_video.sinks.base import claim

    sink = open_sink(tmp_path / "rec.mkv", _live_info(True))
    _write_levels(sink, 60)
    monkeypatch.setattr(VideoFileSink, "_mux", lambda self, packets: (_ for _ in ()).throw(OutputError("disk full")))
    with pytest.raises(OutputError):
        _write_levels(sink, 1)
    monkeypatch.undo()

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - Ctrl-C while the copy is checked
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "salvage_recording", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sink.abort()
    assert "left under its temporary name for 'camouflage-video recover'" in caplog.text
    (temporary,) = tmp_path.glob(".*")
    held = claim(temporary)  # let go of: a recovery can take it
    assert held is not None
    os.close(held)


FILLING_WRITER = """
import sys
from fractions import Fraction
import numpy as np
from camouflage_video.errors import OutputError
from camouflage_video.frame import Frame
from camouflage_video.sinks import open_sink
from camouflage_video.sources.base import SourceInfo
TB = Fraction(1, 90000)
info = SourceInfo(uri="rtsp://cam/s", kind="stream", width=160, height=120, fps=Fraction(25), time_base=TB, live=True)
sink = open_sink(sys.argv[1], info)  # a live run's recording
noise = np.random.default_rng(0)
for index in range(100000):
    image = np.full((120, 160, 3), 200, np.uint8)
    image[:60] = noise.integers(0, 256, (60, 160, 3), np.uint8)  # what fills the disk fast
    try:
        sink.write(Frame(image, index=index, pts=round(index * 0.04 / TB), time_base=TB), image)
    except OutputError as exc:
        print(index, flush=True)
        sink.abort()  # what the runner does with a failed run's outputs
        break
"""


def _fill(path) -> int:
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-c", FILLING_WRITER, str(path)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert done.returncode == 0 and done.stdout.strip().isdigit(), done.stderr
    return int(done.stdout)


def _kept_pictures(path) -> list[int]:
    with av.open(str(path)) as container:
        return [int(f.to_ndarray(format="rgb24")[60:].mean()) for f in container.decode(video=0)]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_recording_that_fills_the_disk_is_published_with_what_of_it_plays(small_disk, suffix) -> None:
    small_disk = small_disk(3 << 20)
    written = _fill(small_disk / f"rec{suffix}")
    assert [p.name for p in small_disk.iterdir()] == [f"rec-1{suffix}"]
    pictures = _kept_pictures(small_disk / f"rec-1{suffix}")
    # at most the cluster or fragment it failed in, and the pictures still in the encoder, are lost
    assert written - 60 <= len(pictures) < written and set(pictures) <= set(range(197, 204)), (written, pictures)


@pytest.mark.parametrize("codec", ["mjpeg", "libx265"])
def test_an_encoder_of_another_pixel_format_or_a_chatty_one_writes_quietly(tmp_path, sample_clip, codec):
    out = tmp_path / "out.mkv"
    done = run_cli("anonymize", str(sample_clip), "-o", str(out), "--codec", codec, "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # x265 printed its settings, twenty lines, whatever -q said
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == {"mjpeg": "mjpeg", "libx265": "hevc"}[codec]
        assert sum(1 for _ in container.decode(video=0)) == 50
