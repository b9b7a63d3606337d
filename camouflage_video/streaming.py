"""What live sources and sinks share at the lowest level: a newest-item mailbox and reconnection backoff."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from camouflage_video.errors import ConfigError
from camouflage_video.options import flag


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

    def wait(self, timeout: float) -> bool:
        """Wait until an item is there (without taking it), at most ``timeout`` seconds; whether one is."""
        with self._cond:
            if not self._full:
                self._cond.wait(timeout)
            return self._full

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

    initial: float = field(default=1.0, metadata=flag(
        "first wait before reconnecting a lost feed; doubles each attempt", name="reconnect-delay", metavar="S",
        group="live streams"))
    maximum: float = field(default=30.0, metadata=flag(
        "longest wait between reconnection attempts", name="reconnect-max-delay", metavar="S",
        group="live streams"))
    factor: float = 2.0
    attempts: int | None = field(default=None, metadata=flag(
        "give up after N failed attempts in a row", name="max-reconnects", metavar="N",
        default_text="retry forever", group="live streams"))

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
