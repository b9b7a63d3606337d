"""Fixtures of the evaluation tests: real-face pairs (unchanged, pixelated) and one shared dlib recognizer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.frame import Frame, FrameContext
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import ClassicObfuscator


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def pixelate_faces(image: np.ndarray, method: str = "pixelate") -> np.ndarray:
    """The project's own classic obfuscation of every face CenterFace finds (what `anonymize` would write)."""
    from camouflage_video.annotators import CenterFaceDetector

    ctx = FrameContext(Frame(image, 0))
    CenterFaceDetector().annotate(ctx)
    assert len(ctx.faces), "the test image must contain a face"
    return ClassicObfuscator(method, mask_scale=1.3)(ctx)


@pytest.fixture(scope="session")
def evaluator(recognizer):
    """An evaluator that analyses every 5th video frame (each face is embedded three times, about 7 ms each)."""
    from camouflage_video.evaluation import EvaluationConfig, Evaluator

    return Evaluator(EvaluationConfig(step=5), recognizer=recognizer)


@pytest.fixture(scope="session")
def astronaut_pair(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> dict[str, Path]:
    """The astronaut as original, unchanged copy and pixelated version (PNG, lossless)."""
    folder = tmp_path_factory.mktemp("astronaut")
    return {
        "original": write_rgb(folder / "original.png", astronaut),
        "copy": write_rgb(folder / "copy.png", astronaut.copy()),
        "pixelated": write_rgb(folder / "pixelated.png", pixelate_faces(astronaut)),
        "solid": write_rgb(folder / "solid.png", pixelate_faces(astronaut, "solid")),
    }


@pytest.fixture(scope="session")
def clip_pair(sample_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated astronaut clip and its pixelated version written by the project's own anonymizer."""
    from camouflage_video.api import anonymize

    out = tmp_path_factory.mktemp("clips") / "astronaut_pixelated.mp4"
    anonymize(sample_clip, out, method="pixelate")
    return {"original": sample_clip, "pixelated": out}


@pytest.fixture(scope="session")
def clip_copy_result(evaluator, sample_clip: Path):  # noqa: ANN201 - EvaluationResult
    """The evaluation of the clip against an unchanged copy of itself (shared: it takes seconds)."""
    return evaluator.run(sample_clip, sample_clip)


class _Unchanged(Anonymizer):
    """A faulty anonymizer that passes frames through: its output differs from the input by the re-encode only."""

    name = "unchanged"

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        return ctx.frame.image.copy()


@pytest.fixture(scope="session")
def walking_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Intel's walking clip (2 people, faces 16-33 px tall, CC-BY-4.0) and versions written by `anonymize`.

    The faces are small enough that dlib matches a black ellipse to the original about half the time: the
    case the null calibration exists for.
    """
    from camouflage_video.api import anonymize
    from camouflage_video.config import AnonymizeConfig, build_stages
    from tests.conftest import media_file

    original = media_file("videos/intel_preview_face-demographics-walking.gif")
    folder = tmp_path_factory.mktemp("walking")
    out = {"original": original}
    for method in ("solid", "blur"):
        out[method] = folder / f"{method}.mp4"
        anonymize(original, out[method], method=method)

    def unchanged(info):  # noqa: ANN001, ANN202 - the usual detector and tracker, then the faulty stage
        return build_stages(AnonymizeConfig(), info)[0], _Unchanged()

    out["reencoded"] = folder / "reencoded.mp4"
    anonymize(original, out["reencoded"], stages=unchanged)
    return out
