"""ONNX graphs this project derives from shipped weights, kept between runs so a run does not rebuild them.

The face detector's graph is rewritten on load (weights as constants, any input size, the picture as input) and
dlib's face ResNet is converted to ONNX. Both take the ``onnx`` package, whose import alone costs about a
second (``ml_dtypes``), in every process: each run, each camera process, each recognizer child. The result
depends only on the source weights, the code that builds it and the onnx/onnxruntime versions, so it is
written once to the cache folder (``$CAMOUFLAGE_CACHE``, else ``$XDG_CACHE_HOME/camouflage-video``, else
``~/.cache/camouflage-video``) under a name made of all of those, and read back by later runs.

A cached file that cannot be written is not an error (the graph is used from memory); one that onnxruntime
cannot read is rebuilt (``refresh=True``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from camouflage_video.atomic import atomic_path

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The folder built models are kept in."""
    root = os.environ.get("CAMOUFLAGE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "camouflage-video"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def cached_path(name: str, source: Path, builder: Path, recipe: str = "") -> Path:
    """Where the model ``name`` built from ``source`` by the code in ``builder`` (a module file) is kept."""
    digest = hashlib.sha256()
    for part in (source.read_bytes(), builder.read_bytes(),
                 f"{recipe} onnx {_version('onnx')} onnxruntime {_version('onnxruntime')}".encode()):
        digest.update(hashlib.sha256(part).digest())
    return cache_dir() / f"{name}_{digest.hexdigest()[:16]}.onnx"


def cached_model(name: str, source: Path, builder: Path, build: Callable[[], bytes], *, refresh: bool = False) -> bytes:
    """The serialized model ``build()`` makes from ``source``: from the cache, else built now and cached.

    Args:
        name: Start of the cached file's name.
        source: The weights it is built from (their content is part of the cache key).
        builder: The module file whose code builds it (its content too: changed code builds anew).
        build: Makes the serialized model.
        refresh: Build it even when a cached copy exists (that copy did not load) and replace the copy.
    """
    target = cached_path(name, source, builder)
    if not refresh:
        try:
            return target.read_bytes()
        except OSError:
            pass
    data = build()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".onnx") as temporary:  # a concurrent run sees no file or a whole one
            temporary.write_bytes(data)
    except OSError as exc:
        logger.debug("cannot keep %s in the cache (%s); it is built again next time", target.name, exc)
    return data
