"""The Ray engine: anonymize a dataset's files on Ray actors, each a worker with its own loaded models."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from camouflage_video._deps import require
from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset.engines import Interrupts, OnFrames, OnResult, portable
from camouflage_video.dataset.manifest import config_hash
from camouflage_video.dataset.worker import FileWorker, Task, mark_failed, new_record, one_line
from camouflage_video.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)


class _RayWorker:
    """The Ray actor: a FileWorker whose start-up error is returned by ``ready()`` rather than lost."""

    def __init__(self, config: AnonymizeConfig, export_tracks: bool) -> None:
        self.error: Exception | None = None
        try:
            self.worker: FileWorker | None = FileWorker(config, export_tracks)
        except Exception as exc:  # noqa: BLE001 - returned to the driver by ready()
            self.worker, self.error = None, portable(exc)

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
