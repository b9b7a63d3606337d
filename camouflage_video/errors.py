"""Typed errors. Each also inherits from the builtin a caller would naturally catch."""

from __future__ import annotations

from collections.abc import Iterable


class CamouflageError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(CamouflageError, ValueError):
    """The input cannot be read as a video, image or image folder."""


class InputNotFoundError(InputError, FileNotFoundError):
    """The input path does not exist."""


class OutputError(CamouflageError, OSError):
    """The output cannot be written where it was asked for."""


class ConfigError(CamouflageError, ValueError):
    """An option or configuration value is invalid."""

    @classmethod
    def check(cls, checks: Iterable[tuple[bool, str]]) -> None:
        """Raise with the message of the first ``(ok, message)`` pair that is not ok."""
        for ok, message in checks:
            if not ok:
                raise cls(message)


class MissingDependencyError(CamouflageError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ModelError(CamouflageError, RuntimeError):
    """A model could not be loaded or run."""


class StreamError(CamouflageError, ConnectionError):
    """A live stream could not be opened, read or written."""


class ProcessingError(CamouflageError, RuntimeError):
    """A frame could not be anonymized and the run was asked to fail rather than fall back."""
