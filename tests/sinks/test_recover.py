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


def test_recover_of_a_folder_tells_a_file_named_like_a_segment_from_a_segment(tmp_path: Path, capsys) -> None:
    """A user may put a time in a live run's recording's name. Published under that name, it would be replaced
    by a rerun of the same command: it goes beside it, as a recording that is not a segment does."""
    kill_a_writer(tmp_path / "cam.mp4", "segments")  # a service camera "cam": cam_<start>.mp4
    kill_a_writer(tmp_path / "cam_20261204-190000.mp4", "live-file")  # a command-line live run's recording
    assert main(["recover", str(tmp_path)]) == 0
    published = {Path(line).name for line in capsys.readouterr().out.splitlines()}
    assert "cam_20261204-190000-1.mp4" in published and len(published) == 2, published
    (segment,) = published - {"cam_20261204-190000-1.mp4"}
    assert re.fullmatch(r"cam_\d{8}-\d{6}\.mp4", segment) and segment != "cam_20261204-190000.mp4", segment
    assert {p.name for p in tmp_path.iterdir()} == published


def test_recover_leaves_a_recording_that_is_still_being_written_alone(tmp_path: Path, capsys) -> None:
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "rec.mp4"), "25", "live-file"],
                              stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert writer.stdout.readline().strip() == b"written"
        assert main(["recover", str(tmp_path / "rec.mp4")]) == 0
        err = capsys.readouterr().err
        (temporary,) = tmp_path.glob(".*")
        assert [p.name for p in tmp_path.iterdir()] == [temporary.name]  # nothing published, nothing cut
        assert f"still being written (process {writer.pid})" in err and "nothing to recover" in err
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


# -- what a recovery must leave alone, or must not get wrong ----------------------------------------------------

DEAD = 2**22 + 12345  # above the default pid_max: no such process


def as_dead_writers(temporary: Path) -> Path:
    """The temporary renamed as a writer whose process id this process cannot see would have it (a writer in
    another container's process id namespace, or on another machine sharing the folder)."""
    return temporary.rename(temporary.with_name(re.sub(r"^(\.[^.]*)\.\d+-", rf"\1.{DEAD}-", temporary.name)))


def writer(path: Path, live: bool):  # noqa: ANN201
    """A sink in this process that has written 60 pictures: a live run's recording, or a file run's output."""
    from fractions import Fraction

    from camouflage_video.frame import Frame
    from camouflage_video.sinks import open_sink
    from camouflage_video.sources.base import SourceInfo

    info = SourceInfo(uri="rtsp://cam/s" if live else "in.mp4", kind="stream" if live else "video", width=64,
                      height=48, fps=Fraction(25), time_base=Fraction(1, 90000), live=live)
    sink = open_sink(path, info)
    for index in range(60):
        image = np.full((48, 64, 3), 200, np.uint8)
        sink.write(Frame(image, index=index, pts=index * 3600, time_base=Fraction(1, 90000)), image)
    return sink


@pytest.mark.parametrize("live", [True, False])
def test_a_writer_whose_process_id_cannot_be_seen_keeps_its_file(tmp_path: Path, live: bool) -> None:
    """Its writer holds the file locked while it writes: a recovery, the next run's clean-up and recover leave
    it alone, whatever its name says about the process."""
    from camouflage_video.sinks.base import remove_stale_temporaries

    sink = writer(tmp_path / "rec.mp4", live)
    try:
        (temporary,) = tmp_path.glob(".*")
        moved = as_dead_writers(temporary)
        assert remove_stale_temporaries(tmp_path / "rec.mp4") == []
        assert recover_stale_segments(tmp_path / "rec.mp4") == ([], [])
        assert [p.name for p in tmp_path.iterdir()] == [moved.name]
    finally:
        sink._temporary = moved  # noqa: SLF001 - where its file now is, so that it is cleaned up
        sink.abort()


def test_a_recording_another_recovery_is_copying_is_left_to_it(tmp_path: Path, capsys) -> None:
    from camouflage_video.sinks.base import claim

    kill_a_writer(tmp_path / "rec.mkv", "live-file")
    (temporary,) = tmp_path.glob(".*")
    held = claim(temporary)  # what the other recovery holds while it copies
    try:
        assert main(["recover", str(tmp_path)]) == 0
        assert capsys.readouterr().out == "" and [p.name for p in tmp_path.iterdir()] == [temporary.name]
    finally:
        os.close(held)
    assert main(["recover", str(tmp_path)]) == 0  # once it let go (here: nothing was done with it)
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "rec-1.mkv")]


