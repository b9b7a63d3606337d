"""Ctrl-C that stops work without undoing it: one interrupt raises, the ones after it wait.

A first Ctrl-C raises :class:`KeyboardInterrupt` where the work is, and the code above it finalizes what was
processed. People press Ctrl-C twice, and a service manager may send SIGTERM after SIGINT; a second
``KeyboardInterrupt`` landing in the middle of that finalizing (closing an MP4, writing a manifest) would
leave nothing under the output name. So after the first, interrupts are only counted and logged.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)


class Finalized(KeyboardInterrupt):
    """An interrupt raised again once what was processed was finalized (written under its final names).

    A plain ``KeyboardInterrupt`` that reaches the CLI came before anything was (while models loaded, say):
    the CLI tells the two apart, so it never claims to have saved what it had not.
    """


class InterruptOnce:
    """A SIGINT handler that raises :class:`KeyboardInterrupt` ``raises`` times, then only counts.

    Args:
        raises: How many interrupts raise (1: the CLI's runs; 2: a dataset run, whose first press asks the
            files in flight to finish and whose second aborts them).
        first: Interrupts that arrived before this handler took over, counted as its own.

    Examples:
        >>> handler = InterruptOnce()
        >>> previous = signal.signal(signal.SIGINT, handler)  # doctest: +SKIP
        >>> handler.count
        0
    """

    def __init__(self, raises: int = 1, first: int = 0) -> None:
        self.raises, self.count = raises, first

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count <= self.raises:
            raise KeyboardInterrupt
        logger.warning("already stopping: finishing what was processed (kill -9 loses it)")


def _count(handler: object) -> int:
    return handler.count if isinstance(handler, InterruptOnce) else 0


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block to its end whatever interrupts arrive; raise one :class:`KeyboardInterrupt` after it.

    Only the main thread receives signals; elsewhere this does nothing. An interrupt that arrives inside
    the block is raised once the block has finished, unless the block itself raised.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    held = InterruptOnce(raises=0, first=_count(previous))
    before = held.count
    signal.signal(signal.SIGINT, held)
    try:
        yield
    finally:
        if isinstance(previous, InterruptOnce):
            previous.count = held.count  # presses made while deferred count as the caller's
        signal.signal(signal.SIGINT, previous)
    if held.count == before or previous is signal.SIG_IGN:
        return
    if isinstance(previous, InterruptOnce):
        if before < previous.raises:  # the caller's handler would have raised for it
            raise KeyboardInterrupt
    elif callable(previous):
        previous(signal.SIGINT, None)
    else:  # SIG_DFL, or a handler installed outside Python
        raise KeyboardInterrupt
