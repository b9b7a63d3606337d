"""Turns at the CPU for the cameras of one service: at most ``slots`` of them work on a picture at once.

With more cameras than cores, every camera processing at once shares the cores between all of them, so
each picture takes as long as the share it gets (3 cameras on 2 cores: 1.5x as long) and each camera's
latency grows with the number of cameras. Taking turns keeps the work on a picture as quick as on an idle
machine: a camera waits for a free slot, then takes its *newest* picture (the newest-frame policy drops
the rest, as it does anyway when processing is slower than the feed) and works on it alone on its core.
The cameras together process as many pictures a second either way; what waits is a picture not yet
taken, so the latency from a picture's arrival to its output stays that of one camera.

The slots are byte-range locks on one file (``fcntl.lockf``) that the service opens, unlinks at once and
hands to each camera process as an open descriptor (nothing in /tmp for a cleaner to delete): the kernel
releases the locks of a process that dies, so a killed camera never keeps a slot. A camera waits for its
next picture before it asks for a turn (it never holds one idle), and one that just gave its turn back lets
the others try first. A stalled one (stuck in
FFmpeg, or stopped) keeps its slot until the service kills it, so turns are only ever a way to lower
latency, never a reason to wait: a camera that finds no slot free for ``patience`` seconds goes ahead
without one, and without turns for ``bypass`` seconds after that.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

POLL = 0.001  # seconds between attempts while every slot is taken
YIELD = 0.002  # a camera asking again this soon after giving its turn back lets the waiting ones go first
PATIENCE = 0.25  # seconds: several times the work on one 640x360 picture
BYPASS = 10.0


class Turns:
    """A context manager: ``with turns:`` holds one of ``slots`` slots of the lock file open as ``fd``.

    Examples:
        >>> turns = Turns.open(tmp / "turns.lock", slots=2)  # doctest: +SKIP
        >>> with turns:  # doctest: +SKIP
        ...     process(source.newest())
    """

    def __init__(self, fd: int, slots: int, *, patience: float = PATIENCE, bypass: float = BYPASS) -> None:
        if slots < 1:
            raise ValueError(f"turns need at least one slot, got {slots}")
        self.slots, self.patience, self.bypass = slots, patience, bypass
        self._fd = fd
        self._held: int | None = None
        self._bypass_until = 0.0
        self._released = 0.0
        self.waited = 0.0  # seconds spent waiting for a slot, in total
        self.gave_up = 0  # times no slot came free within patience

    @classmethod
    def open(cls, path: str | os.PathLike[str], slots: int, **kwargs: float) -> Turns:
        """Turns on the lock file at ``path`` (created if missing)."""
        return cls(os.open(Path(path), os.O_RDWR | os.O_CREAT, 0o600), slots, **kwargs)

    def __enter__(self) -> Turns:
        start = time.monotonic()
        if start < self._bypass_until:
            return self
        if start - self._released < YIELD:
            time.sleep(YIELD)
        first = random.randrange(self.slots)  # no slot is everyone's first choice
        while True:
            for k in range(self.slots):
                slot = (first + k) % self.slots
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as exc:
                    if exc.errno in (errno.EACCES, errno.EAGAIN):
                        continue  # taken
                    logger.warning("turns at the CPU do not work here (%s); going on without them", exc)
                    self._bypass_until = float("inf")
                    return self
                self._held = slot
                self.waited += time.monotonic() - start
                return self
            now = time.monotonic()
            if now - start >= self.patience:
                self.gave_up += 1
                self.waited += now - start
                self._bypass_until = now + self.bypass
                logger.warning("no turn came free in %.2f s (a camera holding one is stuck?); going on without "
                               "turns for %g s", self.patience, self.bypass)
                return self
            time.sleep(POLL)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._held is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._held)
            self._held = None
            self._released = time.monotonic()

    def close(self) -> None:
        os.close(self._fd)
