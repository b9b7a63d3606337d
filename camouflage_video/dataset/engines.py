"""Where the files are anonymized: local worker processes, or Ray actors on a cluster.

Both engines run :class:`~camouflage_video.dataset.worker.FileWorker` (models loaded once per worker),
hand each worker one file at a time (Ray: a small fixed number queued per actor), and give every result
back to the driver, which alone writes the manifest. Memory stays bounded: a worker holds one file's
frames in flight, the driver holds one small record per file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset.manifest import config_hash
from camouflage_video.dataset.worker import FileWorker, Task, mark_failed, new_record, one_line
from camouflage_video.errors import ConfigError, ModelError
from camouflage_video.interrupts import InterruptOnce
from camouflage_video.redact import RedactingFilter

logger = logging.getLogger(__name__)

OnResult = Callable[[dict[str, Any]], None]
OnFrames = Callable[[int], None]


class Interrupts:
    """Ctrl-C handling for a dataset run: the first press stops handing out files and lets the files in
    flight finish (their outputs and records stay valid); the second aborts them; later ones only wait.

    Outside the main thread signals cannot be caught, and a Ctrl-C simply raises there as usual.

    Examples:
        >>> with Interrupts() as interrupts:  # doctest: +SKIP
        ...     engine.run(tasks, on_result, on_frames, interrupts)
        >>> interrupts.stop_requested  # doctest: +SKIP
        False
    """

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None
        self._installed = False

    @property
    def stop_requested(self) -> bool:
        return self.count > 0

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 2:
            raise KeyboardInterrupt
        if self.count > 2:  # the abort is under way: a third press must not cut the manifest's last records
            logger.warning("already aborting: recording what finished (kill -9 loses it)")

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            if isinstance(self._previous, InterruptOnce) and self.count:
                self._previous.count += self.count  # the caller's handler knows we are stopping: it only counts
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


# -- local worker processes ------------------------------------------------------------------------


@dataclass
class _Slot:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: Task | None = None
    ready: bool = False
    dead: bool = False
    reported: int = 0


class LocalEngine:
    """Worker processes on this machine, each with its own loaded models.

    Processes rather than threads: decoding, detection and encoding of one file already use several
    threads, and a process that crashes on a malformed file (a segfault in a decoder) takes only that
    file down: it is recorded as failed and the worker is replaced.

    Args:
        config: The run's configuration.
        workers: Number of worker processes.
        export_tracks: Write each input's face tracks beside its output.
        log_level: Logging level for the workers' messages (``None`` keeps Python's default).

    Examples:
        >>> engine = LocalEngine(AnonymizeConfig(method="blur"), workers=2)  # doctest: +SKIP
        >>> engine.run(tasks, manifest.append, frames_bar.update, Interrupts())  # doctest: +SKIP
    """

    name = "local"

    def __init__(
        self,
        config: AnonymizeConfig,
        *,
        workers: int = 1,
        export_tracks: bool = False,
        log_level: int | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.config = config
        self.workers = workers
        self.export_tracks = export_tracks
        self.log_level = log_level
        # spawn, not fork: the driver may hold threads (progress bars) and libraries that do not survive a fork.
        self._context = multiprocessing.get_context("spawn")

    def run(self, tasks: Sequence[Task], on_result: OnResult, on_frames: OnFrames, interrupts: Interrupts) -> None:
        """Process ``tasks``; returns when all are done, or those in flight are after a stop request."""
        pending = deque(tasks)
        slots = [self._start() for _ in range(min(self.workers, len(pending)))]
        warned = False
        try:
            while True:
                if interrupts.stop_requested and pending:
                    pending.clear()
                if interrupts.stop_requested and not warned and any(s.task for s in slots):
                    busy = sum(1 for s in slots if s.task)
                    logger.warning("stopping: finishing %d file(s) in flight; press Ctrl-C again to abort them", busy)
                    warned = True
                for slot in slots:
                    if slot.ready and not slot.dead and slot.task is None and pending:
                        slot.task, slot.reported = pending.popleft(), 0
                        slot.conn.send(slot.task)
                if not pending and not any(s.task for s in slots):
                    return
                self._poll(slots, pending, on_result, on_frames, interrupts)
        finally:
            self._stop(slots, abort=interrupts.count > 1)

    def _start(self) -> _Slot:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child, self.config, self.export_tracks, self.log_level),
            name="camouflage-dataset-worker",
            daemon=True,
        )
        # Started with SIGINT ignored (exec keeps that, and Python then leaves it alone), so a Ctrl-C
        # that reaches the whole process group cannot kill a worker while it is still importing.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        child.close()
        return _Slot(process, parent)

    def _poll(
        self,
        slots: list[_Slot],
        pending: deque[Task],
        on_result: OnResult,
        on_frames: OnFrames,
        interrupts: Interrupts,
    ) -> None:
        waitables: dict[object, _Slot] = {}
        for slot in slots:
            if not slot.dead:
                waitables[slot.conn] = slot
                waitables[slot.process.sentinel] = slot
        for ready in wait(list(waitables), timeout=0.5):
            slot = waitables[ready]
            if slot.dead:
                continue
            if ready is slot.conn:
                try:
                    kind, payload = slot.conn.recv()
                except (EOFError, OSError):
                    kind, payload = "died", None
            else:
                kind, payload = "died", None
            if kind == "frames":
                slot.reported += payload
                on_frames(payload)
            elif kind == "done":
                slot.task = None
                on_frames(payload["frames"] - slot.reported)
                on_result(payload)
            elif kind == "ready":
                slot.ready = True
            elif kind == "fatal":
                raise payload if isinstance(payload, BaseException) else ModelError(str(payload))
            else:
                self._bury(slot, slots, pending, on_result, on_frames, interrupts)

    def _bury(
        self,
        slot: _Slot,
        slots: list[_Slot],
        pending: deque[Task],
        on_result: OnResult,
        on_frames: OnFrames,
        interrupts: Interrupts,
    ) -> None:
        """A worker died: its file is recorded as failed, and a fresh worker takes its place."""
        slot.dead = True
        slot.process.join(timeout=5)
        code = slot.process.exitcode
        reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if not slot.ready:
            if interrupts.stop_requested:
                return
            raise ModelError(f"a dataset worker process died while starting ({reason})")
        if slot.task is not None:
            task, slot.task = slot.task, None
            logger.warning("%s: the worker process died (%s) while anonymizing it", task.relative, reason)
            record = mark_failed(
                task,
                new_record(task, self.config.method, config_hash(self.config)),
                f"WorkerDied: the worker process died ({reason})",
            )
            on_frames(-slot.reported)
            on_result(record)
        if pending and not interrupts.stop_requested:
            slots[slots.index(slot)] = self._start()

    def _stop(self, slots: list[_Slot], *, abort: bool) -> None:
        for slot in slots:
            if slot.dead:
                continue
            if abort:
                slot.process.terminate()
            else:
                with contextlib.suppress(OSError):  # a worker that is already gone needs no goodbye
                    slot.conn.send(None)
        deadline = time.monotonic() + 10
        for slot in slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()


class _FrameReporter:
    """Sends the frame count of the file in progress to the driver, at most a few times a second."""

    def __init__(self, conn: Connection, interval: float = 0.25) -> None:
        self.conn, self.interval = conn, interval
        self.sent, self.last = 0, time.monotonic()

    def __call__(self, frames: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            # A broken pipe (the driver died) raises here and aborts the file: no orphan keeps working.
            self.conn.send(("frames", frames - self.sent))
            self.sent, self.last = frames, now


def _worker_main(conn: Connection, config: AnonymizeConfig, export_tracks: bool, log_level: int | None) -> None:
    """Entry point of a local worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what a Ctrl-C means (see _start)
    # An abort (a second Ctrl-C) terminates the worker: unwinding lets the file in flight be discarded and
    # what the process holds (its semaphores) be let go, where dying at once left them to the resource tracker,
    # which warned about "leaked semaphore objects".
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    if log_level is not None:
        logging.basicConfig(level=log_level, format="camouflage-video: %(levelname)s: %(message)s")
        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactingFilter())  # as the driver's: no secret, one line per record
    try:
        worker = FileWorker(config, export_tracks)
    except Exception as exc:  # noqa: BLE001 - handed to the driver, which raises it
        conn.send(("fatal", portable(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        record = worker.process(task, on_frames=_FrameReporter(conn))
        try:
            conn.send(("done", record))
        except OSError:
            return


def _exit_on_terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else a ModelError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling problem means: send the text instead
        return ModelError(one_line(exc))
    return exc
