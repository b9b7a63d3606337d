"""Turns at the CPU for the cameras of one service: at most ``slots`` of them work on a picture at once.

With more cameras than cores, every camera processing at once shares the cores between all of them, so
each picture takes as long as the share it gets (3 cameras on 2 cores: 1.5x as long) and each camera's
latency grows with the number of cameras. Taking turns keeps the work on a picture as quick as on an idle
machine: a camera waits for a free slot, then takes its *newest* picture (the newest-frame policy drops
the rest, as it does anyway when processing is slower than the feed) and works on it alone on its core.
The cameras together process as many pictures a second either way; what waits is a picture not yet
taken, so the latency from a picture's arrival to its output stays that of one camera.

The slots are byte-range locks on one file (``fcntl.lockf``) shared by the camera processes: the kernel
releases the locks of a process that dies, so a killed camera never keeps a slot. A stalled one (stuck in
FFmpeg, or stopped) keeps its slot until the service kills it, so turns are only ever a way to lower
latency, never a reason to wait: a camera that finds no slot free for ``patience`` seconds goes ahead
without one, and without turns for ``bypass`` seconds after that.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

POLL = 0.001  # seconds between attempts while every slot is taken
PATIENCE = 0.25  # seconds: several times the work on one 640x360 picture
BYPASS = 10.0


class Turns:
    """A context manager: ``with turns:`` holds one of ``slots`` slots of the lock file at ``path``.

    Examples:
        >>> turns = Turns(tmp / "turns.lock", slots=2)  # doctest: +SKIP
        >>> with turns:  # doctest: +SKIP
        ...     process(source.newest())
    """

    def __init__(self, path: str | os.PathLike[str], slots: int, *, patience: float = PATIENCE,
                 bypass: float = BYPASS) -> None:
        if slots < 1:
            raise ValueError(f"turns need at least one slot, got {slots}")
        self.path, self.slots, self.patience, self.bypass = Path(path), slots, patience, bypass
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._held: int | None = None
        self._bypass_until = 0.0
        self.waited = 0.0  # seconds spent waiting for a slot, in total
        self.gave_up = 0  # times no slot came free within patience

    def __enter__(self) -> Turns:
        start = time.monotonic()
        if start < self._bypass_until:
            return self
        first = random.randrange(self.slots)  # no slot is everyone's first choice
        while True:
            for k in range(self.slots):
                slot = (first + k) % self.slots
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError:
                    continue
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

    def close(self) -> None:
        os.close(self._fd)
