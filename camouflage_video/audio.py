"""Live audio on the run's timeline: one contiguous PCM track that every output encodes from.

A live source stamps each picture with its arrival time (see ``sources/stream.py``). Its audio is placed on
the same clock: a sample's time is its media time plus the connection's offset between arrival and media
time, taken as the smallest offset of the last pictures (the least delayed ones: network and decoding only
ever add delay). The track has no holes and no overlaps. Where the feed has no audio (an outage, a
reconnect, a feed whose audio stalls) it gets silence; audio that would land more than ``tolerance`` away
from where the track has got to is moved there (silence inserted, or the overlapping head dropped), so
neither side drifts across reconnects or clock drift. The track is decoded once and each output subscribes
to it and encodes it itself (AAC, Opus for WebM): a recording and a restream then carry the same audio.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

#: Seconds a newly placed piece of audio may sit off the track's end before the track moves to it.
TOLERANCE = 0.02
#: Seconds of audio a subscriber may fall behind before the oldest is dropped (it then reads silence).
KEEP = 10.0


class AudioTimeline:
    """A contiguous PCM track (int16, ``channels`` interleaved) whose sample 0 is the run's time 0.

    Args:
        rate: Samples per second.
        channels: 1 or 2.
        tolerance: See :data:`TOLERANCE`.

    Examples:
        >>> track = AudioTimeline(8000, 1)
        >>> sub = track.subscribe()
        >>> track.add(np.ones((800, 1), np.int16), start=0.5)  # 0.5 s of silence go first
        >>> len(sub.read(8000)), track.silence_samples
        (4800, 4000)
    """

    def __init__(self, rate: int, channels: int, *, tolerance: float = TOLERANCE) -> None:
        if rate <= 0 or channels not in (1, 2):
            raise ValueError(f"audio needs a positive rate and 1 or 2 channels, got {rate} Hz, {channels}")
        self.rate, self.channels = int(rate), int(channels)
        self.layout = "mono" if channels == 1 else "stereo"
        self._tolerance = round(tolerance * rate)
        self._next = 0  # the sample the next piece goes to
        self._subscribers: list[AudioSubscription] = []
        self._lock = threading.Lock()
        self.silence_samples = 0  # inserted where the feed had no audio
        self.trimmed_samples = 0  # dropped because they overlapped audio already placed
        self.resyncs = 0

    @property
    def end(self) -> float:
        """Seconds of audio placed so far."""
        return self._next / self.rate

    def subscribe(self) -> AudioSubscription:
        """A reader that gets every sample placed from now on."""
        with self._lock:
            subscription = AudioSubscription(self, self._next)
            self._subscribers.append(subscription)
            return subscription

    def add(self, pcm: np.ndarray, start: float) -> None:
        """Place ``pcm`` (``(n, channels)`` int16) starting at ``start`` seconds."""
        first = round(start * self.rate)
        with self._lock:
            if first > self._next + self._tolerance:
                self.resyncs += self._next > 0
                self._silence(first - self._next)
            elif first < self._next - self._tolerance:
                drop = self._next - first
                self.resyncs += drop < len(pcm)
                self.trimmed_samples += min(drop, len(pcm))
                pcm = pcm[drop:]
            if len(pcm):
                self._push(np.ascontiguousarray(pcm, np.int16))

    def fill_until(self, seconds: float) -> None:
        """Silence up to ``seconds`` where no audio came (the feed is down, or sends no audio)."""
        last = round(seconds * self.rate)
        with self._lock:
            if last > self._next:
                self._silence(last - self._next)

    def _silence(self, samples: int) -> None:
        self.silence_samples += samples
        self._push(np.zeros((samples, self.channels), np.int16))

    def _push(self, pcm: np.ndarray) -> None:
        for subscriber in self._subscribers:
            subscriber._append(self._next, pcm)
        self._next += len(pcm)


class AudioSubscription:
    """One output's reader of an :class:`AudioTimeline`: samples in order, from where it subscribed."""

    def __init__(self, timeline: AudioTimeline, start: int) -> None:
        self.timeline, self.rate = timeline, timeline.rate
        self.channels, self.layout = timeline.channels, timeline.layout
        self.position = start  # the next sample this reader returns
        self._chunks: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._held = 0
        self._keep = round(KEEP * timeline.rate)
        self._lock = threading.Lock()
        self.lost_samples = 0  # fell behind by more than KEEP seconds: read as silence
        #: Outputs read it in turn (a recording's segments): closing one of them does not end it.
        self.shared = False

    def _append(self, first: int, pcm: np.ndarray) -> None:
        with self._lock:
            self._chunks.append((first, pcm))
            self._held += len(pcm)
            while self._held > self._keep and len(self._chunks) > 1:
                _, old = self._chunks.popleft()
                self._held -= len(old)

    def read(self, until: int, *, pad: bool = False) -> np.ndarray:
        """Samples from :attr:`position` up to (not including) sample ``until``, as far as placed; with
        ``pad``, silence for what is not placed yet (the end of an output)."""
        pieces = []
        with self._lock:
            while self.position < until and self._chunks:
                first, pcm = self._chunks[0]
                if first + len(pcm) <= self.position:  # already read
                    self._chunks.popleft()
                    self._held -= len(pcm)
                    continue
                if first > self.position:  # dropped while this reader was behind
                    gap = min(first, until) - self.position
                    self.lost_samples += gap
                    pieces.append(np.zeros((gap, self.channels), np.int16))
                    self.position += gap
                    continue
                take = pcm[self.position - first : until - first]
                pieces.append(take)
                self.position += len(take)
        if pad and self.position < until:
            pieces.append(np.zeros((until - self.position, self.channels), np.int16))
            self.position = until
        if not pieces:
            return np.zeros((0, self.channels), np.int16)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]

    def skip_to(self, sample: int) -> None:
        """Drop what comes before ``sample`` (an output that starts later than it subscribed)."""
        if sample > self.position:
            self.read(sample)
            self.position = max(self.position, sample)

    def close(self) -> None:
        """Stop receiving samples."""
        with self.timeline._lock:
            if self in self.timeline._subscribers:
                self.timeline._subscribers.remove(self)
