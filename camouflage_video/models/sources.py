"""Where each component loads from: a hub id (``owner/name@revision``), a local folder or file, or a URL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from camouflage_video.errors import ConfigError
from camouflage_video.models.registry import COMPONENTS


@dataclass(frozen=True)
class ModelSource:
    """Where one component loads from: a local ``path``, or a hub ``repo_id`` at ``revision``."""

    component: str
    spec: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def pretrained(self) -> str:
        """The first argument of ``from_pretrained``."""
        return str(self.path) if self.path is not None else str(self.repo_id)

    @property
    def single_file(self) -> bool:
        return self.path is not None and self.path.suffix == ".safetensors"

    def describe(self) -> str:
        hub = None if self.repo_id is None else self.repo_id + (f"@{self.revision}" if self.revision else "")
        hub = hub or self.url
        if self.path is None:
            return str(hub)
        return str(self.path) if hub is None else f"{hub} -> {self.path}"

    @property
    def url(self) -> str | None:
        """The download URL of a component published outside the hub."""
        return self.spec if _is_url(self.spec) else None


def cache_home() -> Path:
    """Where converted annotator weights go when no ``--models-dir`` is given."""
    root = os.environ.get("CAMOUFLAGE_VIDEO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "camouflage-video"
    )
    return Path(root)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def _is_hub_id(spec: str) -> bool:
    """``owner/name`` or ``owner/name@revision`` that is not an existing path or a weights file name."""
    return bool(_HUB_ID.match(spec)) and not spec.endswith(".safetensors") and not Path(spec).expanduser().exists()


def _is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


def _split_hub_id(spec: str) -> tuple[str, str | None]:
    repo_id, _, revision = spec.partition("@")
    return repo_id, revision or None


def local_name(repo_id: str) -> str:
    """Folder name of a hub repo inside ``--models-dir``: the repo's own name."""
    return repo_id.split("/")[-1]


def resolve(name: str, spec: str | None = None, models_dir: str | os.PathLike[str] | None = None) -> ModelSource:
    """Where component ``name`` loads from, given its configured ``spec`` (``None``: the default).

    Raises:
        ConfigError: Unknown component, no source for a component without a default, or a path that is not
            a folder or a ``.safetensors`` file.
    """
    if name not in COMPONENTS:
        raise ConfigError(f"unknown model component {name!r}; known: {', '.join(COMPONENTS)}")
    component = COMPONENTS[name]
    spec = spec or component.default
    if not spec:
        raise ConfigError(f"{name}: no public checkpoint exists; set it in the config or with --model {name}=PATH")
    if _is_url(spec):
        return ModelSource(name, spec, path=Path(models_dir or cache_home()).expanduser() / name)
    if not _is_hub_id(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ConfigError(f"{name}: {path} does not exist")
        if path.is_file() and path.suffix != ".safetensors" and component.kind != "torchscript":
            raise ConfigError(f"{name}: {path} is not a .safetensors file (weights load as safetensors only)")
        return ModelSource(name, spec, path=path)
    repo_id, revision = _split_hub_id(spec)
    if models_dir is not None:
        local = Path(models_dir).expanduser() / local_name(repo_id)
        return ModelSource(name, spec, path=local, repo_id=repo_id, revision=revision)
    if component.pickles:
        # Converted annotator weights live outside the HF cache (it only holds files as published).
        converted = cache_home() / repo_id.replace("/", "--")
        return ModelSource(name, spec, path=converted, repo_id=repo_id, revision=revision)
    return ModelSource(name, spec, repo_id=repo_id, revision=revision)


def resolve_all(
    names: Iterable[str], specs: Mapping[str, str] | None = None, models_dir: str | os.PathLike[str] | None = None
) -> dict[str, ModelSource]:
    specs = dict(specs or {})
    unknown = sorted(set(specs) - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"unknown model component(s) {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
    return {name: resolve(name, specs.get(name), models_dir) for name in names}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
