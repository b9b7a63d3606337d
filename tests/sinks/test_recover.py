"""``camouflage-video recover``: what a killed live run or service left is published without a next run.

The killed writers are real processes (``tests/sinks/test_segments.py``'s ``KILLED_WRITER``), killed with
SIGKILL after four seconds of pictures of level 200 with a moving dark line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from camouflage_video.cli import main
from camouflage_video.sinks.base import writer_alive
from camouflage_video.sinks.segments import recover_stale_segments
from tests.conftest import REPO
from tests.sinks.test_segments import KILLED_WRITER, kill_a_writer


def levels(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [int(np.median(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]


def test_recover_publishes_a_killed_live_runs_recording_beside_its_name(tmp_path: Path, capsys) -> None:
    kill_a_writer(tmp_path / "rec.mp4", "live-file")
    assert main(["recover", str(tmp_path / "rec.mp4")]) == 0
    out = capsys.readouterr().out
    # Beside its name: a rerun of the killed command writes rec.mp4 again and would replace it there.
    assert out.splitlines() == [str(tmp_path / "rec-1.mp4")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-1.mp4"]
    pictures = levels(tmp_path / "rec-1.mp4")
    assert len(pictures) >= 40 and set(pictures) <= set(range(195, 206)), pictures


def test_recover_of_a_folder_publishes_every_recording_in_it_under_the_names_its_runs_would(tmp_path: Path,
                                                                                           capsys) -> None:
    kill_a_writer(tmp_path / "door.mp4", "segments")  # a service camera's segment
    kill_a_writer(tmp_path / "rec.mkv", "live-file")  # a command-line live run's recording
    (tmp_path / "rec.mkv").write_bytes(b"an earlier run's file")  # never replaced
    assert main(["recover", str(tmp_path)]) == 0
    published = sorted(Path(line).name for line in capsys.readouterr().out.splitlines())
    assert len(published) == 2 and published[1] == "rec-1.mkv", published
    assert published[0].startswith("door_") and published[0].endswith(".mp4")  # the segment's own name
    assert not list(tmp_path.glob(".*"))
    assert (tmp_path / "rec.mkv").read_bytes() == b"an earlier run's file"
    for name in published:
        pictures = levels(tmp_path / name)
        assert len(pictures) >= 40 and set(pictures) <= set(range(195, 206)), (name, pictures)


def test_recover_leaves_a_recording_that_is_still_being_written_alone(tmp_path: Path, capsys) -> None:
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "rec.mp4"), "25", "live-file"],
                              stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert writer.stdout.readline().strip() == b"written"
        assert main(["recover", str(tmp_path / "rec.mp4")]) == 0
        err = capsys.readouterr().err
        (temporary,) = tmp_path.glob(".*")
        assert [p.name for p in tmp_path.iterdir()] == [temporary.name]  # nothing published, nothing cut
        assert f"still being written by process {writer.pid}" in err and "nothing to recover" in err
    finally:
        writer.kill()
        writer.wait()


def test_a_dead_writers_recording_whose_process_id_was_handed_out_again_is_recovered(tmp_path: Path) -> None:
    """After a reboot, the killed run's process id can belong to another process: one that started after the
    file was last written cannot be its writer."""
    kill_a_writer(tmp_path / "rec.mp4", "live-file")
    (temporary,) = tmp_path.glob(".*")
    hour_ago = time.time() - 3600
    os.utime(temporary, (hour_ago, hour_ago))  # the power went out an hour ago
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = temporary.with_name(re.sub(r"^\.rec\.\d+-", f".rec.{other.pid}-", temporary.name))
        assert reused != temporary
        temporary.rename(reused)
        assert writer_alive(other.pid, reused) is False
        fresh = tmp_path / "fresh"
        fresh.write_bytes(b"")
        assert writer_alive(other.pid, fresh) is True  # written after it started: it may be the writer
        recovered, removed = recover_stale_segments(tmp_path / "rec.mp4", spare=tmp_path / "rec.mp4")
        assert [p.name for p in recovered] == ["rec-1.mp4"] and removed == []
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("name, message", [
    ("missing/rec.mp4", "missing: no such folder"),
    ("missing", "missing: no such folder"),
    ("notes.txt", "notes.txt: not a recording's name"),
])
def test_recover_refuses_a_path_it_cannot_take_in_one_line(tmp_path: Path, capsys, name: str, message: str) -> None:
    kill_a_writer(tmp_path / "rec.mp4", "live-file")
    before = sorted(p.name for p in tmp_path.iterdir())
    # The good path first: nothing is recovered until every path given is known to be one recover can take.
    assert main(["recover", str(tmp_path / "rec.mp4"), str(tmp_path / name)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_recovery_never_cuts_publishes_or_deletes_through_a_link_named_like_a_recording(tmp_path: Path) -> None:
    """Only a writer of ours makes these names, and never as links: one pointing at another file (someone
    else's MP4) is left alone, and so is that file."""
    kill_a_writer(tmp_path / "elsewhere.mp4", "live-file")
    (victim,) = tmp_path.glob(".*")
    victim = victim.rename(tmp_path / "victim.mp4")
    with open(victim, "ab") as file:
        file.write(b"\x00\x00\x00\x10mdat" + b"\x00" * 8)  # after its last fragment: a cut would drop it
    size = victim.stat().st_size
    link = tmp_path / f".rec.{2**22 + 12345}-0123abcd.recording.mp4"  # a dead writer's name
    link.symlink_to(victim)
    assert recover_stale_segments(tmp_path / "rec.mp4") == ([], [])
    assert link.is_symlink() and victim.stat().st_size == size
