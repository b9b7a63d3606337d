"""The two files of the review loop: ``tracks.json`` (what a run found and decided, frame by frame) and
``regions.json`` (a reviewer's corrections). Both are read whole and checked before any work starts; a bad
file is one :class:`ConfigError` line that names the file and the entry.

``tracks.json``::

    {"version": 1, "video": {"width": 640, "height": 360, "frame_count": 50, "fps": "25", "sha256": "..."},
     "method": "blur", "mode": "keep",
     "frames": [
       {"frame": 0, "faces": [{"box": [x1, y1, x2, y2], "track": 3, "state": "detected",
                               "decision": "kept", "why": "match 0.38", "method": "none",
                               "landmarks": [[x, y], ... 5 points]}],
        "regions": ["badge"]},
       {"frame": 1, "fallback": true},
       ...]}

``video.sha256`` is the content digest of the video file the run read: a replay or a review page is only ever
rendered from that very file (another video's tracks would leave every one of its faces uncovered).
``state`` is ``detected``, ``held`` (the tracker's prediction over a miss) or ``backfilled`` (carried back or
interpolated by the look-ahead); ``decision`` is ``kept`` (left visible) or ``removed`` (anonymized by
``method``). A frame that failed and was written as the whole-frame fallback says ``"fallback": true``.

``regions.json`` (frame ranges are inclusive, counted from 0)::

    {"version": 1,
     "regions": [{"id": "badge", "frames": [10, 80], "box": [x1, y1, x2, y2]},
                 {"id": "screen", "frames": [0, 49], "polygon": [[x, y], [x, y], [x, y]], "cover": "solid"}],
     "tracks": [{"track": 3, "action": "removed"}, {"track": 5, "action": "kept", "frames": [0, 20]}]}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from camouflage_video.errors import ConfigError

VERSION = 1
STATES = ("detected", "held", "backfilled")
DECISIONS = ("kept", "removed")
COVERS = ("method", "solid")
SHAPES = ("ellipse", "box")
#: Coordinates beyond this many pixels are refused: no picture is that large, and past it the float32 and
#: int32 arithmetic of covering a box or filling a polygon overflows (a box or polygon that reaches out
#: to 1e39 or 1e10 was accepted and covered nothing).
MAX_COORDINATE = 1_000_000


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content, read in chunks (about 1 s per GB)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} file ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


class _Checker:
    """Raises ``ConfigError("<file>: <where>: <what>")``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)

    def fail(self, where: str, message: str) -> None:
        raise ConfigError(f"{self.path}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object, got {type(value).__name__}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
        missing = [k for k in required if k not in value]
        if missing:
            self.fail(where, f"missing {', '.join(missing)}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(where, f"must be a finite number, got {value!r}")
        return float(value)

    def coordinate(self, value: Any, where: str) -> float:
        number = self.number(value, where)
        if abs(number) > MAX_COORDINATE:
            self.fail(where, f"coordinates must be within +-{MAX_COORDINATE} px, got {value!r}")
        return number

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be an integer, got {value!r}")
        return value

    def items(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            self.fail(where, f"must be a list, got {type(value).__name__}")
        return value

    def box(self, value: Any, where: str) -> tuple[float, float, float, float]:
        items = self.items(value, where)
        if len(items) != 4:
            self.fail(where, f"must be [x1, y1, x2, y2], got {len(items)} numbers")
        x1, y1, x2, y2 = (self.coordinate(v, where) for v in items)
        if not (x2 > x1 and y2 > y1):
            self.fail(where, f"must have x2 > x1 and y2 > y1, got {items}")
        return x1, y1, x2, y2

    def frames(self, value: Any, where: str) -> tuple[int, int]:
        items = self.items(value, where)
        if len(items) != 2:
            self.fail(where, f"must be [first, last], got {items}")
        first, last = (self.integer(v, where) for v in items)
        if not 0 <= first <= last:
            self.fail(where, f"must have 0 <= first <= last, got {items}")
        return first, last


# -- regions.json --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """An area anonymized over a frame range, whatever the detector found there."""

    id: str
    first: int
    last: int
    box: tuple[float, float, float, float] | None = None
    polygon: tuple[tuple[float, float], ...] | None = None
    cover: str = "method"

    def active(self, frame: int) -> bool:
        return self.first <= frame <= self.last

    def bounds(self) -> tuple[float, float, float, float]:
        if self.box is not None:
            return self.box
        points = np.asarray(self.polygon, np.float64)
        return (*points.min(axis=0), *points.max(axis=0))  # type: ignore[return-value]


@dataclass(frozen=True)
class TrackOverride:
    """A reviewer's decision on a whole track (or on a frame range of it); ``last`` ``None``: to the end."""

    track: int
    action: str
    first: int = 0
    last: int | None = None

    def applies(self, track: int, frame: int) -> bool:
        return track == self.track and self.first <= frame and (self.last is None or frame <= self.last)


@dataclass(frozen=True)
class Regions:
    path: str
    regions: tuple[Region, ...] = ()
    tracks: tuple[TrackOverride, ...] = ()

    def active(self, frame: int) -> list[Region]:
        return [r for r in self.regions if r.active(frame)]

    def override(self, track: int, frame: int) -> str | None:
        """``removed`` if any override removes this track here (removal wins), else ``kept`` or ``None``."""
        actions = {o.action for o in self.tracks if track >= 0 and o.applies(track, frame)}
        return "removed" if "removed" in actions else ("kept" if actions else None)

    def check(self, *, width: int, height: int, frame_count: int | None, track_ids: set[int] | None) -> None:
        """Everything that needs the video: ranges inside it, areas inside the picture, known tracks."""
        check = _Checker(self.path)
        for n, region in enumerate(self.regions):
            where = f"regions[{n}] ({region.id})"
            if frame_count is not None and region.last >= frame_count:
                check.fail(where, f"frames [{region.first}, {region.last}] go past the video's last frame "
                                  f"{frame_count - 1}")
            x1, y1, x2, y2 = region.bounds()
            if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
                check.fail(where, f"lies outside the {width}x{height} picture")
        for n, override in enumerate(self.tracks):
            where = f"tracks[{n}]"
            if track_ids is None:
                check.fail(where, "forcing a track needs the tracks file it comes from (--tracks-in)")
            if override.track not in track_ids:
                check.fail(where, f"unknown track id {override.track}; the tracks file has "
                                  f"{_listing(sorted(track_ids))}")
            if frame_count is not None and (override.first >= frame_count
                                            or (override.last is not None and override.last >= frame_count)):
                check.fail(where, f"frames go past the video's last frame {frame_count - 1}")


def load_regions(path: str | os.PathLike[str]) -> Regions:
    """Read and check ``regions.json`` (syntax and types; :meth:`Regions.check` does the rest)."""
    data = _read_json(path, "regions")
    check = _Checker(path)
    check.mapping(data, "top level", ("version", "regions", "tracks", "video"))
    if data.get("version", VERSION) != VERSION:
        check.fail("version", f"must be {VERSION}, got {data.get('version')!r}")
    regions = []
    for n, entry in enumerate(check.items(data.get("regions", []), "regions")):
        where = f"regions[{n}]"
        check.mapping(entry, where, ("id", "frames", "box", "polygon", "cover"), ("frames",))
        if ("box" in entry) == ("polygon" in entry):
            check.fail(where, "needs exactly one of box or polygon")
        first, last = check.frames(entry["frames"], f"{where}.frames")
        cover = entry.get("cover", "method")
        if cover not in COVERS:
            check.fail(f"{where}.cover", f"must be one of {', '.join(COVERS)}, got {cover!r}")
        box = polygon = None
        if "box" in entry:
            box = check.box(entry["box"], f"{where}.box")
        else:
            points = check.items(entry["polygon"], f"{where}.polygon")
            if len(points) < 3:
                check.fail(f"{where}.polygon", f"needs at least 3 points, got {len(points)}")
            polygon = []
            for k, point in enumerate(points):
                pair = check.items(point, f"{where}.polygon[{k}]")
                if len(pair) != 2:
                    check.fail(f"{where}.polygon[{k}]", f"must be [x, y], got {pair}")
                polygon.append((check.coordinate(pair[0], f"{where}.polygon[{k}]"),
                                check.coordinate(pair[1], f"{where}.polygon[{k}]")))
            if _area(polygon) < 1:
                check.fail(f"{where}.polygon", "encloses no area")
            if _edges_cross(polygon):  # corners listed out of order: filled, it covers only part of the area
                check.fail(f"{where}.polygon", "its edges cross; list the points in order around the area")
            polygon = tuple(polygon)
        region_id = entry.get("id", f"region-{n}")
        if not isinstance(region_id, str) or not region_id:
            check.fail(f"{where}.id", f"must be a non-empty string, got {region_id!r}")
        regions.append(Region(region_id, first, last, box, polygon, cover))
    tracks = []
    for n, entry in enumerate(check.items(data.get("tracks", []), "tracks")):
        where = f"tracks[{n}]"
        check.mapping(entry, where, ("track", "action", "frames"), ("track", "action"))
        track = check.integer(entry["track"], f"{where}.track")
        if entry["action"] not in DECISIONS:
            check.fail(f"{where}.action", f"must be one of {', '.join(DECISIONS)}, got {entry['action']!r}")
        first, last = check.frames(entry["frames"], f"{where}.frames") if "frames" in entry else (0, None)
        tracks.append(TrackOverride(track, entry["action"], first, last))
    return Regions(str(path), tuple(regions), tuple(tracks))


def _area(points: list[tuple[float, float]]) -> float:
    xs, ys = np.asarray(points).T
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


def _edges_cross(points: list[tuple[float, float]]) -> bool:
    """Whether two edges of the closed polygon ``points`` that are not neighbours meet (a point repeated
    right after itself, or the first point repeated at the end, is one point). One edge against all the
    others at a time: a traced polygon of thousands of points is checked in well under a second."""
    points = [p for k, p in enumerate(points) if p != points[k - 1]] or points[:1]
    n = len(points)
    if n < 4:
        return False
    a = np.asarray(points, np.float64)
    b = np.roll(a, -1, axis=0)  # edge k runs from a[k] to b[k]

    def turn(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])

    def within(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return ((np.minimum(p[..., 0], q[..., 0]) <= r[..., 0]) & (r[..., 0] <= np.maximum(p[..., 0], q[..., 0]))
                & (np.minimum(p[..., 1], q[..., 1]) <= r[..., 1]) & (r[..., 1] <= np.maximum(p[..., 1], q[..., 1])))

    for i in range(n - 2):
        j = np.arange(i + 2, n - 1 if i == 0 else n)  # not the edge itself nor its neighbours
        if not len(j):
            continue
        p, q, c, d = a[i], b[i], a[j], b[j]
        t1, t2, t3, t4 = turn(c, d, p), turn(c, d, q), turn(p, q, c), turn(p, q, d)
        proper = (((t1 > 0) & (t2 < 0)) | ((t1 < 0) & (t2 > 0))) & (((t3 > 0) & (t4 < 0)) | ((t3 < 0) & (t4 > 0)))
        touching = (((t1 == 0) & within(c, d, p)) | ((t2 == 0) & within(c, d, q))
                    | ((t3 == 0) & within(p, q, c)) | ((t4 == 0) & within(p, q, d)))
        if (proper | touching).any():
            return True
    return False


def _listing(ids: list[int], limit: int = 20) -> str:
    if not ids:
        return "no tracks"
    shown = ", ".join(map(str, ids[:limit]))
    return f"tracks {shown}{', ...' if len(ids) > limit else ''}"


# -- tracks.json ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceEntry:
    box: tuple[float, float, float, float]
    track: int
    state: str
    decision: str
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class TracksFile:
    """A read ``tracks.json``: the faces of every frame, and the video it was made from."""

    path: str
    width: int
    height: int
    frame_count: int
    frames: dict[int, tuple[FaceEntry, ...] | None]  # None: that frame was the fallback
    data: dict
    sha256: str | None = None  # of the video file it was made from

    @property
    def track_ids(self) -> set[int]:
        return {f.track for faces in self.frames.values() if faces for f in faces if f.track >= 0}

    def check_video(self, width: int, height: int, frame_count: int | None, path: str | None = None) -> None:
        """Refuse a video the file was not made from: its size, its length and (``path``) its content.

        Size and length alone match any other clip of the same format (a re-cut, a mixed-up file name), and
        replaying another video's boxes would leave every face of this one uncovered.
        """
        if (width, height) != (self.width, self.height):
            raise ConfigError(f"{self.path}: made from a {self.width}x{self.height} video, this one is "
                              f"{width}x{height}")
        if frame_count is not None and frame_count != self.frame_count:
            raise ConfigError(f"{self.path}: made from a video of {self.frame_count} frames, this one has "
                              f"{frame_count}")
        if path is not None:  # last: it reads the whole file
            if self.sha256 is None:
                raise ConfigError(f"{self.path}: says nothing of the video file it was made from (written by an "
                                  "older version, or from a stream); run again with --tracks-out on this video")
            if file_sha256(path) != self.sha256:
                raise ConfigError(f"{self.path}: made from another video file than {path} (their contents "
                                  "differ); give the video it was made from, or run again with --tracks-out")

    def check_look(self, mask_scale: float, shape: str) -> None:
        """A re-render covers each box at least as the run that made the file did (its mask scale and shape)."""
        made = self.data.get("mask_scale")
        if made is not None and mask_scale < made:
            raise ConfigError(f"{self.path}: made with --mask-scale {made:g}; {mask_scale:g} would cover less of "
                              f"each face: pass --mask-scale {made:g} or more")
        if self.data.get("shape") == "box" and shape != "box":
            raise ConfigError(f"{self.path}: made with --shape box; an ellipse would cover less of each face: "
                              "pass --shape box")



def load_tracks(path: str | os.PathLike[str]) -> TracksFile:
    """Read and check a ``tracks.json`` written by ``--tracks-out`` (and perhaps edited)."""
    data = _read_json(path, "tracks")
    check = _Checker(path)
    check.mapping(data, "top level", ("version", "video", "method", "mode", "frames", "regions", "people",
                                      "mask_scale", "shape"), ("version", "video", "frames"))
    if data["version"] != VERSION:
        check.fail("version", f"must be {VERSION}, got {data['version']!r}")
    if "mask_scale" in data:
        check.number(data["mask_scale"], "mask_scale")
    if data.get("shape", "ellipse") not in SHAPES:
        check.fail("shape", f"must be one of {', '.join(SHAPES)}, got {data['shape']!r}")
    video = check.mapping(data["video"], "video", ("uri", "width", "height", "frame_count", "fps", "sha256"),
                          ("width", "height", "frame_count"))
    digest = video.get("sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64
                                   and all(c in "0123456789abcdef" for c in digest)):
        check.fail("video.sha256", "must be 64 lower-case hex digits")
    width, height = check.integer(video["width"], "video.width"), check.integer(video["height"], "video.height")
    frame_count = check.integer(video["frame_count"], "video.frame_count")
    frames: dict[int, tuple[FaceEntry, ...] | None] = {}
    for n, entry in enumerate(check.items(data["frames"], "frames")):
        where = f"frames[{n}]"
        check.mapping(entry, where, ("frame", "pts", "faces", "regions", "fallback"), ("frame",))
        index = check.integer(entry["frame"], f"{where}.frame")
        if index in frames:
            check.fail(f"{where}.frame", f"frame {index} is listed twice")
        if not 0 <= index < frame_count:
            check.fail(f"{where}.frame", f"frame {index} is outside the video (0..{frame_count - 1})")
        if entry.get("fallback"):
            frames[index] = None
            continue
        faces = []
        for k, face in enumerate(check.items(entry.get("faces", []), f"{where}.faces")):
            at = f"{where}.faces[{k}]"
            check.mapping(face, at, ("box", "track", "state", "decision", "why", "method", "landmarks", "distance"),
                          ("box", "state", "decision"))
            if face["state"] not in STATES:
                check.fail(f"{at}.state", f"must be one of {', '.join(STATES)}, got {face['state']!r}")
            if face["decision"] not in DECISIONS:
                check.fail(f"{at}.decision", f"must be one of {', '.join(DECISIONS)}, got {face['decision']!r}")
            track = check.integer(face.get("track", -1), f"{at}.track")
            landmarks = None
            if face.get("landmarks") is not None:
                points = check.items(face["landmarks"], f"{at}.landmarks")
                if len(points) != 5 or any(not isinstance(p, list) or len(p) != 2 for p in points):
                    check.fail(f"{at}.landmarks", "must be 5 [x, y] points")
                landmarks = tuple((check.number(x, at), check.number(y, at)) for x, y in points)
            faces.append(FaceEntry(check.box(face["box"], f"{at}.box"), track, face["state"], face["decision"],
                                   landmarks))
        frames[index] = tuple(faces)
    return TracksFile(str(path), width, height, frame_count, frames, data, digest)


class TracksWriter:
    """Write ``tracks.json`` as the run goes (one line per frame: memory stays flat on any length) under a
    temporary name, renamed to its final name when the run completes (after its video is published);
    discarded when it fails.

    Frames the writer never saw (they failed before the decision and went out as the fallback) are written as
    ``{"frame": n, "fallback": true}``.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict) -> None:
        self.path = Path(path)
        self.temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._file: TextIO | None = None
        self._header = header
        self._next = 0
        self._count = 0
        self._ended = False

    def add_header(self, **values: Any) -> None:
        """More top-level entries (before the first frame is written)."""
        if self._file is not None:
            raise RuntimeError("the tracks file's header is already written")
        self._header.update(values)

    def _open(self) -> TextIO:
        if self._file is None:
            if not self.path.parent.is_dir():
                raise ConfigError(f"{self.path}: folder does not exist")
            self._file = self.temporary.open("w", encoding="utf-8")
            head = json.dumps({**self._header, "frames": []})
            self._file.write(head[: -len("[]}")] + "[\n")
        return self._file

    def write(self, record: dict) -> None:
        handle = self._open()
        index = record["frame"]
        for missing in range(self._next, index):
            self._line(handle, {"frame": missing, "fallback": True})
        self._line(handle, record)
        self._next = max(self._next, index + 1)

    def _line(self, handle: TextIO, record: dict) -> None:
        handle.write(("" if self._count == 0 else ",\n") + json.dumps(record, separators=(",", ":")))
        self._count += 1

    def close(self, completed: bool, video: dict | None = None) -> None:
        """:meth:`end` and :meth:`publish` the file (``completed``), or :meth:`discard` it."""
        if not completed:
            self.discard()
            return
        self.end(video)
        self.publish()

    def end(self, video: dict | None = None) -> None:
        """Write the end of the file, ``video`` (its ``frame_count`` is the number of frames the run went
        through), still under the temporary name: the run's outputs may yet fail to close."""
        handle = self._open()
        video = dict(video or {})
        count = max(self._next, video.get("frame_count") or 0)
        for missing in range(self._next, count):
            self._line(handle, {"frame": missing, "fallback": True})
        video["frame_count"] = count
        handle.write("\n],\"video\":" + json.dumps(video) + "}\n")
        handle.close()
        self._ended = True

    def publish(self) -> None:
        """Give the ended file its final name."""
        if not self._ended:
            raise RuntimeError("the tracks file is not ended")
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        """Remove the temporary file (a failed run leaves no tracks file)."""
        if self._file is not None:
            self._file.close()
            self.temporary.unlink(missing_ok=True)
