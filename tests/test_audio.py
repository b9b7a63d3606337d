"""The live audio track: contiguous on the run's clock, silence where the feed had none, every output in step."""

from __future__ import annotations

import numpy as np

from camouflage_video.audio import AudioTimeline

RATE = 1000  # samples per second: one sample per millisecond keeps the arithmetic readable


def tone(samples: int, value: int = 100) -> np.ndarray:
    return np.full((samples, 1), value, np.int16)


def test_audio_that_follows_on_is_kept_whole_and_in_order() -> None:
    track = AudioTimeline(RATE, 1)
    reader = track.subscribe()
    track.add(tone(100, 1), start=0.0)
    track.add(tone(100, 2), start=0.105)  # 5 ms of jitter is not a gap
    pcm = reader.read(10_000)
    assert len(pcm) == 200 and pcm[:100].min() == 1 and pcm[100:].min() == 2
    assert track.silence_samples == 0 and track.trimmed_samples == 0


def test_a_gap_in_the_feed_becomes_silence_and_later_audio_keeps_its_time() -> None:
    track = AudioTimeline(RATE, 1)
    reader = track.subscribe()
    track.add(tone(100), start=0.0)
    track.add(tone(100), start=2.0)  # the feed was down for 1.9 s (a reconnect)
    pcm = reader.read(10_000)
    assert len(pcm) == 2100
    assert not pcm[100:2000].any() and pcm[2000:].min() == 100  # silence, then the sound at its own time
    assert track.silence_samples == 1900 and track.resyncs == 1


def test_audio_that_would_overlap_loses_its_head_not_its_time() -> None:
    track = AudioTimeline(RATE, 1)
    reader = track.subscribe()
    track.add(tone(500, 1), start=0.0)
    track.add(tone(300, 2), start=0.3)  # a new connection's clock puts it 200 ms too early
    pcm = reader.read(10_000)
    assert len(pcm) == 600 and pcm[:500].max() == 1 and pcm[500:].min() == 2
    assert track.trimmed_samples == 200


def test_silence_fills_an_outage_up_to_the_time_given() -> None:
    track = AudioTimeline(RATE, 2)
    reader = track.subscribe()
    track.fill_until(1.5)
    assert reader.read(10_000).shape == (1500, 2) and track.end == 1.5


def test_every_output_reads_the_same_track_from_where_it_started() -> None:
    track = AudioTimeline(RATE, 1)
    early = track.subscribe()
    track.add(tone(100, 1), start=0.0)
    late = track.subscribe()
    track.add(tone(100, 2), start=0.1)
    assert len(early.read(10_000)) == 200
    pcm = late.read(10_000)
    assert len(pcm) == 100 and pcm.min() == 2


def test_reading_to_the_end_of_an_output_pads_what_has_not_arrived() -> None:
    track = AudioTimeline(RATE, 1)
    reader = track.subscribe()
    track.add(tone(100), start=0.0)
    assert len(reader.read(300)) == 100  # not placed yet: not made up
    pcm = reader.read(300, pad=True)
    assert len(pcm) == 200 and not pcm.any() and reader.position == 300


def test_a_closed_reader_no_longer_receives_samples() -> None:
    track = AudioTimeline(RATE, 1)
    reader = track.subscribe()
    reader.close()
    track.add(tone(100), start=0.0)
    assert len(reader.read(10_000)) == 0


def test_an_output_that_cannot_open_stops_collecting_audio(tmp_path) -> None:  # noqa: ANN001 - pytest's tmp_path
    import socket

    import pytest

    from camouflage_video.errors import OutputError, StreamError
    from camouflage_video.sinks import open_sink
    from camouflage_video.sources.base import SourceInfo

    track = AudioTimeline(48000, 2)
    info = SourceInfo(uri="rtsp://cam/s", kind="stream", width=64, height=48, live=True, has_audio=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(StreamError):
        open_sink(f"rtmp://127.0.0.1:{port}/live/x", info, live_audio=track)
    with pytest.raises(OutputError):
        open_sink(tmp_path / "no" / "such" / "folder.mp4", info, live_audio=track)
    assert track._subscribers == []  # noqa: SLF001 - nothing keeps 10 s of audio per failed attempt
