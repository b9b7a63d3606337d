"""Turns at the CPU between camera processes: real processes and real locks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from camouflage_video.serve.turns import Turns

HOLDER = """
import sys
from camouflage_video.serve.turns import Turns
Turns.open(sys.argv[1], int(sys.argv[2])).__enter__()
print("held", flush=True)
sys.stdin.readline()
"""


def hold(path: Path, slots: int) -> subprocess.Popen:
    """A camera process that takes a turn of ``slots`` and keeps it until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(slots)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_camera_waits_while_other_processes_hold_every_slot_and_goes_once_one_is_free(tmp_path: Path) -> None:
    lock = tmp_path / "turns.lock"
    first, second = hold(lock, 2), hold(lock, 2)
    try:
        turns = Turns.open(lock, 2, patience=30)
        entered = threading.Event()

        def take() -> None:
            with turns:
                entered.set()

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        assert not entered.wait(0.5)  # both slots are taken
        first.kill()  # the kernel frees a dead holder's slot
        first.wait()
        assert entered.wait(10)
        thread.join(5)
        assert turns.gave_up == 0
        assert turns.waited >= 0.4  # counted for /metrics: it waited at least the half second above
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


def test_a_free_slot_is_taken_at_once(tmp_path: Path) -> None:
    lock = tmp_path / "turns.lock"
    holder = hold(lock, 2)
    try:
        turns = Turns.open(lock, 2)
        started = time.monotonic()
        for _ in range(20):
            with turns:
                pass
        assert time.monotonic() - started < 5 and turns.gave_up == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_stuck_holder_never_stops_the_others_they_go_on_without_turns(tmp_path: Path) -> None:
    lock = tmp_path / "turns.lock"
    holder = hold(lock, 1)  # holds the only slot and never lets go (a stopped camera)
    try:
        turns = Turns.open(lock, 1, patience=0.2, bypass=60)
        started = time.monotonic()
        for _ in range(10):
            with turns:
                pass
        assert turns.gave_up == 1  # waited once, then went on without turns
        assert time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()


class CountingTurn:
    def __init__(self):
        self.inside, self.entered = False, 0

    def __enter__(self):
        self.inside, self.entered = True, self.entered + 1

    def __exit__(self, *exc):
        self.inside = False


def test_a_live_picture_is_taken_and_anonymized_within_one_turn() -> None:
    from fractions import Fraction

    import numpy as np

    from camouflage_video.frame import Frame
    from camouflage_video.pipelines.classic import ClassicObfuscator
    from camouflage_video.runner import Runner
    from camouflage_video.sources.base import SourceInfo
    from tests.fakes import MemorySink

    turn = CountingTurn()
    taken, anonymized = [], []

    class LiveFeed:
        info = SourceInfo(uri="rtsp://camera", kind="stream", width=64, height=48, fps=Fraction(25), live=True)
        corrupt_frames = 0

        def __iter__(self):
            for index in range(12):
                taken.append(turn.inside)
                yield Frame(np.zeros((48, 64, 3), np.uint8), index=index)

    class Recording(ClassicObfuscator):
        def __call__(self, ctx):
            anonymized.append(turn.inside)
            return super().__call__(ctx)

    sink = MemorySink()
    Runner(LiveFeed(), [sink], [], Recording(), progress=False, turn=turn).run()
    assert len(sink.frames) == 12 and all(taken) and all(anonymized) and turn.entered == 13  # 13th: the end


def test_a_cameras_report_for_metrics_counts_its_waits_and_give_ups(tmp_path: Path) -> None:
    from camouflage_video.serve.camera import CameraRun
    from camouflage_video.serve.config import camera_from_table

    lock = tmp_path / "turns.lock"
    holder = hold(lock, 1)  # the only slot is taken: the camera waits, then goes on without turns
    try:
        turns = Turns.open(lock, 1, patience=0.2, bypass=60)
        with turns:
            pass
        camera = camera_from_table({"name": "door", "input": "rtsp://127.0.0.1:1/s",
                                    "outputs": [str(tmp_path / "door.mp4")]})
        report = CameraRun(camera, turns=turns).report()
        assert report["turns_given_up"] == 1 and report["turn_wait_seconds"] >= 0.2
    finally:
        holder.kill()
        holder.wait()
