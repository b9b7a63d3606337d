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
from tests.conftest import REPO, read_frames
from tests.dataset.conftest import latest, partial_files

CONFIG = AnonymizeConfig(det_size=320)


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
            # The boxes each engine obfuscated are compared exactly; the encoded pixels with a small tolerance,
            # since libx264's macroblock tree in PyAV's wheel is not bit-reproducible from run to run.
            assert (a.parent / (a.name + ".tracks.csv")).read_text() == (
                b.parent / (b.name + ".tracks.csv")
            ).read_text()
            assert all(np.abs(x.astype(int) - y).mean() < 1.0 for x, y in zip(frames_a, frames_b, strict=True)), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
    # A rerun through Ray finds everything done.
    again = run_dataset(raw, tmp_path / "ray", CONFIG, DatasetOptions(engine="ray", workers=2, export_tracks=True))
    assert (again.processed, again.skipped, again.failed) == (0, local.processed, 1)
