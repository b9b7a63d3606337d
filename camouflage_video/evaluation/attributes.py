"""Attribute agreement: do the anonymized faces keep what the original faces showed (age, sex, smile...)?

CAMOUFLaGE aims to change identity while keeping attributes. When facer's FaRL CelebA attribute weights
are on disk, each original face and its anonymized counterpart are classified and the binary decisions
compared. Nothing is downloaded: without a weights file this part of the evaluation is reported as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

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

    The same classifier CAMOUFLaGE-Light reads attributes with (``annotators.attributes``), so the evaluation
    judges with the model the method conditions on. The detector's landmarks (eyes, nose, mouth corners) are
    the points facer's alignment expects, so no second face detector runs. Weights load from a local
    ``.safetensors`` file only (never a pickle, never a download); facer publishes
    ``face_attribute.farl.celeba.pt``, which ``camouflage-video models fetch light`` converts, or by hand::

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

    def __init__(self, model_path: str | os.PathLike[str], device: str = "cpu") -> None:
        self.model_path = Path(model_path).expanduser()
        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: attribute weights not found")
        if self.model_path.suffix != ".safetensors":
            raise ModelError(
                f"{self.model_path}: attribute weights must be a .safetensors file (see the docs to convert)"
            )
        for module, package in (("torch", "torch"), ("safetensors.torch", "safetensors"), ("facer", "pyfacer")):
            require(module, ATTRIBUTES_EXTRA, package=package)
        from camouflage_video.annotators.attributes import AttributeClassifier, load_attribute_classifier

        try:
            self._classifier: AttributeClassifier = load_attribute_classifier(self.model_path, device)
        except ModelError as exc:
            raise ModelError(f"{self.model_path}: not FaRL CelebA attribute weights ({exc})") from exc
        self.device = device
        self.labels = tuple(self._classifier.labels)

    def predict(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        keep = ~np.isnan(faces.landmarks).any(axis=(1, 2))
        probs = np.full((len(faces), len(self.labels)), np.nan, np.float32)
        if keep.any():
            probs[keep] = self._classifier(image, faces.landmarks[keep])
        return probs


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
