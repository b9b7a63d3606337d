"""Hard footage for privacy tests: real face photos made small, dark, noisy, blurred and compressed.

An obfuscation that hides a well-lit 200 px face can still leave a dim 24 px one recognisable: a small
face's identity lives in its few lowest spatial frequencies, and a mild blur keeps exactly those. Tests
and benchmarks on bright test clips cannot see that, so this module builds the footage where privacy is
hardest from real photos of known people:

- each photo's face is shrunk to a given height (16-60 px) and pasted, feathered, into a real background
  frame (640x360, 1920x1080 or 3840x2160);
- the whole frame is then degraded as cheap cameras and uploads degrade it: darkening (gamma) with sensor
  noise, low contrast, motion blur, heavy JPEG or x264 compression.

:func:`build_suite` writes the frames as lossless PNGs into a folder with an ``identities.csv`` (file,
identity, source photo), ready for ``camouflage-video anonymize`` and ``camouflage-video evaluate`` (and its
``--attack-gallery``). Nothing here changes the media it reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camouflage_video.errors import ConfigError, InputNotFoundError
from camouflage_video.evaluation.attack import IDENTITY_FILE, identity_from_name
from camouflage_video.sources.images import IMAGE_EXTENSIONS, read_image

CANVASES = {"360p": (640, 360), "1080p": (1920, 1080), "4k": (3840, 2160)}


def darken(image: np.ndarray, rng: np.random.Generator, gamma: float = 2.2, gain: float = 0.55) -> np.ndarray:
    """An under-exposed frame: gamma darkening, then shot noise (grows with the signal) and read noise."""
    x = gain * (image.astype(np.float32) / 255.0) ** gamma * 255.0
    noisy = x + rng.normal(0.0, 1.0, x.shape).astype(np.float32) * np.sqrt(0.8 * x + 4.0)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def low_contrast(image: np.ndarray, rng: np.random.Generator, contrast: float = 0.3) -> np.ndarray:
    """A hazy, flat frame: the range squeezed around a dull grey, with a little noise."""
    x = 110.0 + (image.astype(np.float32) - 128.0) * contrast
    x += rng.normal(0.0, 2.0, x.shape).astype(np.float32)
    return np.clip(x, 0, 255).round().astype(np.uint8)


def motion_blur(image: np.ndarray, rng: np.random.Generator, length: int = 9) -> np.ndarray:
    """A camera or subject moving during the exposure: a line kernel at a random angle."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    angle = float(rng.uniform(0, 180))
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))


