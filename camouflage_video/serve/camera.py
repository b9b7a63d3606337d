"""One camera of the service in a process of its own: ``python -m camouflage_video.serve.camera``.

Each camera runs in its own process so that one that fails, stalls or holds Python's GIL inside FFmpeg
(a silent server, see ``sinks/stream_worker.py``) cannot stop or slow the others, and the service can kill
and restart it. The process reads its feed, anonymizes it and writes its outputs exactly as
``camouflage-video anonymize`` does (same stages, sinks and latency policy); a feed that cannot be opened is
retried with the camera's backoff, forever.

Protocol (secrets travel on stdin, never on the command line, which every user of the machine can read):

- stdin: one JSON line, the camera's table as the cameras file gave it (defaults merged in), the
  service's process id and how it shares the cores with the other cameras (detector threads, the turns'
  lock file's inherited descriptor: ``serve.turns``);
- stdout: JSON lines ``{"event": "report", ...}`` every :data:`REPORT_INTERVAL` seconds with the camera's
  totals (the keys of :data:`camouflage_video.serve.metrics.SERIES`, latency percentiles in seconds);
- stderr: log lines, credentials redacted.

SIGTERM finalizes the recordings (the segment being written included) and closes the restreams, then the
process exits 0. An exception that ends the run (exit 1) finalizes the segment being written too: its pictures
were anonymized and written whole (``SegmentedVideoSink(salvage=True)``). A process killed outright leaves its
segment's fragmented temporary, which the service recovers before it starts the camera again
(``sinks.segments.recover_stale_segments``).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import IO, Any

import numpy as np

from camouflage_video.config import StageCache
from camouflage_video.errors import ConfigError, StreamError
from camouflage_video.frame import Frame
from camouflage_video.interrupts import InterruptOnce
from camouflage_video.monitor import LiveMonitor
from camouflage_video.redact import RedactingFilter, redact_url
from camouflage_video.runner import Runner
from camouflage_video.serve.config import CameraConfig, camera_from_table
from camouflage_video.serve.turns import Turns
from camouflage_video.sinks import Sink, open_sink
from camouflage_video.sinks.segments import SegmentedVideoSink
from camouflage_video.sinks.stream_worker import _die_with_parent
from camouflage_video.sources.stream import StreamSource
from camouflage_video.stats import RunStats
from camouflage_video.streaming import Backoff

logger = logging.getLogger(__name__)

REPORT_INTERVAL = 1.0  # seconds between reports to the service


class CameraRun:
    """Read, anonymize and write one camera until interrupted; its totals are kept for :meth:`report`."""

    def __init__(self, camera: CameraConfig, *, turns: Turns | None = None, detector_threads: int = 0) -> None:
        self.camera, self.turns = camera, turns
        self.stages = StageCache(camera.config, detector_threads=detector_threads)
        self._lock = threading.Lock()
        self._done: dict[str, float] = {}  # totals of the feed's earlier openings
        self._source: StreamSource | None = None
        self._runner: Runner | None = None
        self._monitor: LiveMonitor | None = None
        self._latency_sum, self._latency_count = 0.0, 0
        self.reopened = 0  # the feed came back after it could not be opened
        self.error: str | None = None

    def run(self) -> None:
        """Until KeyboardInterrupt (SIGTERM): open the feed, run it, open it again if it fails."""
        self.stages.load()  # a model that does not load fails here, before the feed is touched
        backoff, attempt = self.camera.stream.reconnect, 0
        while True:
            try:
                source = StreamSource(self.camera.input, options=self.camera.stream)
            except StreamError as exc:
                self.error = str(exc)
                delay = backoff.delay(attempt)
                logger.warning("%s; trying again in %.1f s", exc, delay)
                attempt += 1
                time.sleep(delay)
                continue
            if attempt:
                self.reopened += 1
                logger.warning("%s: the feed is back", self.camera.redacted_input)
            attempt, self.error = 0, None
            with source:
                self._run(source)

    def _run(self, source: StreamSource) -> None:
        camera, config = self.camera, self.camera.config
        annotators, anonymizer = self.stages(source.info)
        audio = source.audio if config.audio else None
        sinks: list[Sink] = []
        try:
            wall_origin = time.time() - source.clock()
            for output in camera.outputs:
                if "://" not in output:  # a recording: never replaced, kept when the process fails (segments.py)
                    sinks.append(SegmentedVideoSink(output, source.info, seconds=camera.segment, encoder=config.encoder,
                                                    live_audio=audio, wall_origin=wall_origin, salvage=True))
                else:
                    try:
                        sinks.append(open_sink(output, source.info, encoder=config.encoder, audio=config.audio,
                                               live_audio=audio))
                    except StreamError as exc:  # the recording must not wait for the restream server
                        logger.warning("%s; the other outputs go on, the restream connects when it can", exc)
                        sinks.append(LateRestream(output, source, config.encoder, audio))
            monitor = LiveMonitor(source, sinks, None, then=self._on_frame)
            runner = Runner(source, sinks, annotators, anonymizer, on_error=config.on_error, progress=False,
                            on_frame=monitor, turn=self.turns)
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        with self._lock:
            self._source, self._runner, self._monitor = source, runner, monitor
        try:
            runner.run()
        finally:
            with self._lock:
                self._done = self._totals()
                self._source = self._runner = self._monitor = None

    def _on_frame(self, stats: RunStats) -> None:
        source = self._source
        if source is not None and stats.last_frame_time is not None:
            self._latency_sum += max(0.0, source.clock() - stats.last_frame_time)
            self._latency_count += 1

    def _totals(self) -> dict[str, float]:
        """Totals over every opening of the feed (the current one included); call with the lock held."""
        totals = dict(self._done)
        source, runner = self._source, self._runner
        current: dict[str, float] = {}
        if source is not None and runner is not None:
            live, stats = source.counters(), runner.stats
            current = {
                "frames_received": live["frames_received"], "frames_dropped": live["frames_dropped"],
                "outage_frames": live["outage_frames"], "reconnects": live["reconnects"],
                "frames_processed": stats.frames_in, "frames_written": stats.frames_out,
                "fallback_frames": stats.fallback_frames, "damaged_frames": stats.damaged_frames,
                "faces": stats.faces_detected + stats.faces_held,
            }
        for key, value in current.items():
            totals[key] = self._done.get(key, 0) + value
        if self.turns is not None:  # the process's own, over every opening of the feed
            totals["turn_wait_seconds"] = round(self.turns.waited, 3)
            totals["turns_given_up"] = self.turns.gave_up
        return totals

    def report(self) -> dict[str, Any]:
        with self._lock:
            totals = self._totals()
            source, monitor = self._source, self._monitor
            latency: dict[str, float] = {}
            if monitor is not None:
                samples = monitor.latencies()
                if len(samples):
                    latency = {f"p{q}": round(float(np.percentile(samples, q)), 4) for q in (50, 90, 99)}
            connected = bool(source is not None and source.counters()["connected"])
        totals["reconnects"] = totals.get("reconnects", 0) + self.reopened
        return {**totals, "connected": connected, "latency": latency, "latency_sum": round(self._latency_sum, 4),
                "latency_count": self._latency_count, "error": self.error}


class LateRestream(Sink):
    """A restream whose server did not answer when the camera started: connected in the background with the
    restream's backoff (1 s, doubling, at most 10 s: each attempt starts a connection's process), its frames
    dropped (and counted) until then, while the camera's other outputs go on."""

    remote = True

    def __init__(self, target: str, source: StreamSource, encoder, audio) -> None:  # noqa: ANN001
        self.target, self.redacted = target, redact_url(target)
        self._source, self._encoder, self._audio = source, encoder, audio
        self._backoff = Backoff(initial=1.0, maximum=10.0)
        self._sink: Sink | None = None
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._connect, name="camouflage-late-restream", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        attempt = 0
        while not self._stop.wait(self._backoff.delay(attempt)):
            try:
                sink = open_sink(self.target, self._source.info, encoder=self._encoder, live_audio=self._audio)
            except (StreamError, ConfigError) as exc:
                attempt += 1
                logger.warning("restream attempt %d failed: %s", attempt, exc)
                continue
            if self._stop.is_set():
                sink.close()
                return
            self._sink = sink
            logger.warning("%s: restream connected", self.redacted)
            return

    @property
    def frames_written(self) -> int:  # type: ignore[override]
        return self._sink.frames_written if self._sink is not None else 0

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self._sink is not None:
            self._sink.write(frame, image)
        else:
            self.dropped += 1

    def close(self, *, interrupted: bool = False) -> None:
        self._stop.set()
        if self._sink is not None:
            self._sink.close(interrupted=interrupted)

    def abort(self) -> None:
        self._stop.set()
        if self._sink is not None:
            self._sink.abort()

    def describe(self) -> dict:
        if self._sink is not None:
            return self._sink.describe()
        return {"uri": self.redacted, "kind": "stream", "connected": False, "dropped": self.dropped}


def _reporter(run: CameraRun, out: IO[str], stop: threading.Event) -> None:
    while not stop.wait(REPORT_INTERVAL):
        try:
            out.write(json.dumps({"event": "report", **run.report()}) + "\n")
            out.flush()
        except (OSError, ValueError):
            return  # the service is gone; the kernel ends this process too


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the service, which stops us in order
    signal.signal(signal.SIGTERM, InterruptOnce())  # finalize the recordings, then exit
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # the service logs it at that level
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    settings = json.loads(sys.stdin.readline())
    if not _die_with_parent(int(settings["parent"])):
        return 1
    camera = camera_from_table(settings["camera"])
    turns = Turns(settings["turns"]["fd"], settings["turns"]["slots"]) if "turns" in settings else None
    run = CameraRun(camera, turns=turns, detector_threads=settings.get("detector_threads", 0))
    stop = threading.Event()
    threading.Thread(target=_reporter, args=(run, sys.stdout, stop), name="camouflage-report", daemon=True).start()
    try:
        run.run()
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for the service's log; it restarts us
        logger.error("%s: %s: %s", camera.name, type(exc).__name__, redact_url(str(exc)))
        return 1
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
