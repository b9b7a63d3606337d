"""Training data for the attribute T2I-Adapter: face photos, their 41-channel maps and IP-Adapter views.

A data folder is any tree of images (CelebA-HQ's ``CelebA-HQ-img/*.jpg``, FFHQ's ``images1024x1024/*/*.png``...).
Each image is centre-cropped to a square and resized to the training resolution; faces are detected and
analysed on that square (the same analysis as a video frame, without tracking), so boxes, keypoints and
regions are already in training coordinates. The analysis is computed on the fly, or once into a cache of
``.npz`` files (arrays only, read with ``allow_pickle=False``) keyed by the image's relative path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video.annotators.attribute_map import FaceAttributes, build_attribute_map
from camouflage_video.atomic import atomic_path
from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.sources.images import IMAGE_EXTENSIONS


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, hidden folders skipped).

    Raises:
        InputNotFoundError: ``root`` does not exist.
        InputError: It is not a folder or holds no images.
    """
    root = Path(root)
    if not root.exists():
        raise InputNotFoundError(f"{root}: no such data folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of images")
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise InputError(f"{root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found")
    return files


def square_image(path: Path, resolution: int) -> np.ndarray:
    """RGB ``(resolution, resolution, 3)``: the image's centre square, resized."""
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"{path}: cannot be read as an image")
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > resolution else cv2.INTER_CUBIC
    return cv2.cvtColor(cv2.resize(square, (resolution, resolution), interpolation=interpolation), cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class CacheKey:
    """What an attribute cache depends on; a cache made with other settings is refused, not mixed in."""

    resolution: int
    region_scale: float
    detector: str
    classifier: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaceImageDataset:
    """Face photos as training samples for the attribute T2I-Adapter.

    Args:
        root: Data folder (searched recursively for images).
        analyze: ``image -> FaceAttributes`` for a square training image (detection plus face analysis).
        resolution: Training resolution (square).
        cache_dir: Folder for the per-image analysis; ``None`` analyses every time an image is read.
        cache_key: Settings the cache depends on (checked against ``cache_dir/cache.json``).
        ip_adapter_faces: ``blur`` gives the IP-Adapter the image with its faces blurred, as at inference.
        region_scale: Growth of face boxes for the IP-Adapter's blur.

    Examples:
        >>> data = FaceImageDataset("celeba_hq/", analyze, resolution=512, cache_dir="cache/")  # doctest: +SKIP
        >>> sample = data[0]; sample["condition"].shape  # doctest: +SKIP
        (41, 512, 512)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        analyze: Any,
        resolution: int = 512,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_key: CacheKey | None = None,
        ip_adapter_faces: str = "blur",
        region_scale: float = 1.2,
    ) -> None:
        if resolution < 64 or resolution % 8:
            raise ConfigError(f"resolution must be a multiple of 8 and >= 64, got {resolution}")
        self.root = Path(root)
        self.files = list_images(root)
        self.analyze, self.resolution = analyze, resolution
        self.ip_adapter_faces = ip_adapter_faces
        self.blur = ClassicObfuscator("blur", mask_scale=region_scale, shape="box")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self._check_cache(cache_key or CacheKey(resolution, region_scale, "", ""))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """``pixels`` (3, R, R) float32 in [-1, 1], ``condition`` (41, R, R), ``ip_image`` uint8 (R, R, 3)."""
        image = square_image(self.files[index], self.resolution)
        attrs = self.attributes(index, image)
        ip_image = image
        if self.ip_adapter_faces == "blur" and len(attrs):
            ip_image = image.copy()
            self.blur.obfuscate(ip_image, attrs.xyxy)
        return {
            "pixels": np.moveaxis(image.astype(np.float32) / 127.5 - 1.0, -1, 0),
            "condition": build_attribute_map(attrs, self.resolution, self.resolution),
            "ip_image": ip_image,
            "faces": len(attrs),
        }

    def attributes(self, index: int, image: np.ndarray | None = None) -> FaceAttributes:
        """The analysis of image ``index`` (from the cache when there is one)."""
        path = self._cache_path(index)
        if path is not None and path.is_file():
            return _load_attributes(path, self.resolution)
        if image is None:
            image = square_image(self.files[index], self.resolution)
        attrs = self.analyze(image)
        if path is not None:
            _save_attributes(attrs, path)
        return attrs

    def _cache_path(self, index: int) -> Path | None:
        if self.cache_dir is None:
            return None
        relative = self.files[index].relative_to(self.root).as_posix()
        return self.cache_dir / (hashlib.sha1(relative.encode()).hexdigest()[:20] + ".npz")

    def _check_cache(self, key: CacheKey) -> None:
        assert self.cache_dir is not None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        info = self.cache_dir / "cache.json"
        if info.is_file():
            saved = json.loads(info.read_text())
            if saved != key.to_dict():
                raise ConfigError(
                    f"{self.cache_dir}: attribute cache made with other settings ({saved}); "
                    "choose another --cache folder or delete it"
                )
        else:
            info.write_text(json.dumps(key.to_dict(), indent=2) + "\n")


def _save_attributes(attrs: FaceAttributes, path: Path) -> None:
    with atomic_path(path, suffix=".npz") as temporary:  # savez adds .npz to a name without it
        np.savez_compressed(
            temporary, xyxy=attrs.xyxy, probs=attrs.probs, keypoints=attrs.keypoints, regions=attrs.regions,
        )


def _load_attributes(path: Path, resolution: int) -> FaceAttributes:
    with np.load(path, allow_pickle=False) as data:
        probs = data["probs"]
        return FaceAttributes(
            xyxy=data["xyxy"], probs=probs, observed=probs, keypoints=data["keypoints"], regions=data["regions"],
            seeds=np.full(len(probs), -1, np.int64), frame_size=(resolution, resolution),
        )
