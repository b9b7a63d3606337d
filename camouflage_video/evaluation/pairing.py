"""Pairing an original with its anonymized version: frames by timestamp, images by relative path, faces by box.

Everything is read through the foundation's sources, lazily: at any time only the current pair of frames
(and the previous one, for temporal metrics) is in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath

import numpy as np

from camouflage_video.errors import ConfigError, InputError
from camouflage_video.frame import Faces, Frame
from camouflage_video.geometry import pairwise_iou
from camouflage_video.sources import ImageFolderSource, Source, SourceInfo, is_stream_uri, open_source
from camouflage_video.sources.images import read_image

PAIR_BY = ("time", "index")


@dataclass(frozen=True, slots=True)
class FramePair:
    """The same moment (or file) in the original and in the anonymized input.

    Attributes:
        original: Frame of the original.
        anonymized: Frame of the anonymized output, same size.
        index: Position of the pair, counting from 0.
        key: Relative path for images and folders, ``None`` for video frames.
        consecutive: True when this pair directly follows the previous one in the original (for the
            temporal metrics, which compare neighbouring frames).
    """

    original: Frame
    anonymized: Frame
    index: int
    key: str | None = None
    consecutive: bool = False

    def __post_init__(self) -> None:
        if self.original.image.shape != self.anonymized.image.shape:
            (ow, oh), (aw, ah) = self.original.size, self.anonymized.size
            where = f" ({self.key})" if self.key else f" (frame {self.original.index})"
            raise InputError(
                f"anonymized picture is {aw}x{ah} but the original is {ow}x{oh}{where}: "
                "evaluate compares pictures of the same size"
            )

    @property
    def time(self) -> float | None:
        t = self.original.time
        return None if t is None else float(t)


class PairedInputs:
    """Open an original and its anonymized version and iterate over :class:`FramePair` objects.

    Video pairs are matched by presentation time (half a frame of tolerance), so a frame the anonymizer
    skipped does not shift every later pair; ``pair_by="index"`` matches by position instead. Image folders
    are matched by relative path (then by path without extension, for outputs saved in another format).

    Args:
        original: Video, image or image folder.
        anonymized: The same kind of input.
        pair_by: ``"time"`` or ``"index"`` for videos.

    Raises:
        InputError: Missing or unreadable inputs, or inputs of different kinds.
        ConfigError: Live streams (evaluate needs files) or a bad ``pair_by``.

    Examples:
        >>> with PairedInputs("clip.mp4", "clip_anonymized.mp4") as pairs:  # doctest: +SKIP
        ...     for pair in pairs:
        ...         print(pair.index, pair.time)
    """

    def __init__(
        self, original: str | os.PathLike[str], anonymized: str | os.PathLike[str], pair_by: str = "time"
    ) -> None:
        if pair_by not in PAIR_BY:
            raise ConfigError(f"pair_by must be one of {', '.join(PAIR_BY)}, got {pair_by!r}")
        for uri in (original, anonymized):
            if is_stream_uri(os.fspath(uri)):
                raise ConfigError(f"{uri}: evaluate compares files; record the stream first")
        self.pair_by = pair_by
        self.unpaired_original = 0
        self.unpaired_anonymized = 0
        self.unpaired_keys: list[str] = []
        self.pairs = 0
        self._original: Source = open_source(original)
        try:
            self._anonymized: Source = open_source(anonymized)
        except BaseException:
            self._original.close()
            raise
        ko, ka = self._original.info.kind, self._anonymized.info.kind
        if ko != ka:
            self.close()
            raise InputError(
                f"cannot compare a {ko} ({original}) with a {ka} ({anonymized}): give two of the same kind"
            )
        self.kind = ko
        self._folder_pairs: list[tuple[str, Path, Path]] = []
        if ko == "folder":
            self._folder_pairs = self._pair_folders()

    @property
    def original_info(self) -> SourceInfo:
        return self._original.info

    @property
    def anonymized_info(self) -> SourceInfo:
        return self._anonymized.info

    @property
    def frames_original(self) -> int:
        """Frames (or images) of the original seen so far, paired or not."""
        return self.pairs + self.unpaired_original

    @property
    def frames_anonymized(self) -> int:
        return self.pairs + self.unpaired_anonymized

    @property
    def total(self) -> int | None:
        """Expected number of pairs, for progress bars."""
        if self.kind == "folder":
            return len(self._folder_pairs)
        return self._original.info.frame_count

    @property
    def corrupt_frames(self) -> int:
        return self._original.corrupt_frames + self._anonymized.corrupt_frames

    def __iter__(self) -> Iterator[FramePair]:
        if self.kind == "folder":
            pairs = self._iter_folders()
        elif self.kind == "image":
            original, anonymized = next(iter(self._original)), next(iter(self._anonymized))
            pairs = iter([FramePair(original, anonymized, 0, key=original.key)])
        elif self.pair_by == "index":
            pairs = self._iter_by_index()
        else:
            pairs = self._iter_by_time()
        for pair in pairs:
            self.pairs += 1
            yield pair

    # -- videos -------------------------------------------------------------------------------------

    def _iter_by_index(self) -> Iterator[FramePair]:
        ita, itb = iter(self._original), iter(self._anonymized)
        index = 0
        while True:
            original, anonymized = next(ita, None), next(itb, None)
            if original is None or anonymized is None:
                break
            yield FramePair(original, anonymized, index, consecutive=index > 0)
            index += 1
        self._count_rest(original, ita, anonymized, itb)

    def _iter_by_time(self) -> Iterator[FramePair]:
        fps = self._original.info.fps or self._anonymized.info.fps or Fraction(25)
        tolerance = Fraction(1, 2) / Fraction(fps)
        ita, itb = iter(self._original), iter(self._anonymized)
        original, anonymized = next(ita, None), next(itb, None)
        index, last_original = 0, None
        while original is not None and anonymized is not None:
            to, ta = _time(original), _time(anonymized)
            if abs(to - ta) <= tolerance:
                consecutive = last_original is not None and original.index == last_original + 1
                yield FramePair(original, anonymized, index, consecutive=consecutive)
                index, last_original = index + 1, original.index
                original, anonymized = next(ita, None), next(itb, None)
            elif to < ta:
                self.unpaired_original += 1
                original = next(ita, None)
            else:
                self.unpaired_anonymized += 1
                anonymized = next(itb, None)
        self._count_rest(original, ita, anonymized, itb)
        if index == 0 and self.unpaired_original and self.unpaired_anonymized:
            raise InputError(
                "no frame of the anonymized video has a timestamp matching the original's: "
                "if it was re-encoded with another start time, pass --pair-by index"
            )

    def _count_rest(
        self, original: Frame | None, ita: Iterator[Frame], anonymized: Frame | None, itb: Iterator[Frame]
    ) -> None:
        """Count the frames left over on either side once the other side has ended."""
        if original is not None:
            rest = 1 + sum(1 for _ in ita)
            self.unpaired_original += rest
        if anonymized is not None:
            rest = 1 + sum(1 for _ in itb)
            self.unpaired_anonymized += rest

    # -- folders ------------------------------------------------------------------------------------

    def _pair_folders(self) -> list[tuple[str, Path, Path]]:
        original, anonymized = self._original, self._anonymized
        assert isinstance(original, ImageFolderSource) and isinstance(anonymized, ImageFolderSource)
        exact = {p.relative_to(anonymized.path).as_posix(): p for p in anonymized.files}
        by_stem: dict[str, list[Path]] = {}
        for key, path in exact.items():
            by_stem.setdefault(str(PurePosixPath(key).with_suffix("")), []).append(path)
        pairs, used = [], set()
        for path in original.files:
            key = path.relative_to(original.path).as_posix()
            match = exact.get(key)
            if match is None:
                candidates = by_stem.get(str(PurePosixPath(key).with_suffix("")), [])
                match = candidates[0] if len(candidates) == 1 else None
            if match is None or match in used:
                self.unpaired_original += 1
                self.unpaired_keys.append(key)
                continue
            used.add(match)
            pairs.append((key, path, match))
        self.unpaired_anonymized = len(exact) - len(used)
        if not pairs:
            raise InputError(
                f"no image of {anonymized.path} has the relative path of an image in {original.path}: "
                "evaluate pairs folders by relative path"
            )
        return pairs

    def _iter_folders(self) -> Iterator[FramePair]:
        index = 0
        for key, path_original, path_anonymized in self._folder_pairs:
            original, anonymized = read_image(path_original), read_image(path_anonymized)
            if original is None or anonymized is None:
                self.unpaired_keys.append(key)
                self.unpaired_original += 1
                continue
            yield FramePair(Frame(original, index, key=key), Frame(anonymized, index, key=key), index, key=key)
            index += 1

    def close(self) -> None:
        self._original.close()
        self._anonymized.close()

    def __enter__(self) -> PairedInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _time(frame: Frame) -> Fraction:
    time = frame.time
    return Fraction(frame.index, 25) if time is None else time




def match_faces(original: Faces, anonymized: Faces, min_iou: float = 0.3) -> np.ndarray:
    """For each original face, the index of the anonymized face at the same place, or -1.

    Greedy on IoU, best overlaps first: faces rarely overlap, so this equals an optimal assignment in
    practice and needs no extra dependency.
    """
    match = np.full(len(original), -1, np.int64)
    if len(original) == 0 or len(anonymized) == 0:
        return match
    iou = pairwise_iou(original.xyxy, anonymized.xyxy)
    taken = np.zeros(len(anonymized), bool)
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if match[i] < 0 and not taken[j]:
            match[i], taken[j] = j, True
    return match
