"""Engines: a worker that dies takes only its file down; Ray produces what the local engine produces."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset import DatasetOptions, run_dataset
from camouflage_video.samples import make_sample_video
from camouflage_video.sinks.video import EncoderOptions
from tests.conftest import REPO, read_frames
from tests.dataset.conftest import latest, partial_files

# Lossless video (crf 0): decoded pixels are exactly what was anonymized, so engines compare bit for bit even
# though libx264 in PyAV's wheel is not bit-reproducible from run to run on some content when it is lossy.
CONFIG = AnonymizeConfig(det_size=320, encoder=EncoderOptions(crf=0))


def _kill_worker_when_it_writes(out: Path, stem: str, killed: list[int]) -> None:
    """Kill the worker process as soon as the output of ``stem`` is being written."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.name.startswith(f".{stem}.") for p in out.glob("*.partial*")):
            for child in multiprocessing.active_children():
                if child.name == "camouflage-dataset-worker":
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
            return
        time.sleep(0.005)


def test_a_crashing_worker_fails_only_its_file(tmp_path: Path, astronaut) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    make_sample_video(raw / "a_long.mp4", seconds=6, fps=Fraction(25), size=(320, 180))
    cv2.imwrite(str(raw / "b.png"), cv2.cvtColor(cv2.resize(astronaut, (96, 96)), cv2.COLOR_RGB2BGR))
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_worker_when_it_writes, args=(out, "a_long", killed))
    watcher.start()
    try:
        summary = run_dataset(raw, out, CONFIG, DatasetOptions(workers=1))
    finally:
        watcher.join()
    assert killed, "the worker was never caught writing"
    records = latest(out)
    assert records["a_long.mp4"]["status"] == "failed"
    assert "worker process died (signal 9)" in records["a_long.mp4"]["error"]
    assert records["b.png"]["status"] == "done"  # a fresh worker carried on
    assert (summary.processed, summary.failed) == (1, 1)
    assert not (out / "a_long.mp4").exists() and not partial_files(out)


# -- Ray -------------------------------------------------------------------------------------------

SUBSET = [
    "clips/day1/cam1.mp4",
    "clips/legacy.avi",
    "clips/broken.mp4",
    "photos/a.png",
    "photos/nested/c.webp",
    "real/people/img25.jpg",
    "labels/boxes.csv",
]
VOLATILE = ("seconds", "finished", "worker", "mtime_ns")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray engine needs the 'dataset' extra")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        # Workers import this checkout, not whatever camouflage-video is installed.
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
    )
    yield ray
    ray.shutdown()


def test_ray_engine_produces_the_local_engines_outputs_and_manifest(tree: Path, tmp_path: Path, ray_cluster) -> None:
    raw = tmp_path / "raw"
    for name in SUBSET:
        if (tree / name).exists():
            (raw / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree / name, raw / name)
    local = run_dataset(raw, tmp_path / "local", CONFIG, DatasetOptions(workers=2, export_tracks=True))
    ray = run_dataset(raw, tmp_path / "ray", CONFIG, DatasetOptions(engine="ray", workers=2, export_tracks=True))
    assert (ray.processed, ray.failed, ray.frames) == (local.processed, local.failed, local.frames)
    assert ray.failed == 1 and ray.workers == 2

    def comparable(out: Path) -> dict:
        return {k: {f: v for f, v in r.items() if f not in VOLATILE} for k, r in latest(out).items()}

    assert comparable(tmp_path / "ray") == comparable(tmp_path / "local")
    for name, record in latest(tmp_path / "local").items():
        if record["status"] != "done":
            continue
        a, b = tmp_path / "local" / record["output"], tmp_path / "ray" / record["output"]
        if record["kind"] == "video":
            frames_a, pts_a, _ = read_frames(a)
            frames_b, pts_b, _ = read_frames(b)
            assert pts_a == pts_b, name
            assert (a.parent / (a.name + ".tracks.csv")).read_text() == (
                b.parent / (b.name + ".tracks.csv")
            ).read_text()
            assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True)), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
    # A rerun through Ray finds everything done.
    again = run_dataset(raw, tmp_path / "ray", CONFIG, DatasetOptions(engine="ray", workers=2, export_tracks=True))
    assert (again.processed, again.skipped, again.failed) == (0, local.processed, 1)


