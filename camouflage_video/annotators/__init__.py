"""What is found in a frame: faces, tracks (and, for the generative pipelines, control maps and attributes)."""

from __future__ import annotations

from camouflage_video.annotators.base import Annotator
from camouflage_video.annotators.faces import CenterFaceDetector, default_centerface_path
from camouflage_video.annotators.tracking import FaceTracker

__all__ = ["Annotator", "CenterFaceDetector", "FaceTracker", "default_centerface_path"]
