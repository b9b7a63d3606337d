"""Segmented recordings: consecutive files cut between two pictures, audio cut at the same instant."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError, OutputError
from camouflage_video.frame import Frame
from camouflage_video.sinks.segments import SegmentedVideoSink, recover_stale_segments
from camouflage_video.sinks.video import VideoFileSink
from camouflage_video.sources.base import SourceInfo
from tests.conftest import REPO

TB = Fraction(1, 90000)
INFO = SourceInfo(uri="rtsp://cam/s", kind="stream", width=64, height=48, fps=Fraction(25), time_base=TB, live=True,
                  has_audio=True)


def record(path: Path, seconds: float, times: list[float], track: AudioTimeline | None) -> SegmentedVideoSink:
    sink = SegmentedVideoSink(path, INFO, seconds=seconds, live_audio=track, wall_origin=1_700_000_000.0)
    for index, at in enumerate(times):
        if track is not None:
            track.add(np.full((round(0.04 * track.rate), 1), 1000, np.int16), at)
        image = np.full((48, 64, 3), index % 250, np.uint8)
        sink.write(Frame(image, index=index, pts=round(at / TB), time_base=TB), image)
    sink.close()
    return sink


def probe(path: Path) -> tuple[float, list[float], int]:
    """(start on the run's clock, picture times, audio samples) of a segment."""
    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}  # Matroska says COMMENT
        start = float(re.search(r"starts ([0-9.]+) s", tags["comment"]).group(1))
        pictures = [float(f.time) for f in container.decode(video=0)]
        container.seek(0)
        samples = sum(f.samples for f in container.decode(audio=0)) if container.streams.audio else 0
    return start, pictures, samples


def test_segments_are_cut_between_pictures_with_nothing_lost_or_repeated(tmp_path: Path) -> None:
    times = [i * 0.04 + (0.03 if i % 7 == 0 else 0) for i in range(100)]  # uneven, as a live feed
    sink = record(tmp_path / "door.mp4", 1.0, times, None)
    assert len(sink.segments) == 4 and all(re.fullmatch(r"door_\d{8}-\d{6}(-\d+)?\.mp4", p.name)
                                           for p in sink.segments)
    seen = []
    for path in sink.segments:
        start, pictures, _ = probe(path)
        assert pictures[0] == 0.0  # each file's timeline starts at 0: it plays on its own
        seen += [round(start + t, 3) for t in pictures]
    assert seen == [round(t, 3) for t in times]  # every picture once, in order, at its own time
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("name", ["door.mp4", "door.mkv"])
def test_each_segment_lasts_until_the_next_one_starts(tmp_path: Path, name: str) -> None:
    # A slow, uneven feed (8-15 pictures a second) of changing pictures: an encoder that reordered them would
    # end each MP4 off the next segment's start by up to its reorder delay (a tenth of a second and more).
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.066, 0.125, 60)).tolist()
    sink = SegmentedVideoSink(tmp_path / name, INFO, seconds=1.5, wall_origin=1_700_000_000.0)
    for index, at in enumerate(times):
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        sink.write(Frame(image, index=index, pts=round(at / TB), time_base=TB), image)
    sink.close()
    parts = []
    for path in sink.segments:
        with av.open(str(path)) as container:
            parts.append((probe(path)[0], container.duration / av.time_base))
    assert len(parts) >= 3
    for (start, duration), (following, _) in zip(parts, parts[1:], strict=False):
        assert abs(start + duration - following) < 0.002, (start, duration, following)


def test_audio_is_cut_at_the_same_instant_as_the_pictures(tmp_path: Path) -> None:
    track = AudioTimeline(48000, 1)
    times = [i * 0.04 for i in range(75)]
    sink = record(tmp_path / "hall.mkv", 1.0, times, track)
    parts = [probe(p) for p in sink.segments]
    starts = [start for start, _, _ in parts]
    for (start, _, samples), following in zip(parts, starts[1:] + [times[-1] + 0.04], strict=True):
        # each segment's audio lasts until the next segment starts (AAC frames: within one of 1024 samples)
        assert abs(samples / 48000 - (following - start)) <= 1024 / 48000, (start, samples, following)


