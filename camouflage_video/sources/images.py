"""Still images and image folders (recursive, sorted), decoded with OpenCV."""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.frame import Frame
from camouflage_video.sources.base import Source, SourceInfo, check_picture_size, picture_too_large
from camouflage_video.sources.sniff import classify
from camouflage_video.sources.video import check_input_file

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def read_image(path: Path) -> np.ndarray | None:
    """Read an image as upright RGB (EXIF orientation applied), or ``None`` if it cannot be decoded.

    OpenCV reads the common formats; FFmpeg the ones it lacks (TGA, PCX, ICO, XPM, ...), so an image
    recognised by its content is anonymized rather than failed wherever a decoder exists.
    """
    transparent = _check_header(path)
    data = np.fromfile(str(path), dtype=np.uint8)  # imdecode copes with non-ASCII paths, imread does not
    if _cut_short_jpeg(data):
        logger.warning("%s: the JPEG ends inside its picture data (cut short?); what is missing is grey", path)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if image is None and data.size:  # a one-channel float TIFF: OpenCV decodes it only as it is
        image = _as_bgr(cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH))
    if image is None:
        if data.size and classify(path).kind == "video":  # a clip named .jpg: its first picture is not all of it
            raise InputError(f"{path}: a video, not a picture (anonymize the file itself: it is read as a video)")
        if not data.size:
            return None
        icon = _read_largest_icon(path)
        return icon if icon is not None else _read_with_ffmpeg(path)
    if image.dtype.kind == "f" and not np.nanmax(image, initial=0.0) <= 1.0:
        mapped = cv2.imdecode(data, cv2.IMREAD_COLOR)  # HDR radiance: OpenCV's own tone mapping
        # A float TIFF (OpenCV maps none): of 0..1 with a few values over, of 0..255 or 0..65535 as 8- or
        # 16-bit values were converted, else by its brightest values but 0.1%.
        top, most = float(np.nanmax(image)), float(np.nanpercentile(image, 99.9))
        scale = 1.0 if most <= 1 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else most
        image = mapped if mapped is not None else image / max(scale, 1e-6)
    rgb = cv2.cvtColor(eight_bit(image, _pnm_maxval_bits(data)), cv2.COLOR_BGR2RGB)
    return _flattened(rgb, _alpha(path, rgb.shape[:2])) if transparent else rgb


def _cut_short_jpeg(data: np.ndarray) -> bool:
    """Whether JPEG data has no end marker after its last scan starts (0xFFD9 cannot occur inside one)."""
    if data[:3].tobytes() != b"\xff\xd8\xff":
        return False
    raw = data.tobytes()
    scan = raw.rfind(b"\xff\xda")
    return scan >= 0 and raw.rfind(b"\xff\xd9") < scan


def _as_bgr(image: np.ndarray | None) -> np.ndarray | None:
    if image is None or image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[..., :3]) if image.shape[2] == 4 else None  # alpha: read by _alpha


