"""The keep/remove decision for every box of a frame, and the anonymizer that applies it.

:class:`RedactingAnonymizer` wraps the run's anonymizer (verified or not): the faces it decides to keep are
taken out of what the inner anonymizer sees, the removed ones go in, and afterwards the kept faces get their
original pixels back (a no-op for the classic looks; the generative ones regenerate the whole frame) except
where a removed face or a region overlaps them. Regions are covered last, over everything.

The decision fails closed. A box is kept only when all of these hold:

- the detector found it in this very frame (a held, carried-back or interpolated box is always removed: it
  marks where a face may be, and no recognizer has seen a face there in this frame);
- no reviewer's override removes its track here, and no region covers it (regions are painted over anyway);
- ``keep`` mode: the recognizer matched it to a reference photo confidently in this frame, and no other face
  of the same frame matched the same person (two faces cannot both be one person: both are removed; the
  reference photos the recognizer finds alike count as one person);
- ``only`` mode: the recognizer found it confidently unlike every reference in this frame, and its track never
  matched, earlier or (within the look-ahead) later;
- replaying a reviewed ``tracks.json`` without ``keep``/``only``: the file says ``kept``;
- or a reviewer's override keeps its track here (detected boxes only, as above).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from camouflage_video.frame import Faces, FrameContext
from camouflage_video.geometry import scale_boxes
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import METHODS as CLASSIC_METHODS
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.redaction.files import Region, Regions, TracksWriter
from camouflage_video.redaction.people import MATCHED_LATER, VERDICTS

logger = logging.getLogger(__name__)

#: FrameContext.extras key: the decisions read from a reviewed tracks file, one bool (kept) per face.
REVIEWED = "redaction.reviewed"
MODES = ("keep", "only")


def face_state(faces: Faces, i: int) -> str:
    """``detected``, ``held`` (the tracker's prediction) or ``backfilled`` (look-ahead, no track id)."""
    if not faces.held[i]:
        return "detected"
    return "held" if faces.track_ids[i] >= 0 else "backfilled"


@dataclass(frozen=True)
class Decision:
    kept: bool
    why: str


class RedactingAnonymizer(Anonymizer):
    """Anonymize every face but those decided kept; cover the regions; record what was done.

    Args:
        inner: The run's anonymizer.
        mode: ``keep`` (only matching faces stay visible), ``only`` (only matching faces are anonymized) or
            ``None`` (every face anonymized, unless a reviewed tracks file or an override keeps it).
        regions: A reviewer's regions and track overrides.
        writer: Where ``tracks.json`` goes, ``None`` for no file.
        method: The run's method (regions take its classic look, or solid).
        mask_scale: The run's mask scale (the kept faces' pixels restored over it).
        video: What the tracks file says of the video.
    """

    def __init__(self, inner: Anonymizer, *, mode: str | None = None, regions: Regions | None = None,
                 writer: TracksWriter | None = None, method: str = "blur", mask_scale: float = 1.3,
                 video: dict | None = None) -> None:
        self.inner, self.mode, self.regions, self.writer = inner, mode, regions, writer
        self.name, self.batch_size = inner.name, inner.batch_size
        self.mask_scale, self.video = mask_scale, dict(video or {})
        look = method if method in CLASSIC_METHODS else "solid"
        self.region_method = look
        self._region_cover = ClassicObfuscator(look, mask_scale=1.0, shape="box")
        if writer is not None:  # how much of each box was covered: the review page renders the same
            shape = _shape_of(inner)
            writer.add_header(mask_scale=mask_scale, **({"shape": shape} if shape else {}))
        self._matched: set[int] = set()  # only mode: tracks that ever matched
        self._ranges: dict[str, dict[str, list[list[int]]]] = {}
        self._untracked = {"kept": 0, "removed": 0}
        self._region_frames: dict[str, int] = {}
        self.faces_kept = self.faces_removed = 0

    # -- the anonymizer interface --------------------------------------------------------------------

    def annotators(self) -> list:
        return self.inner.annotators()

    def reset(self) -> None:
        self.inner.reset()

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        return self._batch([ctx], lambda inner_ctxs: [self.inner(inner_ctxs[0])])[0]

    def process_batch(self, ctxs: list[FrameContext]) -> list[np.ndarray]:
        return self._batch(ctxs, self.inner.process_batch)

    def finish(self, completed: bool, frames: int | None = None) -> None:
        """End of the run, before the outputs close: end the tracks file (or discard it when the run failed)."""
        if self.writer is not None:
            if completed:
                self.writer.end({**self.video, "frame_count": frames})
            else:
                self.writer.discard()
        inner = getattr(self.inner, "finish", None)  # the verifier's checks still queued
        if inner is not None:
            inner(completed=completed, frames=frames)

    def publish(self, completed: bool) -> None:
        """After the outputs closed: the tracks file takes its final name only if they were all published, so
        a run whose video failed to close leaves no tracks file describing a video that does not exist."""
        if self.writer is None:
            return
        if completed:
            self.writer.publish()
        else:
            self.writer.discard()

    def stats(self) -> dict:
        tracks = {str(track): ranges for track, ranges in sorted(self._ranges.items(), key=lambda kv: int(kv[0]))}
        return {**self.inner.stats(), "redaction": {
            "mode": self.mode or "all", "faces_kept": self.faces_kept, "faces_removed": self.faces_removed,
            "tracks": tracks, "untracked_faces": dict(self._untracked),
            "region_frames": dict(sorted(self._region_frames.items())), "region_look": self.region_method,
        }}

    # -- one batch -----------------------------------------------------------------------------------

    def _batch(self, ctxs: list[FrameContext], run: Callable[[list[FrameContext]], list[np.ndarray]]
               ) -> list[np.ndarray]:
        decided = [self.decide(ctx) for ctx in ctxs]
        inner_ctxs = []
        for ctx, decisions in zip(ctxs, decided, strict=True):
            faces = ctx.faces if ctx.faces is not None else Faces.empty()
            removed = np.array([not d.kept for d in decisions], bool)
            inner_ctxs.append(FrameContext(ctx.frame, faces[removed] if len(faces) else faces, ctx.extras))
        images = run(inner_ctxs)
        out = []
        for ctx, decisions, image in zip(ctxs, decided, images, strict=True):
            image = np.array(image, copy=True) if image is ctx.frame.image else image
            regions = self.regions.active(ctx.frame.index) if self.regions is not None else []
            self._restore_kept(ctx, decisions, image, regions)
            for region in regions:
                self._cover(image, region)
                self._region_frames[region.id] = self._region_frames.get(region.id, 0) + 1
            self._record(ctx, decisions, regions)
            out.append(image)
        return out

    def decide(self, ctx: FrameContext) -> list[Decision]:
        """One decision per box of ``ctx.faces`` (see the module docstring)."""
        faces = ctx.faces if ctx.faces is not None else Faces.empty()
        index = ctx.frame.index
        verdicts = ctx.extras.get(VERDICTS, {})
        reviewed = ctx.extras.get(REVIEWED)
        later = ctx.extras.get(MATCHED_LATER, set())

        def verdict(i: int):  # noqa: ANN202 - a FaceVerdict or None
            found = verdicts.get(i)
            # The verdict is the one computed on this very box (boxes added later never take one over).
            if found is None or found.box != tuple(float(v) for v in faces.xyxy[i]) or faces.held[i]:
                return None
            return found

        matches: dict[int, int] = {}
        for i in range(len(faces)):
            v = verdict(i)
            if v is not None and v.verdict == "match":
                matches[_person(v)] = matches.get(_person(v), 0) + 1
                if self.mode == "only" and faces.track_ids[i] >= 0:
                    self._matched.add(int(faces.track_ids[i]))
        decisions = []
        for i in range(len(faces)):
            track, state = int(faces.track_ids[i]), face_state(faces, i)
            override = self.regions.override(track, index) if self.regions is not None else None
            v = verdict(i)
            if override == "removed":
                decision = Decision(False, "reviewer removed the track")
            elif state != "detected":
                decision = Decision(False, state)
            elif override == "kept":
                decision = Decision(True, "reviewer kept the track")
            elif self.mode == "keep":
                if v is None:
                    decision = Decision(False, "not judged")
                elif v.verdict == "match" and matches.get(_person(v), 0) == 1:
                    decision = Decision(True, f"match {v.distance:.3f}")
                elif v.verdict == "match":
                    decision = Decision(False, "several faces match one person")
                else:
                    decision = Decision(False, _why(v))
            elif self.mode == "only":
                if v is None:
                    decision = Decision(False, "not judged")
                elif v.verdict == "nonmatch" and track not in self._matched and track not in later:
                    decision = Decision(True, f"no match {v.distance:.3f}")
                elif v.verdict == "nonmatch":
                    decision = Decision(False, "its track matches elsewhere")
                else:
                    decision = Decision(False, _why(v))
            elif reviewed is not None and i < len(reviewed):
                decision = Decision(bool(reviewed[i]), "reviewed file")
            else:
                decision = Decision(False, "anonymized")
            decisions.append(decision)
        return decisions

    # -- pixels ----------------------------------------------------------------------------------------

    def _restore_kept(self, ctx: FrameContext, decisions: list[Decision], image: np.ndarray,
                      regions: list[Region]) -> None:
        """The kept faces' original pixels, where no removed face nor region reaches."""
        faces = ctx.faces
        kept = [i for i, d in enumerate(decisions) if d.kept]
        if not kept or faces is None:
            return
        h, w = image.shape[:2]
        mask = np.zeros((h, w), bool)
        for x1, y1, x2, y2 in scale_boxes(faces.xyxy[kept], self.mask_scale, w, h):
            mask[y1:y2, x1:x2] = True
        removed = [i for i, d in enumerate(decisions) if not d.kept]
        for x1, y1, x2, y2 in scale_boxes(faces.xyxy[removed], self.mask_scale, w, h):
            mask[y1:y2, x1:x2] = False
        for region in regions:
            x1, y1, x2, y2 = scale_boxes(np.float32([region.bounds()]), 1.0, w, h)[0]
            mask[y1:y2, x1:x2] = False
        image[mask] = ctx.frame.image[mask]

    def _cover(self, image: np.ndarray, region: Region) -> None:
        h, w = image.shape[:2]
        if region.polygon is not None:
            points = np.round(np.asarray(region.polygon, np.float64)).astype(np.int32)
            cv2.fillPoly(image, [points], (0, 0, 0))
            return
        box = np.float32([region.box])
        if region.cover == "solid" or self.region_method == "solid":
            x1, y1, x2, y2 = scale_boxes(box, 1.0, w, h)[0]
            image[y1:y2, x1:x2] = 0
        else:
            self._region_cover.obfuscate(image, box)

    # -- records -----------------------------------------------------------------------------------------

    def _record(self, ctx: FrameContext, decisions: list[Decision], regions: list[Region]) -> None:
        faces = ctx.faces if ctx.faces is not None else Faces.empty()
        index = ctx.frame.index
        entries = []
        for i, decision in enumerate(decisions):
            name = "kept" if decision.kept else "removed"
            track = int(faces.track_ids[i])
            if decision.kept:
                self.faces_kept += 1
            else:
                self.faces_removed += 1
            if track >= 0:
                _extend(self._ranges.setdefault(str(track), {}).setdefault(name, []), index)
            else:
                self._untracked[name] += 1
            if self.writer is None:
                continue
            state = face_state(faces, i)
            entry = {"box": [round(float(v), 2) for v in faces.xyxy[i]], "track": track, "state": state,
                     "decision": name, "why": decision.why, "method": "none" if decision.kept else self.inner.name}
            if state == "detected" and np.isfinite(faces.landmarks[i]).all():
                entry["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in faces.landmarks[i]]
            entries.append(entry)
        if self.writer is not None:
            record = {"frame": index, "pts": ctx.frame.pts, "faces": entries}
            if regions:
                record["regions"] = [r.id for r in regions]
            self.writer.write(record)


def _shape_of(anonymizer: Anonymizer) -> str | None:
    """The mask shape of ``anonymizer`` or of the anonymizer it wraps (verified), ``None`` where it has none."""
    for _ in range(4):
        if anonymizer is None:
            return None
        shape = getattr(anonymizer, "shape", None)
        if isinstance(shape, str):
            return shape
        anonymizer = getattr(anonymizer, "inner", None)
    return None


def _person(verdict) -> int:  # noqa: ANN001 - a FaceVerdict
    return verdict.person if verdict.person >= 0 else verdict.reference


def _why(verdict) -> str:  # noqa: ANN001 - a FaceVerdict
    if verdict.reason:
        return f"uncertain: {verdict.reason}" + (f" {verdict.distance:.3f}" if verdict.distance is not None else "")
    return f"{verdict.verdict} {verdict.distance:.3f}"


def _extend(ranges: list[list[int]], frame: int) -> None:
    """Add ``frame`` to inclusive ``[first, last]`` ranges kept in order."""
    if ranges and ranges[-1][0] <= frame <= ranges[-1][1] + 1:
        ranges[-1][1] = max(ranges[-1][1], frame)
    else:
        ranges.append([frame, frame])
