"""Identity-verified anonymization: FALCO's identity margin (arXiv 2303.11296) applied while the run goes on.

Any anonymizer can fail on a face: a generated face that came out too close to its original, an obfuscation
that a recognizer still sees through on a dim or small face. :class:`VerifiedAnonymizer` checks what the
anonymizer wrote before the frame goes to the sinks. Each checked face is embedded by a face recognizer in the
original, in the anonymized frame and in a *null* version (the anonymized frame with that face filled black,
what solid obfuscation leaves), and the calibrated rule of ``evaluate`` decides: the face is re-identified when
it matches its original (distance below the recognizer's threshold) and recovers at least ``margin`` of the way
from its null towards the original. A face that does not clear the margin is escalated, in the same frame and
for the rest of its track, up a ladder of stronger obfuscations that ends with solid fill, which clears by
construction. A face the recognizer cannot judge (too small for it, or the recognizer failed) counts as not
cleared: fail closed.

Checks are bounded per track: on its first appearance, when it has grown by ``growth`` since its last check,
and every ``every`` frames; between checks a track keeps the level it reached. A file's frame waits for its
checks. A live frame does not (``wait_for_checks`` off): a check took 0.1-0.2 s with dlib's own code on a CPU
(about 10 ms a face now that its network runs on onnxruntime, more in a crowd or on a loaded machine), and
waiting for it held every picture behind it. The check runs on a thread of its own and, until it answers,
the face gets the ladder's next step (for blur: solid), which is never weaker than what is being checked;
the answer sets the track's level from the next frame on (or escalates it and checks again). Only detected
faces are checked: a box the tracker holds over a missed detection, or one carried back before a face's first detection,
takes the level of its track (on a box that holds no face a recognizer "matches" background at random).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camouflage_video.errors import ConfigError
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.geometry import box_iou, scale_boxes
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import ClassicObfuscator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyOptions:
    """How often faces are checked, and the margin they must clear.

    Attributes:
        margin: Highest share of the way from its null towards the original identity (``recovery``) a face
            that matches its original may keep. ``evaluate`` reports a leak at 0.5; the margin sits below it.
        every: Frames between two checks of the same track.
        growth: A track is checked again once its face is this many times taller than at its last check.

    Examples:
        >>> VerifyOptions(margin=0.25, every=50).growth
        1.25
    """

    margin: float = 0.25
    every: int = 50
    growth: float = 1.25

    def __post_init__(self) -> None:
        ConfigError.check([
            (0 < self.margin <= 1, f"verify margin must be within (0, 1], got {self.margin}"),
            (self.every >= 1, f"verify every must be >= 1 frame, got {self.every}"),
            (self.growth > 1, f"verify growth must be > 1, got {self.growth}"),
        ])


@dataclass
class _Track:
    level: int
    checked_at: int
    height: float
    pending: Future | None = None  # a check of ``level`` not answered yet (live)
    unchecked: bool = False  # escalated by a live check, its new level not checked yet


@dataclass
class _Loose:
    box: np.ndarray
    track: _Track
    seen: int


@dataclass
class VerifyCounts:
    """What verification did in a run (``--stats``: ``model.verify``)."""

    checks: int = 0
    cleared: int = 0
    escalations: int = 0
    too_small: int = 0
    errors: int = 0
    held_unchecked: int = 0
    covered_pending: int = 0  # faces given the next step while their check ran (live)
    faces_by_level: dict[str, int] = field(default_factory=dict)
    tracks_escalated: set[int] = field(default_factory=set)


class VerifiedAnonymizer(Anonymizer):
    """Wrap an anonymizer so that no face leaves it without clearing the identity margin.

    Args:
        inner: The anonymizer whose output is checked.
        recognizer: The attacker's recognizer (``camouflage_video.evaluation.recognizers``): ``embed_versions``,
            ``rowwise_distance``, ``recovery``, ``threshold`` and ``min_face_size``.
        ladder: Stronger obfuscations, weakest first, applied to a face that does not clear; the last must
            be solid fill (the only one that clears by construction).
        mask_scale: Growth of the face box that the null version fills (the anonymizer's ``mask_scale``).
        options: Margin and check schedule.

    Examples:
        >>> from camouflage_video.evaluation.recognizers import DlibRecognizer  # doctest: +SKIP
        >>> verified = VerifiedAnonymizer(ClassicObfuscator("blur"), DlibRecognizer(),
        ...                               [ClassicObfuscator("solid")])  # doctest: +SKIP
    """

    def __init__(
        self,
        inner: Anonymizer,
        recognizer: Any,
        ladder: Sequence[ClassicObfuscator],
        *,
        mask_scale: float = 1.3,
        options: VerifyOptions | None = None,
    ) -> None:
        if not ladder or ladder[-1].method != "solid":
            raise ConfigError("the escalation ladder of verification must end with solid fill")
        self.inner, self.recognizer, self.ladder = inner, recognizer, list(ladder)
        self.options = options or VerifyOptions()
        self.name = inner.name
        self.batch_size = inner.batch_size
        self._null = ClassicObfuscator("solid", mask_scale=mask_scale, shape="box")
        self._tracks: dict[int, _Track] = {}
        self._loose: list[_Loose] = []
        self.counts = VerifyCounts()
        #: Whether a frame waits for its checks (files); live runs set it off (see the module's docstring).
        self.wait_for_checks = True
        self._checker: ThreadPoolExecutor | None = None

    # -- the anonymizer interface --------------------------------------------------------------------

    def annotators(self) -> list:
        return self.inner.annotators()

    def __call__(self, ctx: FrameContext) -> np.ndarray:
        return self.verify(ctx, self.inner(ctx))

    def process_batch(self, ctxs: list[FrameContext]) -> list[np.ndarray]:
        images = self.inner.process_batch(ctxs)
        return [self.verify(ctx, image) for ctx, image in zip(ctxs, images, strict=True)]

    def reset(self) -> None:
        self.inner.reset()
        self._stop_checks()  # a check still running answers into nothing: its track is gone
        self._tracks.clear()
        self._loose.clear()
        self.counts = VerifyCounts()

    def stats(self) -> dict:
        counts = self.counts
        verify = {
            "recognizer": getattr(self.recognizer, "name", type(self.recognizer).__name__),
            **recognizer_network(self.recognizer),
            "margin": self.options.margin,
            "every": self.options.every,
            "checks": counts.checks,
            "cleared": counts.cleared,
            "escalations": counts.escalations,
            "too_small": counts.too_small,
            "errors": counts.errors,
            "held_unchecked": counts.held_unchecked,
            "covered_pending": counts.covered_pending,
            "tracks_escalated": len(counts.tracks_escalated),
            "faces_by_level": dict(sorted(counts.faces_by_level.items())),
        }
        return {**self.inner.stats(), "verify": verify}

    # -- verification --------------------------------------------------------------------------------

    def verify(self, ctx: FrameContext, image: np.ndarray) -> np.ndarray:
        """Check the faces of one anonymized frame; escalate, in ``image``, those that do not clear."""
        faces = ctx.faces
        if faces is None or len(faces) == 0:
            return image
        original, index = ctx.frame.image, ctx.frame.index
        self._loose = [entry for entry in self._loose if index - entry.seen <= _LOOSE_FRAMES]
        for i in range(len(faces)):
            box = faces.xyxy[i : i + 1]
            track_id = int(faces.track_ids[i])
            height = float(box[0, 3] - box[0, 1])
            track = self._tracks.get(track_id) if track_id >= 0 else None
            loose = None
            if track is None:
                # Faces without a confirmed track (a tracker confirms a face a frame or two after it appears;
                # a faint face may never be) are followed by overlap, so each is not checked every frame.
                loose = self._follow(box[0], index)
                track = loose.track if loose is not None else None
            if track is not None and track.pending is not None and track.pending.done():
                self._answered(track, track_id)
            level = track.level if track is not None else 0
            if level:
                self.ladder[level - 1].obfuscate(image, box)
            # Only detected faces are checked. A box the tracker predicted or Backfill carried back marks where a
            # face may be; on a box that holds none, the recognizer compares two patches of background and
            # "matches" them at random (seen on real footage: solid blobs beside faces). It takes its track's level.
            detected = not bool(faces.held[i])
            due = detected and (
                track is None
                or index - track.checked_at >= self.options.every
                or height >= track.height * self.options.growth
            )
            if not detected and track is None:
                self.counts.held_unchecked += 1
            pending = None
            if track is not None and track.pending is not None:
                due = False  # its check is still running
            elif due and level < len(self.ladder) and not self.wait_for_checks:
                pending = self._submit(original, image, faces, i)  # the new _Track is not "unchecked"
            elif due and level < len(self.ladder):
                while not self._clears(original, image, faces, i):
                    level += 1
                    self.counts.escalations += 1
                    if track_id >= 0:
                        self.counts.tracks_escalated.add(track_id)
                    self.ladder[level - 1].obfuscate(image, box)
                    if level == len(self.ladder):
                        break  # solid: nothing of the face is left to check
            if due:
                track = _Track(level, index, height, pending)
            if track is not None:
                if track_id >= 0:
                    self._tracks[track_id] = track
                elif loose is not None:
                    loose.track = track
                else:
                    self._loose.append(_Loose(box[0].copy(), track, index))
                if track.pending is not None or track.unchecked:  # until a check answers: the next step
                    level = min(track.level + 1, len(self.ladder))
                    self.ladder[level - 1].obfuscate(image, box)
                    self.counts.covered_pending += 1
            name = self.ladder[level - 1].method if level else self.inner.name
            self.counts.faces_by_level[name] = self.counts.faces_by_level.get(name, 0) + 1
        return image

    def _submit(self, original: np.ndarray, anonymized: np.ndarray, faces: Faces, i: int) -> Future:
        """Check face ``i`` as it is now, on the checker's thread (copies: the frame goes on changing)."""
        if self._checker is None:
            self._checker = ThreadPoolExecutor(1, thread_name_prefix="camouflage-verify")
        window = self._window(original.shape, faces.xyxy[i])
        if window is None:
            failed: Future = Future()
            failed.set_result(False)
            return failed
        crops, local = window
        return self._checker.submit(self._judge, original[crops].copy(), anonymized[crops].copy(), local)

    def finish(self, **kwargs: Any) -> None:
        """The run ended: drop the checks not started (live), then the inner anonymizer's own ``finish``."""
        self._stop_checks()
        inner = getattr(self.inner, "finish", None)
        if inner is not None:
            inner(**kwargs)

    def _stop_checks(self) -> None:
        if self._checker is not None:
            self._checker.shutdown(wait=False, cancel_futures=True)
            self._checker = None

    def _answered(self, track: _Track, track_id: int) -> None:
        """A live check answered: the track keeps the level checked, or goes one step up and is checked again."""
        pending, track.pending = track.pending, None
        try:
            cleared = bool(pending.result())
        except Exception:  # noqa: BLE001 - _judge catches the recognizer's failures; anything else: not cleared
            logger.warning("verification of a face failed; obfuscating it more strongly", exc_info=True)
            cleared = False
        track.unchecked = False
        if not cleared:
            track.level += 1
            self.counts.escalations += 1
            if track_id >= 0:
                self.counts.tracks_escalated.add(track_id)
            if track.level < len(self.ladder):
                track.checked_at = -self.options.every  # due again at its next detected frame
                track.unchecked = True  # and covered one step higher until that check answers

    def _follow(self, box: np.ndarray, index: int) -> _Loose | None:
        """The untracked face of the last few frames that ``box`` continues (moved to ``box``), if any."""
        best, best_iou = None, _LOOSE_IOU
        for entry in self._loose:
            iou = box_iou(entry.box, box)
            if entry.seen < index and iou >= best_iou:
                best, best_iou = entry, iou
        if best is not None:
            best.box, best.seen = box.copy(), index
        return best

    def _clears(self, original: np.ndarray, anonymized: np.ndarray, faces: Faces, i: int) -> bool:
        """Whether face ``i`` as ``anonymized`` shows it clears the margin; False where it cannot be told."""
        window = self._window(original.shape, faces.xyxy[i])
        if window is None:
            return False
        crops, local = window
        return self._judge(original[crops], anonymized[crops], local)

    def _window(self, shape: tuple[int, ...], box: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """:func:`_window`, or None (counted as an error: not verified) for a box that is no box (NaN)."""
        try:
            return _window(shape, box)
        except (ValueError, OverflowError) as exc:
            self.counts.errors += 1
            logger.warning("verification of a face failed (%s); obfuscating it more strongly", exc)
            return None

    def _judge(self, before: np.ndarray, after: np.ndarray, local: np.ndarray) -> bool:
        """``_clears`` on the window around one face (``local``: its box there); never raises."""
        x1, y1, x2, y2 = (float(v) for v in local[0])
        if y2 - y1 < self.recognizer.min_face_size:
            self.counts.too_small += 1
            return False
        self.counts.checks += 1
        try:
            one = Faces.from_boxes(local)
            embedded = self.recognizer.embed_versions(before, [after], one)
            distance = float(self.recognizer.rowwise_distance(embedded[0], embedded[1])[0])
            recovery = 0.0
            if distance < self.recognizer.threshold:  # it matches: does the face itself, or only its context?
                null = after.copy()
                self._null.obfuscate(null, local)
                null_embedded = self.recognizer.embed_versions(before, [null], one)[1]
                recovery = float(self.recognizer.recovery(embedded[0], embedded[1], null_embedded)[0])
        except Exception as exc:  # noqa: BLE001 - a recognizer failure is a face that was not verified
            self.counts.errors += 1
            logger.warning("verification of a face failed (%s: %s); obfuscating it more strongly",
                           type(exc).__name__, exc)
            return False
        cleared = not (distance < self.recognizer.threshold and recovery >= self.options.margin)
        self.counts.cleared += cleared
        return cleared


_LOOSE_FRAMES = 3  # frames an untracked face may go unseen and still be followed
_LOOSE_IOU = 0.3


def _window(shape: tuple[int, ...], box: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """The part of the frame the recognizer needs around one face (twice the box), and the box inside it.

    Embedding crops rather than whole frames keeps a check's cost independent of the frame size (4K frames
    are 25 MB each).
    """
    h, w = shape[:2]
    x1, y1, x2, y2 = scale_boxes(np.asarray(box, np.float32)[None], 2.0, w, h)[0]
    local = np.asarray(box, np.float32)[None] - np.float32([x1, y1, x1, y1])
    return (slice(int(y1), int(y2)), slice(int(x1), int(x2))), local


def recognizer_network(recognizer: Any) -> dict:
    """``{"network": ...}`` where the recognizer says which network embeds (a fallback shows in the stats)."""
    describe = getattr(recognizer, "describe", None)
    network = describe().get("network") if describe is not None else None
    return {} if network is None else {"network": network}
