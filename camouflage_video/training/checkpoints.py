"""train-light checkpoints: ``checkpoints/step-NNNNNNN/`` with the adapter, the optimizer state (safetensors)
and ``state.json``, written under a temporary name and renamed into place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from camouflage_video._deps import require
from camouflage_video.atomic import atomic_path


def checkpoint_dirs(output: Path) -> list[Path]:
    """Complete checkpoints in ``output``, oldest first."""
    root = output / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file())


def save_checkpoint(output: Path, step: int, adapter: Any, optimizer: Any, state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step-NNNNNNN`` atomically (a temporary folder renamed into place), safetensors only."""
    safetensors_torch = require("safetensors.torch", "light", package="safetensors")
    final = output / "checkpoints" / f"step-{step:07d}"
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as temporary:
        temporary.mkdir()
        adapter.save_pretrained(temporary / "adapter", safe_serialization=True)
        tensors, groups = _flatten_optimizer(optimizer.state_dict())
        safetensors_torch.save_file(tensors, str(temporary / "optimizer.safetensors"))
        (temporary / "state.json").write_text(
            json.dumps({**state, "step": step, "param_groups": groups}, indent=2) + "\n")
    for old in checkpoint_dirs(output)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, adapter: Any, optimizer: Any) -> dict[str, Any]:
    """Restore the adapter weights and optimizer state of a checkpoint; returns its ``state.json``."""
    safetensors_torch = require("safetensors.torch", "light", package="safetensors")
    state = json.loads((folder / "state.json").read_text())
    weights = safetensors_torch.load_file(str(folder / "adapter" / "diffusion_pytorch_model.safetensors"))
    adapter.load_state_dict(weights)
    optimizer.load_state_dict(_unflatten_optimizer(
        safetensors_torch.load_file(str(folder / "optimizer.safetensors")), state["param_groups"]
    ))
    return state


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tensors = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, groups


def _unflatten_optimizer(tensors: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": groups}
