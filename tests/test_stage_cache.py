"""StageCache: models load once for many inputs, and no state carries over from one input to the next."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from camouflage_video import anonymize
from camouflage_video.config import AnonymizeConfig, StageCache
from camouflage_video.samples import make_sample_video
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.base import SourceInfo
from tests.conftest import read_frames

VIDEO = SourceInfo(uri="a.mp4", kind="video", width=64, height=48, fps=Fraction(25))
IMAGE = SourceInfo(uri="a.jpg", kind="image", width=64, height=48)


def test_models_are_built_once_and_trackers_per_video() -> None:
    cache = StageCache(AnonymizeConfig(method="pixelate"))
    first, anonymizer = cache(VIDEO)
    second, again = cache(VIDEO)
    still, _ = cache(IMAGE)
    assert first[0] is second[0] is still[0] and anonymizer is again  # one detector, one anonymizer
    assert [a.name for a in first] == ["detect", "track", "backfill"] and first[1] is not second[1]
    assert first[2] is not second[2]  # per video too: it remembers the tracks of one input
    assert [a.name for a in still] == ["detect"]  # unrelated images are not tracked


def test_a_reused_cache_gives_each_video_the_output_of_a_fresh_run(tmp_path: Path) -> None:
    # Lossless encoding (crf 0): decoded pixels are the anonymized pixels, whatever the encoder decided. libx264
    # in PyAV's wheel is not bit-reproducible from run to run on some content, so lossy encodes differ slightly.
    config = AnonymizeConfig(det_size=320, encoder=EncoderOptions(crf=0))
    other = make_sample_video(tmp_path / "other.mp4", seconds=0.6, fps=Fraction(25), size=(160, 96), audio=None)
    clip = make_sample_video(tmp_path / "clip.mp4", seconds=0.6, fps=Fraction(25), size=(192, 108), audio=None)
    cache = StageCache(config)
    frames_seen = []
    anonymize(other, tmp_path / "o.mp4", config, stages=cache, on_frame=lambda s: frames_seen.append(s.frames_out))
    reused = anonymize(clip, tmp_path / "reused.mp4", config, stages=cache)
    fresh = anonymize(clip, tmp_path / "fresh.mp4", config)
    assert frames_seen == list(range(1, 16))  # the caller's own progress, frame by frame
    assert reused.faces_detected == fresh.faces_detected and reused.tracks == fresh.tracks
    a, _, _ = read_frames(tmp_path / "reused.mp4")
    b, _, _ = read_frames(tmp_path / "fresh.mp4")
    assert len(a) == len(b) == 15 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_frames_are_skipped_only_where_the_back_fill_covers_them_from_both_sides() -> None:
    stream = SourceInfo(uri="rtsp://cam/1", kind="stream", width=64, height=48, fps=Fraction(25), live=True)
    cache = StageCache(AnonymizeConfig(method="pixelate", detect_every=2, verify=False))
    for info, every in ((VIDEO, 2), (stream, 1), (IMAGE, 1), (VIDEO, 2)):
        annotators, _ = cache(info)
        assert annotators[0].every == every, info.kind
    annotators, _ = StageCache(AnonymizeConfig(method="pixelate", detect_every=2, look_ahead=0, verify=False))(VIDEO)
    assert annotators[0].every == 1  # no look-ahead: nothing would fill the skipped frames in
    # 8K: the runner holds only 2 frames back, so at most 2 in a row are skipped (each still filled in).
    huge = SourceInfo(uri="a.mp4", kind="video", width=7680, height=4320, fps=Fraction(25))
    annotators, _ = StageCache(AnonymizeConfig(method="pixelate", detect_every=4, verify=False))(huge)
    assert annotators[0].every == 3


def test_live_pictures_do_not_wait_for_identity_checks_and_files_do() -> None:
    cache = StageCache(AnonymizeConfig())  # blur, verified
    live = SourceInfo(uri="rtsp://camera", kind="stream", width=64, height=48, fps=Fraction(25), live=True)
    _, anonymizer = cache(live)
    assert anonymizer.wait_for_checks is False
    _, anonymizer = cache(VIDEO)
    assert anonymizer.wait_for_checks is True


def test_detector_threads_are_how_it_runs_not_part_of_the_config() -> None:
    cache = StageCache(AnonymizeConfig(method="pixelate"), detector_threads=1)
    annotators, _ = cache(VIDEO)
    assert annotators[0].threads == 1
    assert "threads" not in AnonymizeConfig.__dataclass_fields__  # a dataset's done files stay done
