"""Watching a live run from outside: latency samples and a ``--stats`` file rewritten every few seconds.

A live run never ends on its own. :class:`LiveMonitor` is the runner's ``on_frame`` callback for one: it
samples each frame's latency on the source's clock and rewrites the stats with the source's counters
(frames received, processed and dropped, reconnects) and latency percentiles.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from camouflage_video.errors import ConfigError

if TYPE_CHECKING:
    from camouflage_video.sinks.base import Sink
    from camouflage_video.stats import RunStats


class LiveSource(Protocol):
    """What the monitor reads from a live source (``StreamSource`` is one)."""

    def clock(self) -> float:
        """Seconds on the clock the frames' arrival times are on."""

    def counters(self) -> Mapping[str, Any]:
        """Frames received and dropped, reconnects, errors... as they are now."""


class LiveMonitor:
    """The runner's ``on_frame`` callback for live runs: latency samples and a periodic ``--stats`` file.

    Latency is measured from a frame's arrival at the source (its timestamp is its arrival time on the
    source's clock) to the moment the outputs have taken it. ``stats.live`` holds the source's counters, the
    latency percentiles over the last ``window`` frames, and is rewritten to ``path`` every
    ``interval`` seconds.

    Args:
        source: A live source with ``counters()`` and ``clock()`` (see ``StreamSource``).
        sinks: The run's sinks; their ``describe()`` goes into the stats as it changes (restream state).
        path: Where to rewrite the stats JSON; ``None`` keeps them in memory only.
        interval: Seconds between rewrites.
        window: Frames the latency percentiles are computed over.
        then: Another ``on_frame`` callback to call after this one (the caller's own).

    Examples:
        >>> monitor = LiveMonitor(src, sinks, "stats.json", interval=5)  # doctest: +SKIP
        >>> Runner(src, sinks, annotators, anonymizer, on_frame=monitor).run()  # doctest: +SKIP
    """

    def __init__(
        self,
        source: LiveSource,
        sinks: Sequence[Sink],
        path: str | os.PathLike[str] | None = None,
        *,
        interval: float = 5.0,
        window: int = 1000,
        then: Callable[[RunStats], None] | None = None,
    ) -> None:
        if interval <= 0:
            raise ConfigError(f"stats interval must be > 0, got {interval}")
        self.source, self.sinks, self.path, self.interval, self.then = source, list(sinks), path, interval, then
        self._latency: collections.deque[float] = collections.deque(maxlen=window)
        self._max_latency = 0.0
        self._next_write = time.monotonic() + interval
        self._lock = threading.Lock()

    def __call__(self, stats: RunStats) -> None:
        if stats.last_frame_time is not None:
            latency = max(0.0, self.source.clock() - stats.last_frame_time)
            self._latency.append(latency)
            self._max_latency = max(self._max_latency, latency)
        if self.path is not None and time.monotonic() >= self._next_write:
            self._next_write = time.monotonic() + self.interval
            self.update(stats)
            stats.write(self.path)
        if self.then is not None:
            self.then(stats)

    def latencies(self) -> np.ndarray:
        """The latency samples of the window, in seconds, oldest first (a copy)."""
        return np.array(list(self._latency), dtype=np.float64)  # list() copies in one step under the GIL

    def update(self, stats: RunStats) -> None:
        """Copy the source counters, latency percentiles and sink states into ``stats``."""
        with self._lock:
            samples = np.array(self._latency, dtype=np.float64) * 1000
            latency = {"window": len(samples), "max_ms": round(self._max_latency * 1000, 1)}
            if len(samples):
                for q in (50, 90, 99):
                    latency[f"p{q}_ms"] = round(float(np.percentile(samples, q)), 1)
            live = dict(self.source.counters())
            live["latency"] = latency
            stats.live = live
            stats.outputs = [sink.describe() for sink in self.sinks]
            for error in live.get("errors", ()):
                if error not in stats.errors:
                    stats.note_error(error)
