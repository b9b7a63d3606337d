"""The service: one process per camera, restarted with backoff, and the metrics of all of them.

The service itself does no video work. It starts each camera's process (:mod:`camouflage_video.serve.camera`),
reads its reports, serves ``/metrics`` and watches it: a process that exits is restarted with the camera's
backoff, one that stops reporting for ``stall_timeout`` seconds (stuck in FFmpeg with the GIL held) is
killed and restarted. Stopping (Ctrl-C, SIGTERM) sends SIGTERM to every camera, which finalizes its
recordings and closes its restreams; a camera that has not finished after ``shutdown_timeout`` is killed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from camouflage_video.config import check_dependencies
from camouflage_video.interrupts import Finalized, interrupts_deferred
from camouflage_video.redact import redact_url
from camouflage_video.serve.config import CameraConfig, ServeConfig
from camouflage_video.serve.metrics import CameraMetrics, MetricsServer
from camouflage_video.sinks.segments import recover_stale_segments
from camouflage_video.streaming import Backoff

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
           "CRITICAL": logging.CRITICAL}
#: A process that ran this long before it ended starts again after the shortest wait.
_HEALTHY_RUN = 60.0


class CameraProcess:
    """The service's handle on one camera's process: starts it, reads it, restarts it, stops it."""

    def __init__(self, camera: CameraConfig, *, stall_timeout: float, backoff: Backoff | None = None,
                 sharing: dict | None = None) -> None:
        self.camera, self.stall_timeout = camera, stall_timeout
        self.sharing = sharing or {}  # how it shares the cores with the other cameras (see serve())
        self.backoff = backoff or Backoff(initial=1.0, maximum=30.0)
        self.metrics = CameraMetrics(camera.name)
        self.proc: subprocess.Popen | None = None
        self.started_at = self.last_report = 0.0
        self.failures = 0
        self.next_start = 0.0
        self.starts = 0
        self._recovery: threading.Thread | None = None  # publishing an ended process's segments

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
        turns = self.sharing.get("turns")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camouflage_video.serve.camera"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            pass_fds=(turns["fd"],) if turns else (),
            start_new_session=True,  # a Ctrl-C in the terminal reaches the service, which stops cameras in order
        )
        settings = {"camera": self.camera.table, "parent": os.getpid(), **self.sharing}
        try:
            self.proc.stdin.write(json.dumps(settings).encode() + b"\n")
            self.proc.stdin.close()
        except OSError:
            pass  # it died at once; poll() restarts it
        self.started_at = self.last_report = time.monotonic()
        self.starts += 1
        if self.starts > 1:
            self.metrics.restarts += 1
        self.metrics.up = True
        proc = self.proc
        threading.Thread(target=self._read_reports, args=(proc,), name=f"camouflage-{self.camera.name}-reports",
                         daemon=True).start()
        threading.Thread(target=self._read_log, args=(proc,), name=f"camouflage-{self.camera.name}-log",
                         daemon=True).start()

    def _read_reports(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "report" and proc is self.proc:
                self.metrics.report = event
                self.last_report = time.monotonic()

    def _read_log(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            text = redact_url(line.decode(errors="replace").rstrip())
            level, _, message = text.partition(" ")
            if level in _LEVELS and message:
                logger.log(_LEVELS[level], "[%s] %s", self.camera.name, message)
            elif text:  # FFmpeg or Python itself
                logger.warning("[%s] %s", self.camera.name, text)

    def poll(self, now: float) -> None:
        """Restart the process if it ended (after its backoff) or kill it if it stalled."""
        proc = self.proc
        if proc is not None:
            code = proc.poll()
            if code is None and now - self.last_report > self.stall_timeout:
                logger.error("[%s] no report for %g s: killing the camera's process and starting it again",
                             self.camera.name, self.stall_timeout)
                proc.kill()
                code = proc.wait()
            if code is None:
                return
            self.proc = None
            self.metrics.process_ended()
            # In a thread: a long segment takes a while to cut and check, and the other cameras' processes
            # are watched by this same loop. The next process starts only once it is done (see below).
            self._start_recovery()
            self.failures = 0 if now - self.started_at > _HEALTHY_RUN else self.failures + 1
            delay = self.backoff.delay(max(0, self.failures - 1))
            self.next_start = now + delay
            logger.error("[%s] the camera's process ended (exit code %s); starting it again in %.1f s",
                         self.camera.name, code, delay)
        if self.proc is None and now >= self.next_start and not self.recovering:
            self.start()

    @property
    def recovering(self) -> bool:
        """Whether an ended process's segments are still being published (its successor waits for that)."""
        return self._recovery is not None and self._recovery.is_alive()

    # -- stopping ---------------------------------------------------------------------------------

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait until ``deadline`` for the process to finish its recordings (then kill it), and for what an ended
        process left to be published (at least ``_RECOVERY_GRACE`` seconds more: a killed segment is cut and
        checked in seconds). A recovery still running then is given up: it only ever publishes a checked copy
        or a file it cut at a fragment's end, so the next start, or ``camouflage-video recover``, does it
        again from the start."""
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("[%s] did not finish its recordings in time; killed", self.camera.name)
                proc.kill()
                proc.wait()
            self.metrics.process_ended()
            self.proc = None
            self._start_recovery()
        if self._recovery is not None:
            self._recovery.join(timeout=max(_RECOVERY_GRACE, deadline - time.monotonic()))
            if self._recovery.is_alive():
                logger.error("[%s] was still publishing what its ended process wrote when the service stopped; "
                             "the next start (or 'camouflage-video recover') publishes it", self.camera.name)

    def _start_recovery(self) -> None:
        self._recovery = threading.Thread(target=self.recover, name=f"camouflage-{self.camera.name}-recovery",
                                          daemon=True)
        self._recovery.start()

    def recover(self) -> None:
        """Publish what a process that was killed (or crashed) had written of its segments, before the next one
        starts: the anonymized pictures up to its last complete fragment (see ``sinks/segments.py``)."""
        for output in self.camera.outputs:
            if "://" not in output:
                try:
                    recover_stale_segments(Path(output))  # each recovered segment is logged
                except Exception:  # noqa: BLE001 - one output's failure must not stop the others' recovery
                    logger.exception("[%s] could not recover the segments of %s; they are left for the next "
                                     "start", self.camera.name, output)


#: Seconds a stopping service gives a recovery in progress past its stop deadline.
_RECOVERY_GRACE = 5.0


def serve(
    config: ServeConfig,
    *,
    stop: threading.Event | None = None,
    shutdown_timeout: float = 20.0,
    on_ready=None,  # noqa: ANN001 - (metrics address | None) -> None
) -> None:
    """Run every camera of ``config`` until ``stop`` is set or KeyboardInterrupt (SIGTERM through the CLI).

    Everything that can be checked is checked before the first camera starts: the methods' dependencies and
    the metrics port.

    Args:
        config: The cameras (see :func:`~camouflage_video.serve.config.load_config`).
        stop: Set it to stop the service (an embedding program); the CLI stops it with a signal.
        shutdown_timeout: Seconds the cameras have to finalize their recordings when stopping.
        on_ready: Called with the metrics server's ``(host, port)`` (``None`` without one) once all cameras
            have started.

    Raises:
        ConfigError: The metrics port cannot be bound.
        MissingDependencyError: A camera's method needs something not installed.
        KeyboardInterrupt: After every camera has finalized its recordings.

    Examples:
        >>> serve(load_config("cameras.toml"))  # doctest: +SKIP
    """
    for camera in config.cameras:
        check_dependencies(camera.config)
    sharing, lock = _sharing(len(config.cameras))
    cameras = [CameraProcess(camera, stall_timeout=config.stall_timeout, backoff=camera.stream.reconnect,
                             sharing=sharing) for camera in config.cameras]
    server = MetricsServer(config.metrics, lambda: [c.metrics for c in cameras]) if config.metrics else None
    stop = stop or threading.Event()
    try:
        if server is not None:
            server.start()
        for camera in cameras:
            camera.start()
        logger.warning("serving %d cameras%s", len(cameras),
                       f"; metrics at http://{server.address[0]}:{server.address[1]}/metrics" if server else "")
        if on_ready is not None:
            on_ready(server.address if server else None)
        while not stop.wait(0.2):
            now = time.monotonic()
            for camera in cameras:
                camera.poll(now)
    except KeyboardInterrupt:
        raise Finalized from None  # raised once the cameras below have finalized their recordings
    finally:
        with interrupts_deferred():  # a second Ctrl-C must not cut the cameras' finalizing short
            for camera in cameras:
                camera.terminate()
            deadline = time.monotonic() + shutdown_timeout
            for camera in cameras:
                camera.wait(deadline)
            if server is not None:
                server.close()
            if lock is not None:
                os.close(lock)


def _sharing(cameras: int) -> tuple[dict, int | None]:
    """How the cameras share the cores, and the turns' lock file (an open descriptor) if they take turns.

    One camera alone detects on every core. Several split the cores (threads that wait for each other at
    every layer waste the time other cameras need), and where there are more cameras than shares they take
    turns (``serve.turns``), so that a picture is worked on as quickly as on an idle machine.
    """
    if cameras < 2:
        return {}, None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // cameras)
    slots = max(1, cores // threads)
    if cameras <= slots:
        return {"detector_threads": threads}, None
    folder = tempfile.mkdtemp(prefix="camouflage-serve-")
    path = os.path.join(folder, "turns.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.unlink(path)  # the cameras inherit the open file; nothing is left behind for anyone
    os.rmdir(folder)
    return {"detector_threads": threads, "turns": {"fd": fd, "slots": slots}}, fd
