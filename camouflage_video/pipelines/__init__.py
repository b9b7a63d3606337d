"""How pixels are anonymized: classic obfuscation, CAMOUFLaGE-Base and CAMOUFLaGE-Light."""

from __future__ import annotations

from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import METHODS, ClassicObfuscator, fallback_image

__all__ = ["METHODS", "Anonymizer", "ClassicObfuscator", "fallback_image"]
