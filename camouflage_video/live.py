"""What live sources and sinks share: credential redaction, reconnection backoff and periodic stats.

A live run never ends on its own, so it is watched from outside: :class:`LiveMonitor` rewrites the
``--stats`` file every few seconds with frames received, processed and dropped, reconnects and latency
percentiles. Stream URLs often carry ``user:pass@``; every log line and error message about a stream
goes through :func:`redact_url` first.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from camouflage_video.errors import ConfigError

if TYPE_CHECKING:
    from camouflage_video.sinks.base import Sink
    from camouflage_video.sources.base import Source
    from camouflage_video.stats import RunStats

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s?#]*@")
_SECRET_PARAMS = re.compile(
    r"(?P<key>\b(?:user(?:name)?|pass(?:word)?|pwd|token|key|secret|auth|signature|sig)=)[^&\s'\"]*", re.IGNORECASE
)


def redact_url(text: str) -> str:
    """Hide credentials in a URL, or in any text that contains URLs (error messages, log lines).

    ``user:pass@`` becomes ``***@`` and the values of query parameters such as ``password=`` or
    ``token=`` become ``***``.

    Examples:
        >>> redact_url("rtsp://admin:s3cret@cam.local:554/stream1")
        'rtsp://***@cam.local:554/stream1'
        >>> redact_url("Connection refused: 'rtmp://relay/live?token=abc&x=1'")
        "Connection refused: 'rtmp://relay/live?token=***&x=1'"
    """
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_PARAMS.sub(r"\g<key>***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials from every record it passes (the CLI installs it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_url(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:  # --debug tracebacks quote URLs too
            record.exc_text = redact_url(logging.Formatter().formatException(record.exc_info))
        return True


class LatestSlot:
    """A one-item mailbox between two threads: ``put`` replaces an item not taken yet and counts it dropped.

    This is the whole latency policy of live runs: a consumer slower than its producer always gets the
    newest item, and nothing queues up behind it.

    Examples:
        >>> slot = LatestSlot()
        >>> slot.put("a"); slot.put("b")
        >>> slot.take(timeout=0), slot.dropped
        ('b', 1)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            self.dropped += self._full
            self._item, self._full = item, True
            self._cond.notify_all()

    def take(self, timeout: float) -> Any:
        """The newest item, or ``None`` if none arrives within ``timeout`` seconds (or on ``wake``)."""
        with self._cond:
            if not self._full:
                self._cond.wait(timeout)
            item, self._item, self._full = self._item, None, False
            return item

    def wake(self) -> None:
        """Release a waiting ``take`` early (shutdown)."""
        with self._cond:
            self._cond.notify_all()


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff: ``initial``, ``initial*factor``, ... capped at ``maximum`` seconds.

    Attributes:
        initial: First wait in seconds.
        maximum: Longest wait in seconds.
        factor: Growth per attempt.
        attempts: Attempts before giving up; ``None`` retries forever.

    Examples:
        >>> [Backoff(initial=1, maximum=5).delay(n) for n in range(5)]
        [1.0, 2.0, 4.0, 5.0, 5.0]
    """

    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 2.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ConfigError(f"reconnect delays need 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if self.factor < 1:
            raise ConfigError(f"backoff factor must be >= 1, got {self.factor}")
        if self.attempts is not None and self.attempts < 0:
            raise ConfigError(f"reconnect attempts must be >= 0, got {self.attempts}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (counting from 0)."""
        return float(min(self.maximum, self.initial * self.factor ** min(attempt, 64)))

    def exhausted(self, attempt: int) -> bool:
        return self.attempts is not None and attempt >= self.attempts


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
        source: Source,
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
            latency = max(0.0, self.source.clock() - stats.last_frame_time)  # type: ignore[attr-defined]
            self._latency.append(latency)
            self._max_latency = max(self._max_latency, latency)
        if self.path is not None and time.monotonic() >= self._next_write:
            self._next_write = time.monotonic() + self.interval
            self.update(stats)
            stats.write(self.path)
        if self.then is not None:
            self.then(stats)

    def update(self, stats: RunStats) -> None:
        """Copy the source counters, latency percentiles and sink states into ``stats``."""
        with self._lock:
            samples = np.array(self._latency, dtype=np.float64) * 1000
            latency = {"window": len(samples), "max_ms": round(self._max_latency * 1000, 1)}
            if len(samples):
                for q in (50, 90, 99):
                    latency[f"p{q}_ms"] = round(float(np.percentile(samples, q)), 1)
            live = dict(self.source.counters())  # type: ignore[attr-defined]
            live["latency"] = latency
            stats.live = live
            stats.outputs = [sink.describe() for sink in self.sinks]
            for error in live.get("errors", ()):
                if error not in stats.errors:
                    stats.note_error(error)