def jpeg(image: np.ndarray, rng: np.random.Generator, quality: int = 12) -> np.ndarray:
    """Heavy JPEG compression (messaging apps, old uploads)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ConfigError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def x264(image: np.ndarray, rng: np.random.Generator, crf: int = 40) -> np.ndarray:
    """Heavy H.264 compression (libx264 at a high crf, yuv420p), as a low-bit-rate stream leaves a frame."""
    import io

    import av

    h, w = image.shape[:2]
    even = image[: h - h % 2, : w - w % 2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = even.shape[1], even.shape[0], "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    result = image.copy()
    result[: frame.shape[0], : frame.shape[1]] = frame
    return result


Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]
DEGRADATIONS: dict[str, Degradation] = {
    "clean": lambda image, rng: image,
    "dark": darken,
    "low_contrast": low_contrast,
    "motion_blur": motion_blur,
    "jpeg": jpeg,
    "x264": x264,
    # what a dim room on a cheap camera streamed at a low bit rate leaves
    "dark_x264": lambda image, rng: x264(darken(image, rng), rng, crf=36),
}


@dataclass(frozen=True, slots=True)
class HardCase:
    """One frame of the suite.

    Attributes:
        file: File name inside the suite folder.
        identity: Who the placed face is (from the photo's name or a verification protocol).
        photo: The real photo it was made from, relative to ``media/identity`` (the attack's ``source``).
        face_height: Height of the placed face box in pixels (CenterFace's box in the clear photo).
        canvas: ``360p``, ``1080p`` or ``4k``.
        degradation: Name in :data:`DEGRADATIONS`.
        box: The placed face box in the frame, ``x1, y1, x2, y2`` (before degradation).
    """

    file: str
    identity: str
    photo: str
    face_height: int
    canvas: str
    degradation: str
    box: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        if self.canvas not in CANVASES:
            raise ConfigError(f"canvas must be one of {', '.join(CANVASES)}, got {self.canvas!r}")
        if self.degradation not in DEGRADATIONS:
            raise ConfigError(f"unknown degradation {self.degradation!r}")


def photo_identities(media: Path) -> dict[str, str]:
    """Identity of every single-face photo under ``media/identity`` (relative path -> identity).

    The deepface photos get the connected components of ``master.csv``'s same-person pairs; the others are
    named ``<source>_<first>_<last>_<n>.jpg`` and share an identity when they differ only in ``_<n>``.
    """
    root = media / "identity"
    if not root.is_dir():
        raise InputNotFoundError(f"{root}: identity photos not found")
    identities: dict[str, str] = {}
    protocol = root / "deepface" / "master.csv"
    if protocol.is_file():
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                x = parent[x]
            return x

        with protocol.open(newline="") as f:
            for row in csv.DictReader(f):
                a, b = find(row["file_x"]), find(row["file_y"])
                if row["Decision"].strip().lower() == "yes" and a != b:
                    parent[b] = a
        for path in sorted((root / "deepface").glob("img*.jpg")):
            identities[f"deepface/{path.name}"] = "deepface_" + Path(find(path.name)).stem
    for path in sorted(root.glob("*.*")):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        identities[path.name] = identity_from_name(path.name)
    return identities


def background_frames(media: Path, count: int = 4) -> list[np.ndarray]:
    """Real frames without resolvable faces (OpenCV's pedestrian clip, Intel's top-down room)."""
    import av

    frames = []
    for name in ("videos/opencv_vtest.avi", "videos/intel_one-by-one-person-detection.mp4"):
        path = media / name
        if not path.is_file():
            continue
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 97 == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= count:
                    break
        if len(frames) >= count:
            break
    if not frames:  # a plain, slightly textured wall
        rng = np.random.default_rng(0)
        frames = [cv2.GaussianBlur(rng.integers(60, 140, (360, 640, 3), dtype=np.uint8), (0, 0), 6)]
    return frames


def place_face(
    photo: np.ndarray,
    box: np.ndarray,
    face_height: int,
    background: np.ndarray,
    canvas: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Shrink ``photo`` so its face ``box`` is ``face_height`` tall and paste head and shoulders into a frame.

    The pasted crop (about three face heights around the face) fades into the background over its outer
    fifth, so no sharp rectangle marks where the photo was put.
    """
    w_canvas, h_canvas = canvas
    frame = cv2.resize(background, canvas, interpolation=cv2.INTER_AREA if background.shape[1] > w_canvas
                       else cv2.INTER_CUBIC)
    x1, y1, x2, y2 = (float(v) for v in box)
    scale = face_height / max(y2 - y1, 1.0)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * (y2 - y1)
    h, w = photo.shape[:2]
    cx1, cy1 = max(0, int(cx - half)), max(0, int(cy - half))
    cx2, cy2 = min(w, int(cx + half)), min(h, int(cy + half * 1.2))
    crop = photo[cy1:cy2, cx1:cx2]
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    sw, sh = size
    if sw >= w_canvas or sh >= h_canvas:
        raise ConfigError(f"a {face_height} px face does not fit a {w_canvas}x{h_canvas} frame")
    ox = int(rng.integers(0, w_canvas - sw))
    oy = int(rng.integers(0, h_canvas - sh))
    ramp = max(1.0, 0.2 * min(sw, sh))
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    edge = np.minimum.reduce([xx + 0.5, yy + 0.5, sw - xx - 0.5, sh - yy - 0.5])
    alpha = np.clip(edge / ramp, 0, 1)[..., None]
    region = frame[oy : oy + sh, ox : ox + sw].astype(np.float32)
    frame[oy : oy + sh, ox : ox + sw] = (alpha * small + (1 - alpha) * region).round().astype(np.uint8)
    placed = (
        round(ox + (x1 - cx1) * scale),
        round(oy + (y1 - cy1) * scale),
        round(ox + (x2 - cx1) * scale),
        round(oy + (y2 - cy1) * scale),
    )
    return frame, placed


def largest_face(detector, image: np.ndarray) -> np.ndarray | None:  # noqa: ANN001 - a CenterFaceDetector
    faces = detector.detect(image)
    if not len(faces):
        return None
    areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
    return faces.xyxy[int(np.argmax(areas))]


def build_suite(
    media: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    sizes: Sequence[int] = (16, 20, 24, 32, 40, 48, 60),
    degradations: Iterable[str] = ("dark", "low_contrast", "motion_blur", "jpeg", "x264", "dark_x264"),
    canvas: str = "360p",
    photos: Sequence[str] | None = None,
    per_photo: int | None = None,
    seed: int = 0,
) -> list[HardCase]:
    """Write hard frames made from the real identity photos under ``media`` into ``folder``.

    Args:
        media: The shared media folder (``../shared/media``); read only.
        folder: Output folder (created); gets one PNG per case and ``identities.csv``.
        sizes: Face heights in pixels.
        degradations: Names in :data:`DEGRADATIONS`.
        canvas: Frame size the faces are placed in (``360p``, ``1080p``, ``4k``).
        photos: Relative paths under ``media/identity`` to use (default: every photo with an identity).
        per_photo: Cases per photo, taking (size, degradation) combinations in turn across photos so the
            whole grid is covered with fewer frames; ``None`` makes every combination for every photo.
        seed: Seed of placements and noise (the suite is the same on every run).

    Returns:
        The cases written, in file order.
    """
    from camouflage_video.annotators import CenterFaceDetector

    media, folder = Path(media), Path(folder)
    names = list(degradations)
    for name in names:
        if name not in DEGRADATIONS:
            raise ConfigError(f"unknown degradation {name!r}; choose from {', '.join(DEGRADATIONS)}")
    identities = photo_identities(media)
    chosen = list(photos) if photos is not None else list(identities)
    folder.mkdir(parents=True, exist_ok=True)
    detector = CenterFaceDetector(thresh=0.5, det_size=960, precision="fp32")
    backgrounds = background_frames(media)
    grid = [(size, name) for size in sizes for name in names]
    rng = np.random.default_rng(seed)
    cases: list[HardCase] = []
    turn = 0
    for relative in chosen:
        photo = read_image(media / "identity" / relative)
        if photo is None:
            continue
        box = largest_face(detector, photo)
        if box is None:
            continue
        combos = grid if per_photo is None else [grid[(turn + k) % len(grid)] for k in range(per_photo)]
        turn += per_photo or 0
        for size, name in combos:
            background = backgrounds[int(rng.integers(len(backgrounds)))]
            frame, placed = place_face(photo, box, size, background, CANVASES[canvas], rng)
            frame = DEGRADATIONS[name](frame, rng)
            stem = Path(relative).stem if "/" not in relative else relative.replace("/", "_").rsplit(".", 1)[0]
            file = f"{stem}_{canvas}_{size}px_{name}.png"
            if not cv2.imwrite(str(folder / file), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise ConfigError(f"{folder / file}: cannot write")
            cases.append(HardCase(file, identities.get(relative, Path(relative).stem), relative, size, canvas,
                                  name, placed))
    with (folder / IDENTITY_FILE).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "identity", "source", "face_height", "canvas", "degradation"])
        for case in cases:
            writer.writerow([case.file, case.identity, case.photo, case.face_height, case.canvas, case.degradation])
    return cases