def _flattened(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` shown over white through ``alpha``, as a viewer shows it.

    Outputs have no transparency: written as they were decoded, the colours under transparent pixels (a
    background "removed" by clearing its alpha, with the scene still in the file) would be seen by anyone.
    """
    if alpha.min() == 255:
        return rgb
    a = alpha[..., None].astype(np.float32) / 255.0
    return (rgb.astype(np.float32) * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def _alpha(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The transparency of ``path`` as 8-bit opacity, turned upright as its colours are."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as header:
            alpha = np.asarray(ImageOps.exif_transpose(header).convert("RGBA"))[..., 3]
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: its transparency cannot be read ({exc})") from exc
    if alpha.shape != tuple(shape):
        raise InputError(f"{path}: its transparency is {alpha.shape[1]}x{alpha.shape[0]}, its picture "
                         f"{shape[1]}x{shape[0]}")
    return alpha


def eight_bit(image: np.ndarray, bits: int | None = None) -> np.ndarray:
    """``image`` as 8-bit values, scaled by the bits its samples use, not by those its container holds.

    OpenCV turns 16-bit samples to 8 bits by dropping the low byte: a 10-bit camera picture in a 16-bit PNG
    (values to 1023) became values 0..3, black to the eye and to the detector, and its faces were written as
    they were, plain to anyone who stretches the levels. ``bits`` is what the file says where that is the
    scale (a PNM's maxval); otherwise the values say it (the bits that hold all but the brightest 0.1%, at
    least 8). A PNG's ``sBIT`` is not trusted: by the standard the values fill the 16 bits whatever it says
    (read as 10 bits, such a picture came out white), and writers that do not scale them set it wrong as
    often. Floats of 0..1 (PFM, float TIFF) are scaled to 0..255.
    """
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        return np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if bits is None:
        sample = image[:: max(1, image.shape[0] // 256), :: max(1, image.shape[1] // 256)]
        bits = int(np.percentile(sample, 99.9)).bit_length()
    top = float(2 ** min(max(bits, 8), 8 * image.dtype.itemsize) - 1)
    return np.clip(image.astype(np.float32) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def _pnm_maxval_bits(data: np.ndarray) -> int | None:
    """The bits a binary or plain PNM's maxval spans (its values' full scale), or ``None``."""
    match = _PNM_MAXVAL.match(data[:4096].tobytes())
    return int(match.group(1)).bit_length() if match else None


# P2/P3/P5/P6 headers: magic, width, height, maxval, with comments anywhere between them.
_PNM_MAXVAL = re.compile(rb"P[2356](?:\s+|#[^\n]*\n)+\d+(?:\s+|#[^\n]*\n)+\d+(?:\s+|#[^\n]*\n)+(\d+)\s")


def _read_or_skip(path: Path) -> np.ndarray | None:
    """One image of a folder, or ``None`` (with a warning) where it cannot or must not be decoded."""
    try:
        image = read_image(path)
    except InputError as exc:
        logger.warning("%s; skipped", exc)
        return None
    if image is None:
        logger.warning("%s: skipped, not a readable image", path)
    return image


#: Pillow formats whose further pictures are frames of an animation (read as a video by open_image) ...
ANIMATED_FORMATS = frozenset({"PNG", "WEBP", "AVIF"})
#: ... and those whose further pictures are pages: any of them may hold a face, and one output image holds one.
PAGED_FORMATS = frozenset({"TIFF"})


def _open_header(path: Path):
    """The image opened lazily by Pillow (header only), or ``None`` where Pillow cannot tell what it is."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns from 89 million pixels; our own limit speaks instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:  # beyond even Pillow's own limit (179 million pixels)
        raise picture_too_large(path, f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # not ours to judge here: the decoders say whether it can be read


def _pictures(header) -> int:
    try:
        return int(getattr(header, "n_frames", 1))
    except (OSError, ValueError, EOFError):  # a damaged page chain: at least two pages were announced
        return 2


def _check_header(path: Path) -> bool:
    """Refuse, from the header alone, a picture over the pixel limit and a file of several pictures that one
    output image cannot hold (formats Pillow lacks are size-checked by FFmpeg's reader below). Returns
    whether the picture has transparency."""
    header = _open_header(path)
    if header is None:
        return False
    with header:
        check_picture_size(path, *header.size)
        count = _pictures(header) if header.format in ANIMATED_FORMATS | PAGED_FORMATS | {"GIF"} else 1
        if count > 1:
            raise _several_pictures(path, header.format, count)
        extra = _dropped_pictures(header)
        if extra:
            logger.warning("%s: %s", path, extra)
        return _has_alpha(header)


def _dropped_pictures(header) -> str | None:  # noqa: ANN001 - a Pillow image
    """The pictures beside the main one that an output image does not hold (none of them is written)."""
    if header.format == "MPO" and _pictures(header) > 1:
        return f"{_pictures(header) - 1} more picture(s) after the first (a stereo view, a preview) not written"
    sizes = header.info.get("sizes") if header.format in ("ICO", "ICNS") else None
    if sizes and len(sizes) > 1:
        return f"{len(sizes)} sizes of the icon: the largest is anonymized and written, the others are not"
    return None


def _has_alpha(picture) -> bool:  # noqa: ANN001 - a Pillow image
    return picture.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in picture.info


def _several_pictures(path: Path, fmt: str, count: int) -> InputError:
    if fmt in PAGED_FORMATS:
        return InputError(
            f"{path}: a {fmt} of {count} pages; one output image holds one page and the others would be lost "
            "(split it into one file per page first, e.g. tiffsplit)"
        )
    return InputError(
        f"{path}: an animated {fmt} of {count} frames; one output image holds one frame and the others would be "
        "lost (anonymize the file itself: it is read as a video)"
    )


def _read_largest_icon(path: Path) -> np.ndarray | None:
    """An icon's largest size, as RGB over white (FFmpeg decodes its first, often 16x16), or ``None`` for a
    file that is not an icon Pillow reads."""
    from PIL import Image

    try:
        with Image.open(path) as icon:
            if icon.format not in ("ICO", "ICNS"):
                return None
            rgba = np.asarray(icon.convert("RGBA"))  # Pillow opens an icon at its largest size
    except (OSError, ValueError):
        return None
    return _flattened(np.ascontiguousarray(rgba[..., :3]), rgba[..., 3])


def _read_with_ffmpeg(path: Path) -> np.ndarray | None:
    """The first picture FFmpeg decodes from ``path``, as RGB, or ``None``."""
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            context = container.streams.video[0].codec_context
            check_picture_size(path, context.width, context.height)
            for frame in container.decode(container.streams.video[0]):
                rgba = frame.to_ndarray(format="rgba")  # TGA, ICO, ... with transparency: flattened as above
                return _flattened(np.ascontiguousarray(rgba[..., :3]), rgba[..., 3])
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - FFmpeg's and PyAV's errors on files they half-recognise: not readable
        return None
    return None


def list_images(root: Path) -> list[Path]:
    """Every image below ``root``, sorted by relative path, hidden folders skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def unread_media(root: Path, listed: list[Path]) -> list[str]:
    """Relative paths of the files below ``root`` that are images or videos by content but not in ``listed``."""
    chosen = set(listed)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and path not in chosen and classify(path).media:
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


class ImageSource(Source):
    """A single image as a one-frame source.

    Examples:
        >>> with ImageSource("photo.jpg") as src:  # doctest: +SKIP
        ...     frame = next(iter(src))
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        check_input_file(self.path)
        self.corrupt_frames = 0
        self._image = read_image(self.path)
        if self._image is None:
            raise InputError(f"{self.path}: not a readable image")
        h, w = self._image.shape[:2]
        self.info = SourceInfo(uri=str(self.path), kind="image", width=w, height=h, frame_count=1)

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(self._image, index=0, key=self.path.name)


class AnimatedImageSource(Source):
    """An animated PNG, WebP or AVIF read as a video: every frame, each at its own duration.

    Pillow composes the frames (FFmpeg 8 cannot decode animated WebP) one at a time, so memory stays at one
    frame. Timestamps count milliseconds, the unit both formats store durations in.

    Examples:
        >>> with AnimatedImageSource("wave.webp") as src:  # doctest: +SKIP
        ...     print(src.info.frame_count, src.info.fps)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        check_input_file(self.path)
        self.corrupt_frames = 0
        header = _open_header(self.path)
        if header is None or header.format not in ANIMATED_FORMATS:
            raise InputError(f"{self.path}: not an animated PNG, WebP or AVIF")
        self._image = header
        try:
            check_picture_size(self.path, *header.size)
            self._count = _pictures(header)
            first = self._frame(0)
            if first is None:
                raise InputError(f"{self.path}: not a readable image")
            duration = self._duration()
        except BaseException:
            header.close()
            raise
        self._first: tuple[np.ndarray, int] | None = (first, duration)
        self.info = SourceInfo(
            uri=str(self.path),
            kind="video",
            width=first.shape[1],
            height=first.shape[0],
            fps=Fraction(1000, duration),
            time_base=Fraction(1, 1000),
            frame_count=self._count,
            codec=header.format.lower(),
        )

    def _frame(self, index: int) -> np.ndarray | None:
        try:
            self._image.seek(index)
            if not _has_alpha(self._image):
                return np.asarray(self._image.convert("RGB"))
            rgba = np.asarray(self._image.convert("RGBA"))
            return _flattened(np.ascontiguousarray(rgba[..., :3]), rgba[..., 3])
        except (OSError, ValueError, EOFError) as exc:
            self.corrupt_frames += 1
            logger.warning("%s: frame %d of %d cannot be decoded (%s); the rest is lost", self.path, index + 1,
                           self._count, exc)
            return None

    def _duration(self) -> int:
        """Milliseconds the current frame shows; 0 or none is 100 ms, as browsers show such frames."""
        return max(1, int(self._image.info.get("duration") or 100))

    def __iter__(self) -> Iterator[Frame]:
        pts = 0
        for index in range(self._count):
            if index == 0 and self._first is not None:
                (image, duration), self._first = self._first, None
            else:
                image = self._frame(index)
                if image is None:
                    return
                duration = self._duration()
            yield Frame(image, index=index, pts=pts, time_base=Fraction(1, 1000))
            pts += duration

    def close(self) -> None:
        self._image.close()


def open_image(path: str | os.PathLike[str]) -> Source:
    """The source for an image file: an animated PNG, WebP or AVIF is a video, any other image one frame.

    Raises:
        InputError: for a file of several pages (a multi-page TIFF): one output image cannot hold them.
    """
    path = Path(path)
    header = _open_header(path)
    animated = False
    if header is not None:
        with header:
            animated = header.format in ANIMATED_FORMATS and _pictures(header) > 1
    return AnimatedImageSource(path) if animated else ImageSource(path)


class ImageFolderSource(Source):
    """Every image below a folder, in sorted relative-path order; each frame's ``key`` is that path.

    Images of different sizes are fine. Files that do not decode are skipped and counted in
    ``corrupt_frames``; ``skipped`` lists them. Images are the files named like the images this tool writes
    (``IMAGE_EXTENSIONS``); other files that are images or videos by content (a JPEG named ``.jfif``, a
    clip) are not read, and ``not_read`` lists them with a warning: the output folder would otherwise look
    complete. ``camouflage-video dataset`` anonymizes such trees whole.

    Examples:
        >>> with ImageFolderSource("photos/") as src:  # doctest: +SKIP
        ...     for frame in src:
        ...         print(frame.key, frame.size)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputNotFoundError(f"{self.path}: no such file or directory")
        self.files = list_images(self.path)
        if not self.files:
            raise InputError(f"{self.path}: folder contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.corrupt_frames = 0
        self.skipped: list[str] = []
        self.not_read = unread_media(self.path, self.files)
        if self.not_read:
            more = len(self.not_read) - 5
            shown = ", ".join(self.not_read[:5]) + (f" and {more} more" if more > 0 else "")
            logger.warning(
                "%s: %d image or video file(s) not anonymized, not named %s: %s "
                "(rename them, or use 'camouflage-video dataset')",
                self.path, len(self.not_read), "/".join(sorted(IMAGE_EXTENSIONS)), shown,
            )
        first = None
        for path in self.files:
            first = _read_or_skip(path)
            if first is not None:
                break
        if first is None:
            raise InputError(f"{self.path}: none of its {len(self.files)} images can be decoded")
        self.info = SourceInfo(
            uri=str(self.path),
            kind="folder",
            width=first.shape[1],
            height=first.shape[0],
            frame_count=len(self.files),
        )

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.files:
            key = path.relative_to(self.path).as_posix()
            image = _read_or_skip(path)
            if image is None:
                self.corrupt_frames += 1
                self.skipped.append(key)
                continue
            yield Frame(image, index=index, key=key)
            index += 1
