"""The evaluation run: stream paired frames, find and pair faces, embed them, and add up every measure.

One pass over the inputs; memory holds the current and previous pair of frames, one small record per
analysed face (its distances, not its pixels), the embeddings for the gallery search, and a bounded number
of thumbnails for the report.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video.annotators.faces import CenterFaceDetector
from camouflage_video.annotators.tracking import FaceTracker
from camouflage_video.errors import InputError, InputNotFoundError
from camouflage_video.evaluation.attack import Candidates, Labels, attack_summary, tool_anonymizer
from camouflage_video.evaluation.attributes import AttributeAgreement, AttributeModel
from camouflage_video.evaluation.metrics import (
    face_boxes_mask,
    identity_ranks,
    masked_psnr,
    masked_ssim,
    outside_faces_mask,
)
from camouflage_video.evaluation.pairing import FramePair, PairedInputs, match_faces
from camouflage_video.evaluation.recognizers import Recognizer, load_recognizer
from camouflage_video.evaluation.records import (
    EvaluationConfig,
    EvaluationResult,
    FaceCase,
    FaceRecord,
    _CaseKeeper,
    thumbnail,
)
from camouflage_video.evaluation.temporal import FlowWarpingError, WarpSample
from camouflage_video.frame import Faces, FrameContext
from camouflage_video.geometry import pairwise_iou
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.sources.base import SourceInfo
from camouflage_video.sources.images import list_images, read_image
from camouflage_video.sources.sniff import pictures_beside_the_video

logger = logging.getLogger(__name__)


class Evaluator:
    """Compare an original with its anonymized version. Build once, then :meth:`run` on a pair of inputs.

    Args:
        config: Options.
        recognizer: A ready recognizer (default: built from ``config``).
        attribute_model: A ready attribute model (default: facer's when ``config.attribute_model`` is set).

    Examples:
        >>> evaluator = Evaluator(EvaluationConfig(step=5))  # doctest: +SKIP
        >>> result = evaluator.run("clip.mp4", "clip_anonymized.mp4")  # doctest: +SKIP
        >>> result.summary()["reidentification_rate"]  # doctest: +SKIP
        0.0
    """

    def __init__(
        self,
        config: EvaluationConfig | None = None,
        *,
        recognizer: Recognizer | None = None,
        attribute_model: AttributeModel | None = None,
    ) -> None:
        self.config = config = config or EvaluationConfig()
        # The measuring instrument stays the float model whatever the runtime (INT8 finds a face more or less).
        self.detector = CenterFaceDetector(thresh=config.thresh, det_size=config.det_size, nms=config.nms,
                                           precision="fp32")
        self.recognizer = recognizer or load_recognizer(config.recognizer, config.recognizer_model, config.threshold)
        if attribute_model is None and config.attribute_model:
            from camouflage_video.evaluation.attributes import FacerAttributeModel

            attribute_model = FacerAttributeModel(config.attribute_model)
        self.attribute_model = attribute_model
        self.warping = FlowWarpingError(config.analysis_size)
        self._gallery: tuple[np.ndarray, int, list[str]] | None = None
        self._candidates: Candidates | None = None

    def run(
        self,
        original: str | os.PathLike[str],
        anonymized: str | os.PathLike[str],
        *,
        progress: bool | None = False,
    ) -> EvaluationResult:
        """Evaluate one pair of inputs.

        On Ctrl-C the result covers what was analysed and has ``interrupted`` set; it is returned, and
        the caller decides whether to re-raise (the ``evaluate`` function does, after writing reports).

        Raises:
            InputError, ConfigError: Inputs that cannot be paired.
        """
        with PairedInputs(original, anonymized, self.config.pair_by) as pairs:
            self.gallery_distractors()  # a bad gallery fails now, not after the whole input
            self.attack_candidates()
            run = _Run(self, pairs, _probe_labels(self.config, original))
            run.original_name = Path(original).name
            try:
                run.consume(progress)
            except KeyboardInterrupt:
                run.interrupted = True
            return run.finish()

    def gallery_distractors(self) -> tuple[np.ndarray, int, list[str]]:
        """Embeddings of the largest face in each image of ``config.gallery`` (one identity each), cached."""
        if self._gallery is None:
            self._gallery = self._load_gallery()
        return self._gallery

    def attack_candidates(self) -> Candidates | None:
        """The tool-aware attacker's candidates (``config.attack_gallery``), anonymized and embedded once."""
        config = self.config
        if config.attack_gallery and self._candidates is None:
            scale = config.null_scale if config.attack_mask_scale is None else config.attack_mask_scale
            self._candidates = Candidates.build(
                config.attack_gallery,
                self.recognizer,
                self.detector,
                None if config.attack_anonymized else tool_anonymizer(config.attack_method, mask_scale=scale),
                anonymized_folder=config.attack_anonymized,
                null_scale=config.null_scale,
                identities_csv=config.attack_identities,
            )
        return self._candidates

    def _load_gallery(self) -> tuple[np.ndarray, int, list[str]]:
        folder = self.config.gallery
        if not folder:
            return np.zeros((0, 0), np.float32), 0, []
        root = Path(folder)
        if not root.is_dir():
            raise InputNotFoundError(f"{root}: gallery folder not found")
        embeddings, used = [], []
        for path in list_images(root):
            image = read_image(path)
            if image is None:
                continue
            faces = self.detector.detect(image)
            if not len(faces):
                continue
            areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
            largest = faces[int(np.argmax(areas))]
            embeddings.append(self.recognizer.embed(image, self.recognizer.prepare(image, largest))[0])
            used.append(path.relative_to(root).as_posix())
        if not embeddings:
            raise InputError(f"{root}: no face found in any gallery image")
        return np.stack(embeddings), len(embeddings), used


class _Run:
    """State of one evaluation pass (kept apart from the reusable :class:`Evaluator`)."""

    def __init__(self, evaluator: Evaluator, pairs: PairedInputs, labels: Labels | None = None) -> None:
        config = evaluator.config
        self.evaluator, self.pairs, self.config = evaluator, pairs, config
        self.recognizer = recognizer = evaluator.recognizer
        self.is_video = pairs.kind == "video"
        self.calibration = {
            "leak_rule": config.leak_rule,
            "null_scale": config.null_scale if config.leak_rule == "null" else None,
            "min_recovery": config.min_recovery if config.leak_rule == "null" else None,
            "min_face_size": recognizer.min_face_size if config.min_face_size is None else config.min_face_size,
        }
        # The null version: the anonymized frame with every face region filled black, as a solid anonymizer
        # with the same mask would leave it. It holds no facial information, only the context around it.
        self.null_fill = (
            ClassicObfuscator("solid", mask_scale=config.null_scale)
            if config.leak_rule == "null" or config.attack_gallery
            else None
        )
        # The tool-aware attack's probes: the largest face of each labelled image or frame.
        self.labels = labels
        self.probes: list[tuple[str, str | None, np.ndarray, np.ndarray, np.ndarray]] = []
        self.original_name: str | None = None  # the key of a video's frames (or of a single image)
        self.step = config.step if self.is_video else 1
        self.tracker = None
        if self.is_video:
            rate = (pairs.original_info.fps or 25) / self.step  # the tracker sees the analysed frames only
            # Tracks only give identities here. A track survives about a second without its face, so a
            # brief miss does not split one person in two; the boxes it holds meanwhile are not faces
            # to measure and are dropped.
            self.tracker = FaceTracker(fps=rate, hold_frames=max(1, round(float(rate))), min_hits=1)
        self.faces: list[FaceRecord] = []
        self.warp_samples: list[WarpSample] = []
        self.embeddings_original: list[np.ndarray] = []
        self.embeddings_anonymized: list[np.ndarray] = []
        self.last_embedding: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.extra_faces = 0
        self.extra_face_frames = 0  # analysed frames with at least one
        self.turned: dict[str, int] = {}  # pairs whose anonymized picture was the original's turned, by how
        self.displaced: list[int] = []  # frames where a face elsewhere in the anonymized one matches an original
        self.analysed = 0
        self.next_identity = 0
        self.interrupted = False
        self.leak_cases = _CaseKeeper(config.max_thumbnails, per_identity=True)
        self.worst = _CaseKeeper(config.worst_cases, per_identity=False)
        self.attributes = (
            AttributeAgreement(evaluator.attribute_model.labels) if evaluator.attribute_model is not None else None
        )
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.known_tracks: set[int] = set()
        self.pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    def consume(self, progress: bool | None) -> None:
        from tqdm import tqdm

        bar = tqdm(
            total=self.pairs.total,
            unit="frame",
            disable=None if progress is None else not progress,
            dynamic_ncols=True,
            desc="evaluate",
        )
        try:
            for pair in self.pairs:
                self.add(pair)
                bar.update(1)
        finally:
            bar.close()

    def add(self, pair: FramePair) -> None:
        pair = self._aligned(pair)
        warp = self.evaluator.warping
        small_original = warp.prepare(pair.original.image)
        small_anonymized = warp.prepare(pair.anonymized.image)
        previous = self._previous if pair.consecutive else None
        self._previous = (small_original, small_anonymized) if self.is_video else None
        if pair.index % self.step:
            return
        self.analysed += 1
        faces = self._original_faces(pair)
        self._faces(pair, faces)
        self._fidelity(pair, faces, small_original, small_anonymized)
        if previous is not None:
            h, w = small_original.shape[:2]
            sx, sy = w / pair.original.image.shape[1], h / pair.original.image.shape[0]
            boxes = faces.xyxy * np.array([sx, sy, sx, sy], np.float32)
            mask = face_boxes_mask(h, w, boxes) if len(faces) else None
            self.warp_samples.append(
                warp.measure(
                    previous[0],
                    small_original,
                    previous[1],
                    small_anonymized,
                    frame=pair.original.index,
                    face_mask=mask,
                )
            )

    def _original_faces(self, pair: FramePair) -> Faces:
        faces = self.evaluator.detector.detect(pair.original.image)
        if self.tracker is not None:
            ctx = FrameContext(pair.original, faces=faces)
            self.tracker.annotate(ctx)
            faces = ctx.faces[~ctx.faces.held]
        return faces

    def _aligned(self, pair: FramePair) -> FramePair:
        """The pair with its anonymized picture turned back where it is plainly the original's picture turned
        or mirrored (an output that lost its rotation, a flipped camera): judged at the original's face boxes
        as it is, its faces would be looked for where they are not. Counted in ``turned_frames``."""
        original, anonymized = _thumbnail(pair.original.image), _thumbnail(pair.anonymized.image)
        if original is None or anonymized is None:
            return pair
        direct = float((original * anonymized).mean())
        square = pair.original.image.shape[0] == pair.original.image.shape[1]
        for name, turn in _TURNS:
            if name.startswith("turned a quarter") and not square:
                continue
            if float((original * turn(anonymized)).mean()) > max(0.8, direct + 0.3):
                self.turned[name] = self.turned.get(name, 0) + 1
                image = np.ascontiguousarray(turn(pair.anonymized.image))
                return replace(pair, anonymized=replace(pair.anonymized, image=image))
        return pair

    def _displaced(self, pair: FramePair, anonymized: np.ndarray, extra: Faces, emb_o: np.ndarray) -> None:
        """Note the frame if a face of the anonymized frame that is at none of the original's faces (a face
        moved, mirrored, or that the anonymizer missed where this detector missed it in the original) is one of
        the original's people. Faces under the recognizer's reliable size are not judged: they match at random."""
        heights = extra.xyxy[:, 3] - extra.xyxy[:, 1]
        extra = extra[heights >= self.calibration["min_face_size"]]
        if not len(extra):
            return
        recognizer = self.recognizer
        embedded = recognizer.embed(anonymized, recognizer.prepare(anonymized, extra))
        if float(recognizer.distance(emb_o, embedded).min()) < recognizer.threshold:
            self.displaced.append(pair.index if not self.is_video else pair.original.index)

    def _identity(self, track_id: int) -> int:
        if self.is_video and track_id >= 0:
            return int(track_id)
        # Faces without a track (and every face of an image) are their own identity; negative numbers
        # keep them apart from track ids.
        self.next_identity -= 1
        return self.next_identity

    def _faces(self, pair: FramePair, faces: Faces) -> None:
        config, recognizer = self.config, self.recognizer
        detected = self.evaluator.detector.detect(pair.anonymized.image)
        detected_at = match_faces(faces, detected, config.match_iou)
        extra = np.ones(len(detected), bool)
        extra[detected_at[detected_at >= 0]] = False
        self.extra_faces += int(extra.sum())
        self.extra_face_frames += bool(extra.any())
        if not len(faces):
            return
        original, anonymized = pair.original.image, pair.anonymized.image
        versions = [anonymized]
        if self.null_fill is not None:
            null = anonymized.copy()
            self.null_fill.obfuscate(null, faces.xyxy)
            versions.append(null)
        emb_o, emb_a, *emb_n = recognizer.embed_versions(original, versions, faces)
        self._displaced(pair, anonymized, detected[extra], emb_o)
        distances = recognizer.rowwise_distance(emb_o, emb_a)
        calibrated = config.leak_rule == "null"
        nulls = recognizer.rowwise_distance(emb_o, emb_n[0]) if calibrated else None
        recoveries = recognizer.recovery(emb_o, emb_a, emb_n[0]) if calibrated else None
        if self.labels is not None:
            key = pair.key if pair.key in self.labels.identity else self.original_name
            if key in self.labels.identity:
                areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
                i = int(np.argmax(areas))
                self.probes.append(
                    (self.labels.identity[key], self.labels.source.get(key), emb_o[i], emb_a[i], emb_n[0][i])
                )
        min_size = self.calibration["min_face_size"]
        if self.attributes is not None:
            model = self.evaluator.attribute_model
            self.attributes.add(model.predict(original, faces), model.predict(anonymized, faces))
        pending, self.pending = self.pending, []
        for i in range(len(faces)):
            track_id = int(faces.track_ids[i])
            identity = self._identity(track_id)
            if self.is_video and identity >= 0 and identity not in self.known_tracks:
                self.known_tracks.add(identity)
                self._adopt(identity, faces.xyxy[i], pending)
            step_o = step_a = None
            if identity in self.last_embedding:
                last_o, last_a = self.last_embedding[identity]
                step_o, step_a = recognizer.rowwise_distance(np.stack([last_o, last_a]), np.stack([emb_o[i], emb_a[i]]))
            if self.is_video and identity >= 0:
                self.last_embedding[identity] = (emb_o[i], emb_a[i])
            distance = float(distances[i])
            match = distance < recognizer.threshold
            null_distance = None if nulls is None else float(nulls[i])
            recovery = None if recoveries is None else float(recoveries[i])
            # Under the null rule a match leaks only if the face region itself carries the anonymized face
            # a good part of the way from no face at all to the original: context alone is no face leak.
            leak = match if recovery is None else match and recovery >= config.min_recovery
            record = FaceRecord(
                frame=pair.index if not self.is_video else pair.original.index,
                time=pair.time,
                key=pair.key,
                identity=identity,
                box=tuple(float(v) for v in faces.xyxy[i]),  # type: ignore[arg-type]
                score=float(faces.scores[i]),
                distance=distance,
                leak=leak,
                detected=bool(detected_at[i] >= 0),
                match=match,
                null_distance=null_distance,
                recovery=recovery,
                small=float(faces.xyxy[i, 3] - faces.xyxy[i, 1]) < min_size,
                step_original=None if step_o is None else float(step_o),
                step_anonymized=None if step_a is None else float(step_a),
            )
            if self.is_video and track_id < 0:
                self.pending.append((len(self.faces), faces.xyxy[i], emb_o[i], emb_a[i]))
            self.faces.append(record)
            self.embeddings_original.append(emb_o[i])
            self.embeddings_anonymized.append(emb_a[i])
            for keeper in ((self.leak_cases,) if record.leak else ()) + (self.worst,):
                if keeper.wants(record):
                    keeper.add(self._case(record, original, anonymized))

    def _adopt(self, identity: int, box: np.ndarray, pending: list) -> None:
        """Give a new track the unconfirmed face it grew from, at the previous analysed frame.

        ByteTrack returns a new face without an id on its first frame and allocates the id on the next
        match; without this, every track would leave a one-face identity behind in the gallery.
        """
        if not pending:
            return
        overlaps = pairwise_iou(np.array([p[1] for p in pending]), box[None])[:, 0]
        best = int(np.argmax(overlaps))
        if overlaps[best] < 0.1:
            return
        position, _, emb_o, emb_a = pending.pop(best)
        old = self.faces[position]
        self.faces[position] = replace(old, identity=identity)
        self.last_embedding[identity] = (emb_o, emb_a)

    def _case(self, record: FaceRecord, original: np.ndarray, anonymized: np.ndarray) -> FaceCase:
        if not self.config.thumbnails:
            return FaceCase(record)
        return FaceCase(record, thumbnail(original, record.box), thumbnail(anonymized, record.box))

    def _fidelity(
        self, pair: FramePair, faces: Faces, small_original: np.ndarray, small_anonymized: np.ndarray
    ) -> None:
        original, anonymized = pair.original.image, pair.anonymized.image
        h, w = original.shape[:2]
        mask = outside_faces_mask(h, w, faces.xyxy, self.config.mask_scale)
        psnr = masked_psnr(original, anonymized, mask)
        if psnr is None:
            return
        self.psnr.append(psnr)
        sh, sw = small_original.shape[:2]
        small_mask = cv2.resize(mask.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
        ssim = masked_ssim(small_original, small_anonymized, small_mask)
        if ssim is not None:
            self.ssim.append(ssim)

    def finish(self) -> EvaluationResult:
        config, pairs = self.config, self.pairs
        faces = self.faces
        gallery_info: dict[str, Any] = {"distractors": 0}
        if faces:
            distractors, count, names = self.evaluator.gallery_distractors()
            queries = np.stack(self.embeddings_anonymized)
            originals = np.stack(self.embeddings_original)
            ids = np.array([f.identity for f in faces], np.int64)
            gallery, gallery_ids = originals, ids
            if count:
                distractor_ids = np.arange(count, dtype=np.int64) + (ids.max() + 1)
                gallery = np.concatenate([originals, distractors])
                gallery_ids = np.concatenate([ids, distractor_ids])
                gallery_info = {"distractors": count, "folder": config.gallery, "images": names[:200]}
            ranks = identity_ranks(self.recognizer, queries, ids, gallery, gallery_ids)
            faces = [replace(f, rank=int(r)) for f, r in zip(faces, ranks, strict=True)]
        final = {(f.frame, f.box): f for f in faces}

        def current(cases: list[FaceCase]) -> list[FaceCase]:
            # The kept cases hold the records as they were when kept: give them their final identity and rank.
            return [replace(c, record=final.get((c.record.frame, c.record.box), c.record)) for c in cases]

        leak_cases, seen = [], set()
        for case in current(self.leak_cases.cases()):  # closest first; one per (final) identity
            if case.record.identity not in seen:
                seen.add(case.record.identity)
                leak_cases.append(case)
        worst_cases = current(self.worst.cases())
        fidelity = {
            "frames": len(self.psnr),
            "psnr_db": round(float(np.mean(self.psnr)), 3) if self.psnr else None,
            "psnr_db_min": round(float(np.min(self.psnr)), 3) if self.psnr else None,
            "ssim": round(float(np.mean(self.ssim)), 5) if self.ssim else None,
            "ssim_min": round(float(np.min(self.ssim)), 5) if self.ssim else None,
            "mask_scale": config.mask_scale,
        }
        if self.attributes is not None:
            attributes = {"model": self.evaluator.attribute_model.name, **self.attributes.summary()}
        else:
            attributes = {"available": False, "reason": "no attribute model given (--attribute-model)"}
        return EvaluationResult(
            original=pairs.original_info.to_dict(),
            anonymized=pairs.anonymized_info.to_dict(),
            config=config.to_dict(),
            recognizer=self.recognizer.describe(),
            calibration=self.calibration,
            frames={
                "kind": pairs.kind,
                "original": pairs.frames_original,
                "anonymized": pairs.frames_anonymized,
                "paired": pairs.pairs,
                "analysed": self.analysed,
                "step": self.step,
                "unpaired_original": pairs.unpaired_original,
                "unpaired_anonymized": pairs.unpaired_anonymized,
                "unpaired_keys": pairs.unpaired_keys[:200],
                "corrupt": pairs.corrupt_frames,
            },
            faces=faces,
            warping=self.warp_samples,
            fidelity=fidelity,
            attributes=attributes,
            gallery=gallery_info,
            leak_cases=leak_cases,
            worst_cases=worst_cases,
            extra_faces=self.extra_faces,
            extra_face_frames=self.extra_face_frames,
            turned_frames=self.turned,
            displaced_frames=self.displaced,
            carried=_carried(pairs.anonymized_info),
            interrupted=self.interrupted,
            attack=self._attack(),
        )

    def _attack(self) -> dict | None:
        candidates = self.evaluator.attack_candidates()
        if candidates is None:
            return None
        config = self.config
        method = f"given ({config.attack_anonymized})" if config.attack_anonymized else config.attack_method
        return attack_summary(self.recognizer, candidates, self.probes, method)


def _carried(info: SourceInfo) -> list[str]:
    """What an anonymized video file holds besides its video that may be a picture (see ``verdict``)."""
    if info.kind != "video" or not Path(info.uri).is_file():
        return []
    return pictures_beside_the_video(info.uri)


def _probe_labels(config: EvaluationConfig, original: str | os.PathLike[str]) -> Labels | None:
    """Who the largest face of each original image (or of a video's frames) is, for the attack."""
    if not config.attack_gallery:
        return None
    path = Path(original)
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in list_images(path)]
        return Labels.read(path, names, config.identities)
    return Labels.read(path.parent, [path.name], config.identities)


#: How an output may be turned against its original, and the turn that puts it back.
_TURNS = (
    ("turned 180", lambda image: image[::-1, ::-1]),
    ("mirrored", lambda image: image[:, ::-1]),
    ("upside down", lambda image: image[::-1]),
    ("turned a quarter clockwise", lambda image: np.rot90(image, 1)),
    ("turned a quarter anticlockwise", lambda image: np.rot90(image, -1)),
)


def _thumbnail(image: np.ndarray) -> np.ndarray | None:
    """A 24x24 grey version with zero mean and unit variance (``None`` for a flat picture): cheap to compare."""
    grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (24, 24), interpolation=cv2.INTER_AREA).astype(float)
    spread = grey.std()
    return None if spread < 1e-3 else (grey - grey.mean()) / spread
