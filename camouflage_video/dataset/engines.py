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

from camouflage_video._deps import require
from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset.manifest import config_hash
from camouflage_video.dataset.worker import FileWorker, Task, mark_failed, new_record, one_line
from camouflage_video.errors import ConfigError, ModelError
from camouflage_video.interrupts import InterruptOnce

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
    if log_level is not None:
        logging.basicConfig(level=log_level, format="camouflage-video: %(levelname)s: %(message)s")
    try:
        worker = FileWorker(config, export_tracks)
    except Exception as exc:  # noqa: BLE001 - handed to the driver, which raises it
        conn.send(("fatal", _portable(exc)))
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


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else a ModelError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling problem means: send the text instead
        return ModelError(one_line(exc))
    return exc


# -- Ray -------------------------------------------------------------------------------------------


class _RayWorker:
    """The Ray actor: a FileWorker whose start-up error is returned by ``ready()`` rather than lost."""

    def __init__(self, config: AnonymizeConfig, export_tracks: bool) -> None:
        self.error: Exception | None = None
        try:
            self.worker: FileWorker | None = FileWorker(config, export_tracks)
        except Exception as exc:  # noqa: BLE001 - returned to the driver by ready()
            self.worker, self.error = None, _portable(exc)

    def ready(self) -> Exception | None:
        return self.error

    def process(self, task: Task) -> dict[str, Any]:
        assert self.worker is not None  # the driver only sends work to actors that reported ready
        return self.worker.process(task)