def test_a_recording_that_cannot_be_read_is_kept_and_the_run_fails(tmp_path: Path, monkeypatch, capsys,
                                                                    caplog) -> None:
    """The file system refusing to read it is stood in for (this runs as root here, which reads anything)."""
    from camouflage_video.sinks import base

    kill_a_writer(tmp_path / "rec.mkv", "live-file")
    (temporary,) = tmp_path.glob(".*")
    size, real_open = temporary.stat().st_size, os.open

    def refuse(path, *args, **kwargs):  # noqa: ANN001, ANN202
        if Path(path) == temporary:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(base.os, "open", refuse)
    assert main(["recover", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "1 recording(s) could not be recovered" in err and "nothing to recover" not in err
    assert "could not be recovered (Permission denied); left as it is" in caplog.text
    assert temporary.stat().st_size == size and [p.name for p in tmp_path.iterdir()] == [temporary.name]


def test_a_dangling_link_takes_a_name_and_recovery_steps_past_it(tmp_path: Path) -> None:
    kill_a_writer(tmp_path / "rec.mp4", "live-file")
    (tmp_path / "rec-1.mp4").symlink_to(tmp_path / "gone.mp4")
    recovered, _ = recover_stale_segments(tmp_path / "rec.mp4", spare=tmp_path / "rec.mp4")
    assert [p.name for p in recovered] == ["rec-2.mp4"]


def test_a_recording_already_published_by_a_recovery_stopped_midway_is_not_published_again(tmp_path: Path) -> None:
    kill_a_writer(tmp_path / "rec.mp4", "live-file")
    (temporary,) = tmp_path.glob(".*")
    os.link(temporary, tmp_path / "rec-1.mp4")  # published; stopped before its temporary was removed
    assert recover_stale_segments(tmp_path / "rec.mp4", spare=tmp_path / "rec.mp4") == ([], [temporary])
    assert [p.name for p in tmp_path.iterdir()] == ["rec-1.mp4"]


def test_a_cut_that_is_not_published_keeps_the_time_the_file_was_last_written(tmp_path: Path) -> None:
    from camouflage_video.sinks.salvage import _cut_to_fragments

    kill_a_writer(tmp_path / "rec.mp4", "live-file")
    (temporary,) = tmp_path.glob(".*")
    with open(temporary, "ab") as file:
        file.write(b"\x00\x01\x00\x00moof" + b"\x00" * 32)  # a torn box: the cut removes it
    hour_ago = time.time() - 3600
    os.utime(temporary, (hour_ago, hour_ago))
    size = temporary.stat().st_size
    assert _cut_to_fragments(temporary)
    assert temporary.stat().st_size < size and abs(temporary.stat().st_mtime - hour_ago) < 1e-3


LIMITED_RECOVERY = """
import resource, signal, sys
from pathlib import Path
from camouflage_video.sinks.segments import recover_stale_segments
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) rather than kills
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
recovered, removed = recover_stale_segments(Path(sys.argv[1]), spare=Path(sys.argv[1]))
print(*recovered)
"""


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_a_matroska_recording_with_no_room_for_its_copy_is_cut_in_place_and_published(tmp_path: Path,
                                                                                       suffix: str) -> None:
    """The disk that made its writer fail may still be full when it is recovered: here a file-size limit
    (as FAT32's 4 GiB) at half the recording's size refuses the copy. A copy cut short is never published."""
    kill_a_writer(tmp_path / f"rec{suffix}", "live-file")
    (temporary,) = tmp_path.glob(".*")
    with open(temporary, "ab") as file:  # the write it was killed in: a cluster cut short
        file.write(b"\x1f\x43\xb6\x75\x01\x00\x00\x00\x00\x10\x00\x00" + b"\xa3" * 40)
    done = subprocess.run([sys.executable, "-c", LIMITED_RECOVERY, str(tmp_path / f"rec{suffix}"),
                           str(temporary.stat().st_size // 2)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / f"rec-1{suffix}")]
    assert [p.name for p in tmp_path.iterdir()] == [f"rec-1{suffix}"]
    pictures = levels(tmp_path / f"rec-1{suffix}")
    assert len(pictures) >= 50 and set(pictures) <= set(range(195, 206)), pictures  # its complete clusters
    with av.open(str(tmp_path / f"rec-1{suffix}")) as container:  # a whole file: every packet reads back
        assert not any(packet.is_corrupt for packet in container.demux())


def test_a_matroska_cut_gives_the_segment_its_size_and_keeps_the_time_it_was_last_written(tmp_path: Path) -> None:
    from camouflage_video.sinks.salvage import _cut_to_clusters, _ebml_element

    kill_a_writer(tmp_path / "rec.mkv", "live-file")
    (temporary,) = tmp_path.glob(".*")
    size = temporary.stat().st_size
    with open(temporary, "ab") as file:
        file.write(b"\x1f\x43\xb6\x75\x01\x00\x00\x00\x00\x10\x00\x00" + b"\xa3" * 40)
    hour_ago = time.time() - 3600
    os.utime(temporary, (hour_ago, hour_ago))
    assert _cut_to_clusters(temporary)
    assert temporary.stat().st_size == size and abs(temporary.stat().st_mtime - hour_ago) < 1e-3
    with open(temporary, "rb") as file:
        header = _ebml_element(file, 0, size)
        segment = _ebml_element(file, header[1] + header[2], size)
    assert segment[0] == 0x18538067 and header[1] + header[2] + segment[1] + segment[2] == size  # no longer unknown


def test_a_pipe_named_like_a_recording_does_not_hold_recovery_up(tmp_path: Path) -> None:
    import threading

    pipe = tmp_path / f".rec.{DEAD}-0123abcd.recording.mkv"
    os.mkfifo(pipe)
    done = []
    worker = threading.Thread(target=lambda: done.append(recover_stale_segments(tmp_path / "rec.mkv")), daemon=True)
    worker.start()
    worker.join(20)
    assert done == [([], [])] and pipe.exists()


def test_a_recording_with_a_newline_in_its_name_is_recovered(tmp_path: Path) -> None:
    kill_a_writer(tmp_path / "re\nc.mp4", "live-file")
    recovered, _ = recover_stale_segments(tmp_path / "re\nc.mp4", spare=tmp_path / "re\nc.mp4")
    assert [p.name for p in recovered] == ["re\nc-1.mp4"] and not list(tmp_path.glob(".*"))


def test_recover_of_a_name_leaves_another_names_recording_to_its_own_run(tmp_path: Path, capsys) -> None:
    """cam-2.mp4 may be a name a user gave; published there by a recovery of cam.mp4, the next run to it would
    replace it."""
    kill_a_writer(tmp_path / "cam-2.mp4", "live-file")
    assert main(["recover", str(tmp_path / "cam.mp4")]) == 0
    assert capsys.readouterr().out == "" and len(list(tmp_path.glob(".cam-2.*"))) == 1


def test_recover_refuses_a_plain_file_given_as_a_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes").write_text("not a folder")
    assert main(["recover", str(tmp_path / "notes")]) == 1
    assert "not a recording's name" in capsys.readouterr().err


def test_a_recording_with_the_longest_name_a_file_system_takes_is_written_and_recovered(tmp_path: Path) -> None:
    """Its temporary's name would be longer than 255 bytes: its stem is shortened there, and the recording
    still publishes (and recovers) under its own name."""
    name = "é" * 60 + "L" * (255 - 120 - len("-1.mp4")) + ".mp4"  # 2-byte letters: bytes, not characters
    assert len(name.encode()) == 255 - len("-1")
    kill_a_writer(tmp_path / name, "live-file")
    (temporary,) = tmp_path.glob(".*")
    assert len(temporary.name.encode()) <= 255
    recovered, _ = recover_stale_segments(tmp_path / name, spare=tmp_path / name)
    assert recovered == [tmp_path / f"{name[:-4]}-1.mp4"] and len(levels(recovered[0])) >= 40


KILLED_RECOVERY = """
import os, sys
from pathlib import Path
from camouflage_video.sinks import salvage
from camouflage_video.sinks.segments import recover_stale_segments
real = salvage.place_free
def killed(*args, **kwargs):  # the recovering process is killed (kill -9) at this instant
    if sys.argv[2] == "after publishing":
        real(*args, **kwargs)
    os._exit(9)
salvage.place_free = killed
recover_stale_segments(Path(sys.argv[1]), spare=Path(sys.argv[1]))
"""


@pytest.mark.parametrize("moment", ["before publishing", "after publishing"])
def test_a_matroska_recovery_killed_midway_publishes_the_recording_once(tmp_path: Path, moment: str) -> None:
    kill_a_writer(tmp_path / "rec.mkv", "live-file")
    killed = subprocess.run([sys.executable, "-c", KILLED_RECOVERY, str(tmp_path / "rec.mkv"), moment],
                            env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    recover_stale_segments(tmp_path / "rec.mkv", spare=tmp_path / "rec.mkv")  # the next recovery
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-1.mkv"]
    pictures = levels(tmp_path / "rec-1.mkv")
    assert len(pictures) >= 40 and set(pictures) <= set(range(195, 206)), pictures