# -- the Ray engine's bookkeeping when an actor dies, with a stand-in for Ray ------------------------
# Killing one actor at a chosen moment is slow and racy on a real local cluster; this stand-in runs the same
# RayEngine._run code with actors whose death is scripted.


class _RayError(Exception):
    pass


class _RayActorError(_RayError):
    pass


class _Ref:
    def __init__(self, value=None, error: Exception | None = None) -> None:
        self.value, self.error = value, error


class _FakeRay:
    class exceptions:  # noqa: N801 - mirrors ray.exceptions
        RayError = _RayError
        RayActorError = _RayActorError

    def __init__(self, newest_first: bool) -> None:
        self.newest_first = newest_first

    def wait(self, refs, num_returns, timeout):
        ready = refs[-1] if self.newest_first else refs[0]
        return [ready], [r for r in refs if r is not ready]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value


class _Call:
    def __init__(self, fn) -> None:
        self.remote = fn


class _Actor:
    """Processes files in order; dies on ``crash.mp4``, and every call queued behind it fails the same way."""

    def __init__(self, processed: list[str]) -> None:
        self.dead = False
        self.ready = _Call(lambda: _Ref(None))
        self.process = _Call(self._process)
        self.processed = processed

    def _process(self, task):
        if self.dead or task.relative == "crash.mp4":
            self.dead = True
            return _Ref(error=_RayActorError("The actor died unexpectedly before finishing this task."))
        self.processed.append(task.relative)
        return _Ref({"input": task.relative, "status": "done", "frames": 1})


@pytest.mark.parametrize(
    ("newest_first", "actors_started"),
    [
        (False, 3),  # the death is seen while files are pending: a new actor takes the dead one's place
        (True, 2),  # seen last, through a call queued behind the crash: nothing left to replace it for
    ],
    ids=["head-reported-first", "queued-reported-first"],
)
def test_ray_actor_death_fails_its_file_and_requeues_the_rest(
    tmp_path: Path, monkeypatch, newest_first: bool, actors_started: int
) -> None:
    from camouflage_video.dataset import ray_engine
    from camouflage_video.dataset.engines import Interrupts
    from camouflage_video.dataset.ray_engine import RayEngine
    from camouflage_video.dataset.worker import Task

    monkeypatch.setattr(ray_engine, "require", lambda *a, **k: None)
    names = ["a.mp4", "crash.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4", "f.mp4"]
    tasks = [Task(n, n, "video", str(tmp_path / n), str(tmp_path / "out" / n)) for n in names]
    processed: list[str] = []
    spawned: list[_Actor] = []

    class ActorClass:
        @staticmethod
        def remote(config, export_tracks):
            spawned.append(_Actor(processed))
            return spawned[-1]

    records: list[dict] = []
    engine = RayEngine(CONFIG, workers=2)
    actors = [ActorClass.remote(CONFIG, False) for _ in range(2)]
    engine._run(_FakeRay(newest_first), ActorClass, actors, tasks, records.append, lambda n: None, Interrupts())
    by_input = {r["input"]: r for r in records}
    assert len(records) == len(names) and sorted(by_input) == sorted(names)  # each file reported once
    assert by_input["crash.mp4"]["status"] == "failed" and "WorkerDied" in by_input["crash.mp4"]["error"]
    assert all(r["status"] == "done" for n, r in by_input.items() if n != "crash.mp4")
    assert sorted(processed) == sorted(n for n in names if n != "crash.mp4")  # the rest done exactly once
    assert len(spawned) == actors_started
