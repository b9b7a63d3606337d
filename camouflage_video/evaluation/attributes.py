"""Attribute agreement: do the anonymized faces keep what the original faces showed (age, sex, smile...)?

CAMOUFLaGE aims to change identity while keeping attributes. When facer's FaRL CelebA attribute weights
are on disk, each original face and its anonymized counterpart are classified and the binary decisions
compared. Nothing is downloaded: without a weights file this part of the evaluation is reported as skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from camouflage_video._deps import require
from camouflage_video.errors import ModelError
from camouflage_video.frame import Faces

ATTRIBUTES_EXTRA = "evaluation-attributes"


class AttributeModel:
    """Base class: per-face attribute probabilities.

    Attributes:
        name: Shown in reports.
        labels: Names of the attributes, one per output column.
    """

    name: str = "attributes"
    labels: tuple[str, ...] = ()

    def predict(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(N, len(labels))`` probabilities in [0, 1] for the faces of an RGB image."""
        raise NotImplementedError


class FacerAttributeModel(AttributeModel):
    """facer's FaRL attribute classifier (40 CelebA attributes) on faces aligned by their five landmarks.

    The detector's landmarks (eyes, nose, mouth corners) are the points facer's alignment expects, so no
    second face detector runs. Weights load from a local ``.safetensors`` file only (never a pickle, never a
    download); facer publishes ``face_attribute.farl.celeba.pt``, which converts once with::

        import torch, safetensors.torch
        state = torch.load("face_attribute.farl.celeba.pt", map_location="cpu", weights_only=True)
        safetensors.torch.save_file(state, "farl_celeba.safetensors")

    Args:
        model_path: The converted FaRL CelebA weights.
        device: Torch device (``"cpu"`` by default).

    Examples:
        >>> model = FacerAttributeModel("weights/farl_celeba.safetensors")  # doctest: +SKIP
        >>> model.predict(image, faces).shape  # doctest: +SKIP
        (1, 40)
    """

    name = "facer/farl-celeba-224"
    CONFIG = "celeba/224"

    def __init__(self, model_path: str | os.PathLike[str], device: str = "cpu") -> None:
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: attribute weights not found")
        if self.model_path.suffix != ".safetensors":
            raise ModelError(
                f"{self.model_path}: attribute weights must be a .safetensors file (see the docs to convert)"
            )
        self._torch = torch = require("torch", ATTRIBUTES_EXTRA)
        safetensors = require("safetensors.torch", ATTRIBUTES_EXTRA, package="safetensors")
        farl = require("facer.face_attribute.farl", ATTRIBUTES_EXTRA, package="pyfacer")
        setting = farl.pretrain_settings[self.CONFIG]
        try:
            with _cuda_calls_ignored(torch, device):
                net = farl.farl_classification(num_classes=setting["num_classes"], layers=setting["layers"])
            net.load_state_dict(safetensors.load_file(str(self.model_path)))
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(
                f"{self.model_path}: not FaRL CelebA attribute weights ({str(exc).splitlines()[0]})"
            ) from exc
        # facer's own module runs the alignment and normalisation; only its loader (torch.load of a URL or
        # pickle) is bypassed, by filling the module's fields instead of calling its __init__.
        model = farl.FaRLFaceAttribute.__new__(farl.FaRLFaceAttribute)
        torch.nn.Module.__init__(model)
        model.conf_name, model.labels, model.net = self.CONFIG, list(setting["classes"]), net
        model.normalize = _clip_normalize()
        self._model = model.to(device).eval()
        self.device = device
        self.labels = tuple(setting["classes"])

    def predict(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        torch = self._torch
        keep = ~np.isnan(faces.landmarks).any(axis=(1, 2))
        probs = np.full((len(faces), len(self.labels)), np.nan, np.float32)
        if not keep.any():
            return probs
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(self.device)
        data = {
            "points": torch.from_numpy(faces.landmarks[keep]).float().to(self.device),
            "rects": torch.from_numpy(faces.xyxy[keep]).float().to(self.device),
            "image_ids": torch.zeros(int(keep.sum()), dtype=torch.long, device=self.device),
        }
        with torch.inference_mode():
            out = self._model(tensor, data)
        probs[keep] = out["attrs"].float().cpu().numpy()
        return probs


def _clip_normalize() -> object:
    """The CLIP normalisation FaRL was trained with (what pyfacer 0.0.5 applies after alignment)."""
    from torchvision.transforms import Normalize

    return Normalize(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))


@contextlib.contextmanager
def _cuda_calls_ignored(torch: ModuleType, device: str) -> Iterator[None]:
    """Let facer build its network on a CPU-only machine.

    ``farl_classification`` calls ``.cuda()`` unconditionally; for a CPU device those calls are made no-ops
    while the network is built, and the module is moved to ``device`` afterwards.
    """
    if str(device).startswith("cuda"):
        yield
        return
    original = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, device=None: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.cuda = original  # type: ignore[method-assign]


class AttributeAgreement:
    """Accumulate per-attribute agreement between original and anonymized faces.

    Examples:
        >>> agreement = AttributeAgreement(["Smiling", "Male"])
        >>> agreement.add(np.array([[0.9, 0.2]]), np.array([[0.8, 0.7]]))
        >>> agreement.summary()["agreement"]
        0.5
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._agree = np.zeros(len(labels), np.int64)
        self._count = np.zeros(len(labels), np.int64)
        self._abs_diff = np.zeros(len(labels), np.float64)

    def add(self, original: np.ndarray, anonymized: np.ndarray) -> None:
        valid = ~(np.isnan(original) | np.isnan(anonymized))
        same = (original > 0.5) == (anonymized > 0.5)
        self._agree += (same & valid).sum(0)
        self._count += valid.sum(0)
        self._abs_diff += np.where(valid, np.abs(original - anonymized), 0.0).sum(0)

    def summary(self) -> dict:
        counted = self._count > 0
        if not counted.any():
            return {"available": True, "faces": 0, "agreement": None, "per_attribute": {}}
        per = {
            label: round(float(self._agree[i] / self._count[i]), 4) for i, label in enumerate(self.labels) if counted[i]
        }
        return {
            "available": True,
            "faces": int(self._count.max()),
            "agreement": round(float(self._agree[counted].sum() / self._count[counted].sum()), 4),
            "mean_abs_probability_change": round(float(self._abs_diff[counted].sum() / self._count[counted].sum()), 4),
            "per_attribute": per,
        }
