"""camouflage-video: attribute-preserving anonymization of videos, streams and video datasets.

Importing the package is cheap: torch, diffusers and the other heavy dependencies load only when a
generative method is used.
"""

from __future__ import annotations

from camouflage_video.api import anonymize
from camouflage_video.config import AnonymizeConfig
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
from camouflage_video.frame import Faces, Frame, FrameContext
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.stats import RunStats

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