def test_segments_shorter_than_a_second_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1 s"):
        SegmentedVideoSink(tmp_path / "door.mp4", INFO, seconds=0.5)


def write_pictures(sink: SegmentedVideoSink, count: int, level: int = 120) -> None:
    for index in range(count):
        image = np.full((48, 64, 3), level, np.uint8)
        sink.write(Frame(image, index=index, pts=round(index * 0.04 / TB), time_base=TB), image)


@pytest.mark.parametrize("salvage", [True, False])
def test_a_failed_run_finalizes_the_segment_being_written_only_with_salvage(tmp_path: Path, salvage: bool) -> None:
    sink = SegmentedVideoSink(tmp_path / "door.mp4", INFO, seconds=600, salvage=salvage)
    write_pictures(sink, 30)
    sink.abort()  # what the runner does when the feed or another output fails
    published = list(tmp_path.glob("door_*.mp4"))
    assert not list(tmp_path.glob(".*")), "a temporary was left behind"
    if not salvage:
        assert published == []
        return
    assert len(published) == 1
    _, pictures, _ = probe(published[0])
    assert len(pictures) == 30 and pictures[0] == 0.0


@pytest.mark.parametrize("before", [10, 90])
def test_a_segment_whose_own_writing_failed_keeps_only_what_of_it_plays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         before: int) -> None:
    """The file's state is unknown, as after a kill: it is never finalized as it is, and what reads back and
    plays (its complete one-second fragments) is kept; 10 pictures fill none."""
    sink = SegmentedVideoSink(tmp_path / "door.mp4", INFO, seconds=600, salvage=True)
    write_pictures(sink, before)

    def disk_full(packets: object) -> None:
        raise OutputError("door.mp4: writing failed (No space left on device)")

    monkeypatch.setattr(VideoFileSink, "_mux", lambda self, packets: disk_full(packets))
    with pytest.raises(OutputError):
        write_pictures(sink, 1)
    monkeypatch.undo()
    sink.abort()
    assert not list(tmp_path.glob(".*")), "a temporary was left behind"
    published = list(tmp_path.iterdir())
    if before == 10:
        assert published == []
        return
    (segment,) = published
    _, pictures, _ = probe(segment)
    assert 50 <= len(pictures) <= before and pictures[0] == 0.0
    with av.open(str(segment)) as container:
        assert {int(f.to_ndarray(format="rgb24").mean()) for f in container.decode(video=0)} <= {119, 120, 121}


KILLED_WRITER = """
import sys, time
from fractions import Fraction
import numpy as np
from camouflage_video.frame import Frame
from camouflage_video.sinks.segments import SegmentedVideoSink, recover_stale_segments
from camouflage_video.sources.base import SourceInfo
TB = Fraction(1, 90000)
info = SourceInfo(uri="rtsp://cam/s", kind="stream", width=64, height=48, fps=Fraction(25), time_base=TB, live=True)
if sys.argv[3] == "live-file":  # what `anonymize <live> -o FILE` opens
    from camouflage_video.sinks import open_sink
    sink = open_sink(sys.argv[1], info)
else:
    sink = SegmentedVideoSink(sys.argv[1], info, seconds=None if sys.argv[3] == "one-file" else 600)
for index in range(100000):
    image = np.full((48, 64, 3), 200, np.uint8)
    image[:, (index * 3) % 64] = 40  # a moving line: the encoder has motion to predict (B-frames)
    sink.write(Frame(image, index=index, pts=round(index * 0.04 / TB), time_base=TB), image)
    if index == int(sys.argv[2]):
        print("written", flush=True)
    time.sleep(0.002)
"""


