"""Recordings joined end to end, cut short or damaged: everything readable is anonymized on one timeline, and
the run says what it could not read.

``cat a.ts b.ts`` is how many recorders' segments are joined: the second part's timestamps start again.
Its copied audio went back in time and the muxer failed the run; without audio, the second part's pictures
were squeezed into a millisecond behind the first's.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import av
import pytest

from tests.conftest import run_cli


def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _durations(path) -> dict[str, float]:
    with av.open(str(path)) as container:
        out = {}
        for stream in container.streams:
            times = [float((p.pts + (p.duration or 0)) * p.time_base) for p in container.demux(stream)
                     if p.pts is not None]
            container.seek(0)
            out[stream.type] = max(times) - min(times)
        return out


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_recordings_joined_end_to_end_are_anonymized_on_one_timeline(tmp_path, sample_clip, suffix):
    part = tmp_path / "part.ts"
    _ffmpeg("-i", str(sample_clip), "-c", "copy", "-f", "mpegts", str(part))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(part.read_bytes() * 2)
    out, stats = tmp_path / f"out{suffix}", tmp_path / "stats.json"
    done = run_cli("anonymize", str(joined), "-o", str(out), "--stats", str(stats))
    assert done.returncode == 0, done.stderr
    assert "timestamps start again" in done.stderr
    assert json.loads(stats.read_text())["frames_out"] == 100  # both parts
    durations = _durations(out)
    assert 3.8 < durations["video"] < 4.3 and 3.8 < durations["audio"] < 4.3  # 2 s + 2 s, not 2 s + 1 ms


def test_a_file_cut_short_is_anonymized_as_far_as_it_goes_and_the_run_says_so(tmp_path, sample_clip):
    whole = tmp_path / "whole.mp4"
    _ffmpeg("-i", str(sample_clip), "-c", "copy", "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a download or copy that stopped
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    done = run_cli("anonymize", str(cut), "-o", str(out), "--stats", str(stats))
    assert done.returncode == 0, done.stderr
    record = json.loads(stats.read_text())
    assert record["frames_out"] < 50
    assert f"read {record['frames_in']} of the 50 pictures the file declares" in done.stderr
    assert any("pictures the file declares" in e for e in record["errors"])


def test_a_stream_that_starts_part_way_through_ends_the_reading_with_a_warning(tmp_path):
    parts = []
    # A second program (its own PMT): FFmpeg's probe at open does not see it, its demuxer meets it later.
    for i, (program, seconds) in enumerate(((["-mpegts_start_pid", "0x100"], 6), (
            ["-mpegts_start_pid", "0x300", "-mpegts_pmt_start_pid", "0x1100", "-mpegts_service_id", "2"], 1))):
        parts.append(tmp_path / f"p{i}.ts")
        _ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x90:rate=25:duration={seconds}", "-c:v", "libx264",
                "-preset", "ultrafast", *program, str(parts[-1]))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    out = tmp_path / "out.mp4"
    done = run_cli("anonymize", str(joined), "-o", str(out), "--no-audio")
    assert done.returncode == 0, done.stderr
    assert "a new stream starts part way through" in done.stderr and "IndexError" not in done.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 150


def test_a_clip_cut_with_an_edit_list_is_not_called_cut_short(tmp_path, sample_clip):
    cut = tmp_path / "cut.mp4"
    _ffmpeg("-ss", "1", "-i", str(sample_clip), "-c", "copy", str(cut))  # its samples are all there, half hidden
    done = run_cli("anonymize", str(cut), "-o", str(tmp_path / "out.mp4"))
    assert done.returncode == 0, done.stderr
    assert "pictures the file declares" not in done.stderr