class RayEngine:
    """Ray actors, each a worker with its own loaded models, on a local or remote Ray cluster.

    Every node must see the input and output folders at the same paths (a shared file system); the
    driver walks the input, writes the manifest and hands out absolute paths.

    Args:
        config: The run's configuration.
        workers: Number of actors; ``None`` fills the cluster (GPUs / ``gpus_per_worker``, else CPUs /
            ``cpus_per_worker``).
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); ``None`` connects to
            ``RAY_ADDRESS`` or starts a local Ray. Ignored when Ray is already initialized.
        gpus_per_worker: GPUs reserved by each actor (fractions share a GPU).
        cpus_per_worker: CPUs reserved by each actor.
        export_tracks: Write each input's face tracks beside its output.
        tasks_per_worker: Files queued per actor (backpressure): 2 keeps an actor busy while its next
            file travels, without piling up work that a dying node would take down with it.

    Examples:
        >>> engine = RayEngine(AnonymizeConfig(method="base"), address="auto", gpus_per_worker=1)  # doctest: +SKIP
    """

    name = "ray"

    def __init__(
        self,
        config: AnonymizeConfig,
        *,
        workers: int | None = None,
        address: str | None = None,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
        export_tracks: bool = False,
        tasks_per_worker: int = 2,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker < 0:
            raise ConfigError("gpus-per-worker and cpus-per-worker must not be negative")
        if tasks_per_worker < 1:
            raise ConfigError(f"tasks_per_worker must be at least 1, got {tasks_per_worker}")
        self.config, self.workers, self.address = config, workers, address
        self.gpus_per_worker, self.cpus_per_worker = gpus_per_worker, cpus_per_worker
        self.export_tracks, self.tasks_per_worker = export_tracks, tasks_per_worker
        require("ray", "dataset")  # say what to install before any work starts

    def run(self, tasks: Sequence[Task], on_result: OnResult, on_frames: OnFrames, interrupts: Interrupts) -> None:
        ray = require("ray", "dataset", package="ray")
        started_here = False
        if not ray.is_initialized():
            # A Ray started just for this run needs no dashboard; a cluster we connect to keeps its settings.
            local = self.address is None and not os.environ.get("RAY_ADDRESS")
            extra = {"include_dashboard": False} if local else {}
            ray.init(address=self.address, logging_level=logging.WARNING, **extra)
            started_here = True
        actors: list[Any] = []
        try:
            actor_class = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker)(_RayWorker)
            count = min(self._count(ray), len(tasks))
            self.workers = count
            actors = [actor_class.remote(self.config, self.export_tracks) for _ in range(count)]
            self._run(ray, actor_class, actors, tasks, on_result, on_frames, interrupts)
        finally:
            for actor in actors:
                ray.kill(actor)
            if started_here:
                ray.shutdown()

    def _count(self, ray: Any) -> int:
        if self.workers is not None:
            return self.workers
        resources = ray.cluster_resources()
        if self.gpus_per_worker > 0:
            count = int(resources.get("GPU", 0) // self.gpus_per_worker)
            if count == 0:
                raise ConfigError(f"the Ray cluster has no GPU to give {self.gpus_per_worker} to a worker")
            return count
        return max(1, int(resources.get("CPU", 1) // max(self.cpus_per_worker, 1e-9)))

    def _run(
        self,
        ray: Any,
        actor_class: Any,
        actors: list[Any],
        tasks: Sequence[Task],
        on_result: OnResult,
        on_frames: OnFrames,
        interrupts: Interrupts,
    ) -> None:
        pending = deque(tasks)
        queues: list[deque[Any]] = [deque() for _ in actors]  # refs in submission order; the head is running
        inflight: dict[Any, tuple[int, Task]] = {}
        # Actors take work as soon as they have loaded their models, each on its own: when more are asked for
        # than fit (or an autoscaler is still adding nodes), the run starts with those that do.
        starting: dict[Any, int] = {actor.ready.remote(): index for index, actor in enumerate(actors)}
        usable: set[int] = set()
        chash = config_hash(self.config)
        warned = False
        while True:
            if interrupts.stop_requested:
                pending.clear()
                if inflight and not warned:
                    logger.warning(
                        "stopping: finishing %d file(s) in flight; press Ctrl-C again to abort them",
                        len(inflight),
                    )
                    warned = True
            for index in sorted(usable):
                while pending and len(queues[index]) < self.tasks_per_worker:
                    task = pending.popleft()
                    ref = actors[index].process.remote(task)
                    inflight[ref] = (index, task)
                    queues[index].append(ref)
            if not inflight and not pending:
                return
            done, _ = ray.wait([*inflight, *starting], num_returns=1, timeout=0.5)
            for ref in done:
                if ref in starting:
                    usable.add(self._started(ray, ref, starting))
                    continue
                if ref not in inflight:
                    continue  # requeued after its actor died
                index, task = inflight.pop(ref)
                try:
                    results = [ray.get(ref)]
                except ray.exceptions.RayActorError as exc:
                    results = self._bury(ray, ref, task, exc, queues[index], inflight, pending)
                    usable.discard(index)
                    if pending and not interrupts.stop_requested:
                        actors[index] = actor_class.remote(self.config, self.export_tracks)
                        starting[actors[index].ready.remote()] = index
                except ray.exceptions.RayError as exc:
                    queues[index].remove(ref)
                    results = [mark_failed(task, new_record(task, self.config.method, chash), one_line(exc))]
                else:
                    queues[index].remove(ref)
                for record in results:
                    on_frames(record["frames"])
                    on_result(record)

    def _bury(
        self,
        ray: Any,
        ref: Any,
        ref_task: Task,
        error: Exception,
        queue: deque[Any],
        inflight: dict[Any, tuple[int, Task]],
        pending: deque[Task],
    ) -> list[dict[str, Any]]:
        """An actor died. Its calls ran in submission order, so in its queue the results before the first
        failed call are real, that first call is the file it died on (recorded as failed), and the calls after
        it never ran: their files go back to the pending list. Returns the records to report."""
        chash = config_hash(self.config)
        records: list[dict[str, Any]] = []
        died_on: Task | None = None
        for queued in list(queue):
            task = ref_task if queued == ref else inflight.pop(queued)[1]
            failure: Exception | None = error if queued == ref else None
            if failure is None:
                try:
                    result = ray.get(queued)  # a dead actor's calls resolve at once, with a value or an error
                except ray.exceptions.RayError as exc:
                    failure = exc
            if failure is None:
                records.append(result)
            elif died_on is None:
                died_on = task
                logger.warning("%s: the Ray worker died while anonymizing it", task.relative)
                record = new_record(task, self.config.method, chash)
                records.append(mark_failed(task, record, f"WorkerDied: {one_line(failure)}"))
            else:
                pending.appendleft(task)
        queue.clear()
        return records

    @staticmethod
    def _started(ray: Any, ref: Any, starting: dict[Any, int]) -> int:
        """The index of an actor that has loaded its models; a model that cannot load fails the run."""
        index = starting.pop(ref)
        try:
            error = ray.get(ref)
        except ray.exceptions.RayError as exc:
            raise ModelError(f"a Ray worker could not start: {one_line(exc)}") from exc
        if error is not None:
            raise error
        return index
