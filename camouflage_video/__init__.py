"""camouflage-video: attribute-preserving anonymization of videos, streams and video datasets.

Importing the package is cheap: torch, diffusers and the other heavy dependencies load only when a
generative method is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from camouflage_video.errors import (
    CamouflageError,
    ConfigError,
    InputError,
    InputNotFoundError,
    MissingDependencyError,
    ModelError,
    OutputError,
    ProcessingError,
    StreamError,
)

if TYPE_CHECKING:
    from camouflage_video.api import anonymize
    from camouflage_video.config import AnonymizeConfig
    from camouflage_video.frame import Faces, Frame, FrameContext
    from camouflage_video.sinks.video import EncoderOptions
    from camouflage_video.stats import RunStats

# Imported on first use: ``import camouflage_video.pipelines.adapters`` then needs no PyAV, no face detector
# and no tracker (a GPU benchmark machine has only torch and diffusers).
_LAZY = {"anonymize": "camouflage_video.api", "AnonymizeConfig": "camouflage_video.config",
         "EncoderOptions": "camouflage_video.sinks.video", "RunStats": "camouflage_video.stats",
         "Faces": "camouflage_video.frame", "Frame": "camouflage_video.frame",
         "FrameContext": "camouflage_video.frame"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'camouflage_video' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value

__version__ = "0.1.0"

__all__ = [
    "AnonymizeConfig",
    "CamouflageError",
    "ConfigError",
    "EncoderOptions",
    "Faces",
    "Frame",
    "FrameContext",
    "InputError",
    "InputNotFoundError",
    "MissingDependencyError",
    "ModelError",
    "OutputError",
    "ProcessingError",
    "RunStats",
    "StreamError",
    "__version__",
    "anonymize",
]
