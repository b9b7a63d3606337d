"""Fetch components into the HF cache or ``--models-dir``, convert pickled annotators, check offline."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from camouflage_video._deps import require
from camouflage_video.atomic import atomic_path, temporary_name
from camouflage_video.errors import ModelError
from camouflage_video.models.registry import COMPONENTS, REQUIRED_LOCAL, Component
from camouflage_video.models.sources import ModelSource, hub_offline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """Whether one component can load without the network."""

    component: str
    source: str
    ok: bool
    detail: str


def check(sources: Mapping[str, ModelSource]) -> list[CheckResult]:
    """Check that every file the loaders need is present locally (a folder, a file, or the HF cache).

    Nothing is downloaded and nothing is loaded: a present but corrupt file shows up only when a run loads it.
    """
    results = []
    for name, source in sources.items():
        component = COMPONENTS[name]
        if source.path is not None:
            missing = _missing_local(component, source.path)
            detail = "ok" if not missing else f"missing {', '.join(missing)}"
            if missing and (source.repo_id is not None or source.url is not None):
                detail += " (camouflage-video models fetch downloads it)"
            results.append(CheckResult(name, source.describe(), not missing, detail))
            continue
        try:
            folder = _snapshot(source, component.files, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any hub-client failure means "not available offline"
            results.append(CheckResult(name, source.describe(), False, f"not in the HF cache ({type(exc).__name__})"))
            continue
        missing = _missing_local(component, Path(folder))
        results.append(CheckResult(name, source.describe(), not missing,
                                   f"cached at {folder}" if not missing else f"cache lacks {', '.join(missing)}"))
    return results


def fetch(sources: Mapping[str, ModelSource]) -> list[CheckResult]:
    """Download hub components (to the HF cache, or into ``--models-dir`` folders) and convert pickles.

    Raises:
        ModelError: ``HF_HUB_OFFLINE`` is set, or a download fails.
    """
    if hub_offline():
        raise ModelError("HF_HUB_OFFLINE is set: models fetch needs the network (models check works offline)")
    done: set[tuple] = set()
    for name, source in sources.items():
        component = COMPONENTS[name]
        if source.url is not None:
            _fetch_url(source, component)
            continue
        if source.repo_id is None:
            continue  # a local path given by the user: nothing to download
        key = (source.repo_id, source.revision, component.files, component.pickles, str(source.path))
        if key in done:
            continue
        done.add(key)
        logger.info("fetching %s (%s)", name, source.describe())
        try:
            if component.pickles:
                _fetch_and_convert(source, component)
            else:
                local_dir = source.path if source.path is not None else None
                _snapshot(source, component.files, local_files_only=False, local_dir=local_dir)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into one clear line for the CLI
            raise ModelError(f"{name}: cannot download {source.describe()}: {type(exc).__name__}: {exc}") from exc
    return check(sources)


def _snapshot(source: ModelSource, patterns: tuple[str, ...], *, local_files_only: bool, local_dir: Any = None) -> str:
    hub = require("huggingface_hub", "diffusion")
    return hub.snapshot_download(
        source.repo_id, revision=source.revision, allow_patterns=list(patterns),
        local_files_only=local_files_only, local_dir=local_dir,
    )


def _fetch_and_convert(source: ModelSource, component: Component) -> None:
    hub = require("huggingface_hub", "diffusion")
    target = source.path
    assert target is not None  # resolve() always gives pickled annotators a local folder
    target.mkdir(parents=True, exist_ok=True)
    for filename in component.pickles:
        out = target / (Path(filename).stem + ".safetensors")
        if out.exists():
            continue
        downloaded = hub.hf_hub_download(source.repo_id, filename, revision=source.revision)
        convert_pickle(Path(downloaded), out)


def _fetch_url(source: ModelSource, component: Component) -> None:
    """Download a file published outside the hub into the component's folder (pickles converted)."""
    torch = require("torch", "diffusion")
    assert source.path is not None and source.url is not None  # resolve() gives URL components a folder
    filename = Path(urlparse(source.url).path).name
    pickled = filename in component.pickles
    target = source.path / (Path(filename).stem + ".safetensors" if pickled else filename)
    if target.exists():
        return
    source.path.mkdir(parents=True, exist_ok=True)
    try:
        if pickled:  # the download is converted into the target (atomically), then dropped
            download = temporary_name(source.path / filename)
            try:
                torch.hub.download_url_to_file(source.url, str(download), progress=True)
                convert_pickle(download, target)
            finally:
                download.unlink(missing_ok=True)
        else:
            with atomic_path(target) as temporary:
                torch.hub.download_url_to_file(source.url, str(temporary), progress=True)
    except Exception as exc:  # noqa: BLE001 - turned into one clear line for the CLI
        raise ModelError(f"{source.component}: cannot download {source.url}: {type(exc).__name__}: {exc}") from exc


def convert_pickle(src: Path, dst: Path) -> None:
    """Convert an upstream pickled state dict to safetensors, reading it with the tensors-only unpickler."""
    torch = require("torch", "diffusion")
    safetensors_torch = require("safetensors.torch", "diffusion", package="safetensors")
    state = torch.load(src, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # NormalBae's scannet.pt wraps its state dict
    state = {k.removeprefix("module."): v.contiguous() for k, v in state.items() if hasattr(v, "contiguous")}
    with atomic_path(dst) as temporary:
        safetensors_torch.save_file(state, str(temporary))


def _missing_local(component: Component, path: Path) -> list[str]:
    if path.is_file():
        return []
    if not path.is_dir():
        return [str(path)]
    required = component.safetensors_files or REQUIRED_LOCAL.get(component.kind, component.files)
    files = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    return [pattern for pattern in required if not fnmatch.filter(files, pattern)]
