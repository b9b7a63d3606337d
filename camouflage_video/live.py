"""What live sources and sinks share: credential redaction, reconnection backoff and periodic stats.

A live run never ends on its own, so it is watched from outside: :class:`LiveMonitor` rewrites the
``--stats`` file every few seconds with frames received, processed and dropped, reconnects and latency
percentiles. Stream URLs often carry ``user:pass@``, tokens in their query or an RTMP stream key in their
path; every log line, error message, stats file and traceback about a stream goes through :func:`redact_url`
first, the one place that knows what a secret in a URL looks like.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from camouflage_video.errors import ConfigError
from camouflage_video.options import flag

if TYPE_CHECKING:
    from camouflage_video.sinks.base import Sink
    from camouflage_video.sources.base import Source
    from camouflage_video.stats import RunStats

_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# host[:port] right after the user-info's '@': a name, an IPv4 address or a bracketed IPv6 address.
_HOST = re.compile(r"(?:\[[0-9A-Za-z:.%]*\]|[A-Za-z0-9._~%-]*)(?::[0-9]*)?")
_HOST_END = frozenset("/?#'\"<>,;)]}") | frozenset(" \t\r\n")
_URL_REST = re.compile(r"[^\s'\"<>]*")  # path, query and fragment run to the next space or quote
_TRAILING = ".,;:)]}!"  # punctuation after a URL in a sentence ("... rtmp://h/app/key: refused")
_SECRET_WORDS = re.compile(r"token|key|secret|pass|pwd|auth|sig|credential|session|user", re.IGNORECASE)
# NAME=VALUE outside URLs (option dumps, messages) with a secret-looking NAME.
_SECRET_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]+)=(?P<value>[^&\s'\",;)]*)")
# 'name': 'value' items of a dict's repr (input options in a message or traceback).
_SECRET_ITEM = re.compile(
    r"(?P<q>['\"])(?P<key>[A-Za-z0-9_.-]+)(?P=q)(?P<sep>\s*:\s*)(?P<vq>['\"])(?P<value>[^'\"]*)(?P=vq)"
)
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*")  # usage text: "expected KEY=VALUE" shows no secret
#: Schemes whose last path segment after the application is a stream key (YouTube, Twitch, ...).
RTMP_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts"})
MASK = "***"


def redact_url(text: str) -> str:
    """Hide credentials in a URL, or in any text that contains URLs (error messages, log lines, tracebacks).

    What stays is what a user needs to recognise the stream: scheme, host, port and path. Hidden are:

    - the user-info (``user:pass@`` becomes ``***@``). It ends at the *last* ``@`` before a host, so a
      password with ``@``, ``/``, ``?``, ``#`` or a space is hidden whole, never in part;
    - the values of query and fragment parameters whose names look secret (``password=``, ``token=``,
      ``access_token=``, ``api_key=``, ``streamkey=``, ``sig=``, ... in any case);
    - the stream key of an RTMP URL, its last path segment after the application
      (``rtmp://host/app/KEY`` becomes ``rtmp://host/app/***``);
    - outside URLs, the values of ``NAME=VALUE`` pairs and ``'NAME': 'VALUE'`` dict items with such names.

    An ``@`` later in the same line is taken for the end of the user-info when in doubt: a URL may then
    lose more than its credentials, never keep part of them. Applying it twice changes nothing more.

    Examples:
        >>> redact_url("rtsp://admin:s3cret@cam.local:554/stream1")
        'rtsp://***@cam.local:554/stream1'
        >>> redact_url("rtsp://admin:p#ss/w?rd@cam.local/stream1")
        'rtsp://***@cam.local/stream1'
        >>> redact_url("Connection refused: 'rtmp://relay/live/sk-123?access_token=abc&x=1'")
        "Connection refused: 'rtmp://relay/live/***?access_token=***&x=1'"
    """
    pieces, pos = [], 0
    starts = list(_SCHEME.finditer(text))
    for i, match in enumerate(starts):
        if match.start() < pos:
            continue  # inside the user-info of the URL before
        line_end = text.find("\n", match.end())
        region_end = len(text) if line_end < 0 else line_end
        if i + 1 < len(starts):
            region_end = min(region_end, starts[i + 1].start())
        pieces.append(_redact_pairs(text[pos : match.start()]))
        url, length = _redact_one(match.group("scheme"), text, match.end(), region_end)
        pieces.append(text[match.start() : match.end()] + url)
        pos = match.end() + length
    pieces.append(_redact_pairs(text[pos:]))
    return "".join(pieces)


def _redact_one(scheme: str, text: str, start: int, end: int) -> tuple[str, int]:
    """The redacted form of the URL whose authority starts at ``text[start]``, and how much of it was read."""
    at = _userinfo_end(text, start, end)
    host_start = start if at < 0 else at + 1
    host_end = _HOST.match(text, host_start, end).end()
    rest = _URL_REST.match(text, host_end, end).group()
    rest = rest.rstrip(_TRAILING)
    path, query_mark, query = rest.partition("?")
    path, fragment_mark, fragment = path.partition("#") if not query_mark else (path, "", "")
    if query_mark:
        query, fragment_mark, fragment = query.partition("#")
    if scheme.lower() in RTMP_SCHEMES:
        head, slash, key = path.rpartition("/")
        if key and head.strip("/"):  # [/]app[/instance]/key (a malformed port may leave out the first /)
            path = head + slash + MASK
    redacted = (
        ("" if at < 0 else MASK + "@") + text[host_start:host_end] + path
        + query_mark + _redact_params(query) + fragment_mark + _redact_params(fragment)
    )
    return redacted, host_end + len(rest) - start


def _userinfo_end(text: str, start: int, end: int) -> int:
    """Index of the ``@`` that ends the user-info (the last one followed by a host), or -1 if there is none."""
    at = text.rfind("@", start, end)
    while at >= 0:
        host_end = _HOST.match(text, at + 1, end).end()
        if host_end == end or text[host_end] in _HOST_END:
            return at
        at = text.rfind("@", start, at)
    return -1


def _redact_params(params: str) -> str:
    if not params:
        return params
    parts = []
    for part in params.split("&"):
        name, sep, _ = part.partition("=")
        parts.append(f"{name}={MASK}" if sep and _SECRET_WORDS.search(name) else part)
    return "&".join(parts)


def _redact_pairs(text: str) -> str:
    if ":" in text:
        text = _SECRET_ITEM.sub(
            lambda m: m.group() if not _SECRET_WORDS.search(m.group("key"))
            else f"{m['q']}{m['key']}{m['q']}{m['sep']}{m['vq']}{MASK}{m['vq']}",
            text,
        )
    if "=" not in text:
        return text
    def hide(match: re.Match[str]) -> str:
        key, value = match.group("key"), match.group("value")
        if not _SECRET_WORDS.search(key) or _PLACEHOLDER.fullmatch(key) and _PLACEHOLDER.fullmatch(value):
            return match.group()
        return f"{key}={MASK}"

    return _SECRET_PAIR.sub(hide, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials from every record it passes (the CLI installs it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_url(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:  # --debug tracebacks quote URLs too
            record.exc_text = redact_url(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_url(record.stack_info)
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
