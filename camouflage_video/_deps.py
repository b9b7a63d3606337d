"""One place that imports optional dependencies and names the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

from camouflage_video.errors import MissingDependencyError


def require(module: str, extra: str | None, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error that says what to install.

    Args:
        module: Dotted module name, e.g. ``"diffusers"``.
        extra: The camouflage-video extra that installs it, e.g. ``"diffusion"``; ``None`` for a core
            dependency (a broken install: reinstalling the package brings it back).
        package: The PyPI name when it differs from the module name.

    Raises:
        MissingDependencyError: The module is not importable.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split(".")[0]
        if extra is None:
            raise MissingDependencyError(
                f"{name} is a dependency of camouflage-video but cannot be imported: "
                f"pip install --force-reinstall camouflage-video (or pip install {name})"
            ) from exc
        raise MissingDependencyError(
            f"{name} is required for this feature: pip install 'camouflage-video[{extra}]'"
        ) from exc
