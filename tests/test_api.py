from __future__ import annotations

from fractions import Fraction

import av
import pytest

from camouflage_video import AnonymizeConfig, ConfigError, anonymize
from camouflage_video.samples import make_sample_video
from tests.conftest import read_frames


def audio_span(path):
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        ends = [float((p.pts + p.duration) * p.time_base) for p in c.demux(stream) if p.pts is not None]
        return max(ends)


def test_vfr_clip_with_audio_keeps_timestamps_and_audio(tmp_path):
    durations = [400, 400, 1200, 200, 200, 800] * 6  # 25 fps grid with gaps and bursts
    clip = make_sample_video(tmp_path / "vfr.mp4", fps=Fraction(25), frame_durations=durations)
    out = tmp_path / "vfr_anon.mp4"
    stats = anonymize(clip, out)
    _, pts_in, tb_in = read_frames(clip)
    frames_out, pts_out, tb_out = read_frames(out)
    assert len(frames_out) == len(pts_in) == stats.frames_out == 36
    assert [float(p * tb_out) for p in pts_out] == pytest.approx([float(p * tb_in) for p in pts_in], abs=1e-3)
    assert audio_span(out) == pytest.approx(audio_span(clip), abs=0.03)


def test_keyword_options_override_the_config(sample_clip, tmp_path):
    stats = anonymize(sample_clip, tmp_path / "o.mp4", AnonymizeConfig(method="solid"), mask_scale=1.5)
    assert stats.method == "solid" and stats.frames_out == 50


def test_several_outputs_get_the_same_frames(sample_clip, tmp_path):
    stats = anonymize(sample_clip, [tmp_path / "a.mp4", tmp_path / "b.mkv"])
    assert [o["frames"] for o in stats.outputs] == [50, 50]
    assert len(read_frames(tmp_path / "b.mkv")[0]) == 50


def test_an_invalid_method_is_refused_before_anything_is_written(sample_clip, tmp_path):
    with pytest.raises(ConfigError):
        anonymize(sample_clip, tmp_path / "o.mp4", method="nope")
    assert not (tmp_path / "o.mp4").exists()
