"""Interrupts while finalizing: counted, never cutting the finalizing short."""

from __future__ import annotations

import signal

import pytest

from camouflage_video.interrupts import InterruptOnce, interrupts_deferred


@pytest.fixture
def restore_sigint():
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupts_inside_a_deferred_block_let_it_finish_then_raise_once(restore_sigint):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_after_the_first_interrupt_the_next_ones_are_only_counted(restore_sigint):
    handler = InterruptOnce()
    signal.signal(signal.SIGINT, handler)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGINT)  # does not raise
    with interrupts_deferred():
        signal.raise_signal(signal.SIGINT)
    assert handler.count == 3


def test_a_first_interrupt_during_a_deferred_block_is_raised_after_it(restore_sigint):
    handler = InterruptOnce()
    signal.signal(signal.SIGINT, handler)
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
    assert handler.count == 1
    signal.raise_signal(signal.SIGINT)  # the second is only counted


def test_an_ignored_sigint_stays_ignored(restore_sigint):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts_deferred():
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


LOADING = """
import builtins, sys, time
import camouflage_video.__main__ as command
real = builtins.__import__
def slow(name, *args, **kwargs):  # the command's modules loading (numpy, PyAV, OpenCV: tenths of a second)
    if name == "camouflage_video.cli":
        print("loading", flush=True)
        time.sleep(30)
    return real(name, *args, **kwargs)
builtins.__import__ = slow
sys.argv = ["camouflage-video", "sample", "-o", sys.argv[1]]
raise SystemExit(command.run())
"""


def test_a_ctrl_c_while_the_command_loads_is_one_line_and_exit_130(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    command = subprocess.Popen([sys.executable, "-c", LOADING, str(tmp_path / "sample.mp4")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert command.stdout.readline().strip() == "loading"
        command.send_signal(signal.SIGINT)
        _, stderr = command.communicate(timeout=30)
    finally:
        command.kill()
    assert command.returncode == 130, stderr
    assert stderr == "camouflage-video: interrupted before any output was written\n"
    assert not list(tmp_path.iterdir())
