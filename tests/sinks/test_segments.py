"""Segmented recordings: consecutive files cut between two pictures, audio cut at the same instant."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from camouflage_video.audio import AudioTimeline
from camouflage_video.errors import ConfigError
from camouflage_video.frame import Frame
from camouflage_video.sinks.segments import SegmentedVideoSink
from camouflage_video.sources.base import SourceInfo

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