def kill_a_writer(base: Path, mode: str) -> None:
    """A process writing ``base`` (``segments`` of 600 s, ``one-file``, or ``live-file``: a live run's own
    recording, B-frames on), killed after four seconds of pictures."""
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(base), "100", mode], stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert writer.stdout.readline().strip() == b"written"
    finally:
        writer.kill()  # kill -9: nothing is finalized
        writer.wait()


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_a_killed_writers_segment_is_recovered_up_to_its_last_complete_fragment(tmp_path: Path, suffix: str) -> None:
    base = tmp_path / f"door{suffix}"
    kill_a_writer(base, "segments")
    (temporary,) = tmp_path.glob(".*")
    with open(temporary, "ab") as file:  # the write it was killed in: a box that runs past the end
        file.write(b"\x00\x01\x00\x00moof" + b"\x00" * 32)
    recovered, removed = recover_stale_segments(base)
    assert removed == [] and len(recovered) == 1, (recovered, removed)
    assert not list(tmp_path.glob(".*"))
    _, pictures, _ = probe(recovered[0])
    assert len(pictures) >= 50 and pictures[0] == 0.0  # at least the pictures of its complete fragments
    with av.open(str(recovered[0])) as container:  # they are the written pictures, decoded whole
        levels = {int(np.median(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)}
    assert levels <= set(range(195, 206)), levels


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_a_killed_writers_matroska_segment_keeps_what_reads_back(tmp_path: Path, suffix: str) -> None:
    base = tmp_path / f"hall{suffix}"
    kill_a_writer(base, "segments")
    (temporary,) = tmp_path.glob(".*")
    with open(temporary, "ab") as file:  # the write it was killed in: a cluster cut short
        file.write(b"\x1f\x43\xb6\x75\x01\x00\x00\x00\x00\x10\x00\x00" + b"\xa3" * 40)
    recovered, removed = recover_stale_segments(base)
    assert removed == [] and len(recovered) == 1, (recovered, removed)
    assert not list(tmp_path.glob(".*"))
    _, pictures, _ = probe(recovered[0])
    assert len(pictures) >= 50 and pictures[0] == 0.0  # its complete clusters: a second at most is lost
    with av.open(str(recovered[0])) as container:
        levels = {int(np.median(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)}
    assert levels <= set(range(195, 206)), levels


def test_a_recording_in_one_file_is_never_replaced_by_the_next_run(tmp_path: Path) -> None:
    # A service's recording without segments: one file per run of the camera's process. A killed run's file is
    # recovered under the recording's name; the next run writes door-1.mp4 beside it, and so on.
    base = tmp_path / "door.mp4"
    kill_a_writer(base, "one-file")
    following = SegmentedVideoSink(base, INFO, seconds=None, wall_origin=1_700_000_000.0)  # recovers first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["door.mp4"]
    write_pictures(following, 30)
    following.close()
    third = SegmentedVideoSink(base, INFO, seconds=None)
    write_pictures(third, 30)
    third.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["door-1.mp4", "door-2.mp4", "door.mp4"]
    assert len(probe(base)[1]) >= 50  # the killed run's pictures are still there
    assert [len(probe(tmp_path / n)[1]) for n in ("door-1.mp4", "door-2.mp4")] == [30, 30]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_killed_live_runs_recording_is_recovered_whole_by_the_next_run_to_its_name(tmp_path: Path, suffix: str):
    """A live run's recording keeps B-frames (Matroska then stores pictures without a dts); the next run to
    that name is a file run, which recovers it beside its own output rather than deleting it."""
    from camouflage_video.sinks import open_sink

    base = tmp_path / f"rec{suffix}"
    kill_a_writer(base, "live-file")
    assert [p.name.split(".")[-2] for p in tmp_path.glob(".*")] == ["recording"]
    file_info = SourceInfo(uri="in.mp4", kind="video", width=64, height=48, fps=Fraction(25), time_base=TB)
    following = open_sink(base, file_info)  # recovers first
    write_pictures(following, 10)
    following.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"rec-1{suffix}", f"rec{suffix}"]
    with av.open(str(tmp_path / f"rec-1{suffix}")) as container:
        packets = sum(1 for p in container.demux(video=0) if p.size)
    with av.open(str(tmp_path / f"rec-1{suffix}")) as container:
        levels = [int(np.median(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]
    assert len(levels) == packets >= 40, (len(levels), packets)  # every picture kept decodes, the first too
    assert set(levels) <= set(range(195, 206)), levels


@pytest.mark.parametrize("other", ["cam_a", "cam-1"])
def test_a_killed_recording_is_recovered_only_by_a_run_to_its_own_name(tmp_path: Path, other: str) -> None:
    """cam_a.mkv (or cam-1.mkv) is another output than cam.mkv: recovered by cam.mkv's run, it would be
    published under its own name, and the next run to that name would replace it."""
    from camouflage_video.sinks import open_sink

    kill_a_writer(tmp_path / f"{other}.mkv", "live-file")
    file_info = SourceInfo(uri="in.mp4", kind="video", width=64, height=48, fps=Fraction(25), time_base=TB)
    for name in ("cam.mkv", f"{other}.mkv"):
        sink = open_sink(tmp_path / name, file_info)
        write_pictures(sink, 10)
        sink.close()
        if name == "cam.mkv":
            assert [p.name.split(".")[-2] for p in tmp_path.glob(".*")] == ["recording"]  # left to its own run
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cam.mkv", f"{other}-1.mkv", f"{other}.mkv"])
    pictures = {}
    for name in (f"{other}-1.mkv", f"{other}.mkv"):
        with av.open(str(tmp_path / name)) as container:
            pictures[name] = sum(1 for _ in container.decode(video=0))
    assert pictures[f"{other}-1.mkv"] >= 40 and pictures[f"{other}.mkv"] == 10, pictures


def test_a_dead_writers_partial_temporary_is_deleted_never_published(tmp_path: Path) -> None:
    """Only a recording's temporaries are recovered (their pictures were anonymized): the ``.partial`` one of
    any other writer (a file run, the sample command, which writes a real face) is deleted, even if it plays."""
    from camouflage_video.samples import make_sample_video

    dead = 2**22 + 12345  # above the default pid_max: no such process
    playable = make_sample_video(tmp_path / "face.mkv", seconds=0.5, audio=None)
    left = tmp_path / f".rec.{dead}-0123abcd.partial.mkv"  # a killed `sample -o rec.mkv`
    playable.rename(left)
    assert recover_stale_segments(tmp_path / "rec.mkv") == ([], [left])
    assert list(tmp_path.iterdir()) == []


def test_what_cannot_be_recovered_is_deleted_not_published(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    junk = tmp_path / f".door_20261202-014000.{dead}-0123abcd.recording.mp4"
    junk.write_bytes(b"\x00\x00\x00\x1cftypisom" + b"\x00" * 20)  # the header only: no fragment
    matroska = tmp_path / f".hall_20261202-014000.{dead}-0123abcd.recording.mkv"
    matroska.write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 64)
    assert recover_stale_segments(tmp_path / "door.mp4") == ([], [junk])
    assert recover_stale_segments(tmp_path / "hall.mkv") == ([], [matroska])
    assert list(tmp_path.iterdir()) == []


def test_a_segment_never_replaces_a_file_that_took_its_name_while_it_was_written(tmp_path: Path) -> None:
    """A recovery (camouflage-video recover, another host's) may publish under the name this writer chose
    when it opened; the writer then takes the next free one, numbered from the recording's name."""
    (tmp_path / "door.mp4").write_bytes(b"an earlier run's")
    sink = SegmentedVideoSink(tmp_path / "door.mp4", INFO, seconds=None)
    write_pictures(sink, 20)
    (tmp_path / "door-1.mp4").write_bytes(b"recovered meanwhile")
    sink.close()
    assert (tmp_path / "door-1.mp4").read_bytes() == b"recovered meanwhile"
    assert sink.segments == [tmp_path / "door-2.mp4"] and len(probe(tmp_path / "door-2.mp4")[1]) == 20
