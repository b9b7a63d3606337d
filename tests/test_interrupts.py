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
