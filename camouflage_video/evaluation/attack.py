"""The attacker who owns the tool (Kerckhoffs): anonymize photos of known people the same way, then match.

An obfuscation is only as safe as it is against someone who knows exactly how it works. Such an attacker
holds candidate photos of the people who might appear (a staff list, social media), runs the same
anonymizer with the same settings over them, and searches each anonymized face of the footage among the
anonymized candidates: blur matched against blur finds what blur kept. The result is a rank-1 rate to hold
against chance (one over the number of candidate identities) and against ``solid``, the floor: probes and
candidates filled black, so only context (hair, outline, clothes) is left to match.

Identities come from an ``identities.csv`` (columns ``file`` and ``identity``, optionally ``source``: the
candidate photo a probe was made from, left out of that probe's search) in the folder, or else from file
names: ``kit_harington_2.jpg`` is ``kit_harington``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.evaluation.recognizers import Recognizer
from camouflage_video.frame import Faces
from camouflage_video.pipelines.classic import METHODS, ClassicObfuscator
from camouflage_video.sources.images import list_images, read_image

IDENTITY_FILE = "identities.csv"

ImageAnonymizer = Callable[[np.ndarray], np.ndarray]


def identity_from_name(name: str) -> str:
    """``people/kit_harington_2.jpg`` -> ``kit_harington``: the stem without a trailing ``_<n>`` or ``-<n>``."""
    stem = Path(name).stem
    for sep in ("_", "-"):
        head, _, tail = stem.rpartition(sep)
        if head and tail.isdigit():
            return head
    return stem


@dataclass(frozen=True, slots=True)
class Labels:
    """Identity (and optional source photo) of files, by path relative to their folder."""

    identity: dict[str, str]
    source: dict[str, str]

    @classmethod
    def read(cls, folder: Path, files: list[str], csv_path: str | Path | None = None) -> Labels:
        path = Path(csv_path) if csv_path else folder / IDENTITY_FILE
        identity: dict[str, str] = {}
        source: dict[str, str] = {}
        if path.is_file():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or not {"file", "identity"} <= set(reader.fieldnames):
                    raise InputError(f"{path}: needs the columns file and identity")
                for row in reader:
                    identity[row["file"]] = row["identity"]
                    if row.get("source"):
                        source[row["file"]] = row["source"]
        elif csv_path:
            raise InputNotFoundError(f"{path}: identity file not found")
        for name in files:
            identity.setdefault(name, identity_from_name(name))
        return cls(identity, source)


def tool_anonymizer(method: str = "blur", mask_scale: float = 1.3, shape: str = "ellipse",
                    thresh: float = 0.2, det_size: int = 960, verify: bool = True) -> ImageAnonymizer:
    """What ``camouflage-video anonymize --method METHOD`` does to one photo: the same stages (detector,
    obfuscation and, unless ``verify`` is off, the run-time identity check), built once."""
    from camouflage_video.config import AnonymizeConfig, StageCache
    from camouflage_video.frame import Frame, FrameContext
    from camouflage_video.sources.base import SourceInfo

    if method not in METHODS:
        raise ConfigError(f"the attack anonymizes with a classic method ({', '.join(METHODS)}), got {method!r}; "
                          "anonymize the gallery with any other and pass --attack-anonymized")
    stages = StageCache(AnonymizeConfig(method=method, mask_scale=mask_scale, shape=shape, thresh=thresh,
                                        det_size=det_size, verify=verify))

    def anonymize(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        annotators, anonymizer = stages(SourceInfo(uri="candidate", kind="image", width=w, height=h))
        ctx = FrameContext(Frame(image, 0))
        for annotator in annotators:
            annotator.annotate(ctx)
        return anonymizer(ctx)

    return anonymize


@dataclass(frozen=True)
class Candidates:
    """The attacker's gallery: one embedding per candidate photo, clear, anonymized and filled black."""

    files: list[str]
    identities: list[str]
    clear: np.ndarray
    anonymized: np.ndarray
    solid: np.ndarray

    @classmethod
    def build(
        cls,
        folder: str | Path,
        recognizer: Recognizer,
        detector,  # noqa: ANN001 - a CenterFaceDetector (the evaluation's: faces are found in the clear photo)
        anonymizer: ImageAnonymizer | None,
        *,
        anonymized_folder: str | Path | None = None,
        null_scale: float = 1.3,
        identities_csv: str | Path | None = None,
    ) -> Candidates:
        """Embed the largest face of every photo in ``folder``, as it is and as the tool leaves it.

        The anonymized candidate is read with the clear photo's alignment (the attacker detects faces before
        anonymizing), as the evaluation reads every anonymized face.

        Args:
            anonymizer: Turns a clear photo into the tool's output; unused where ``anonymized_folder`` holds
                the candidates already anonymized (same relative paths), by this tool or any other.
        """
        root = Path(folder)
        if not root.is_dir():
            raise InputNotFoundError(f"{root}: attack gallery folder not found")
        paths = list_images(root)
        names = [p.relative_to(root).as_posix() for p in paths]
        labels = Labels.read(root, names, identities_csv)
        solid = ClassicObfuscator("solid", mask_scale=null_scale)
        files, identities, clear, anonymized, black = [], [], [], [], []
        for path, name in zip(paths, names, strict=True):
            image = read_image(path)
            if image is None:
                continue
            faces = detector.detect(image)
            if not len(faces):
                continue
            areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
            largest: Faces = faces[int(np.argmax(areas))]
            if anonymized_folder is not None:
                target = _same_path(Path(anonymized_folder), name)
                other = read_image(target) if target is not None else None
                if other is None or other.shape != image.shape:
                    raise InputError(f"{Path(anonymized_folder) / name}: missing or not the size of {path}")
            elif anonymizer is not None:
                other = anonymizer(image)
            else:
                raise ConfigError("the attack needs an anonymizer or a folder of anonymized candidates")
            filled = image.copy()
            solid.obfuscate(filled, faces.xyxy)
            e_clear, e_anon, e_solid = recognizer.embed_versions(image, [other, filled], largest)
            files.append(name)
            identities.append(labels.identity[name])
            clear.append(e_clear[0])
            anonymized.append(e_anon[0])
            black.append(e_solid[0])
        if not files:
            raise InputError(f"{root}: no face found in any attack gallery image")
        return cls(files, identities, np.stack(clear), np.stack(anonymized), np.stack(black))


def _same_path(folder: Path, name: str) -> Path | None:
    """``folder/name``, else the file of ``folder`` with the same path but another image extension."""
    exact = folder / name
    if exact.is_file():
        return exact
    stem = exact.with_suffix("")
    return next((p for p in sorted(stem.parent.glob(stem.name + ".*")) if p.with_suffix("") == stem), None)


def rank1(
    recognizer: Recognizer,
    probes: np.ndarray,
    probe_ids: list[str],
    probe_sources: list[str | None],
    gallery: np.ndarray,
    candidates: Candidates,
) -> np.ndarray:
    """Whether each probe's nearest candidate identity is its own (ties in the attacker's favour).

    A candidate that is the probe's own source photo is left out of that probe's search.
    """
    names = sorted(set(candidates.identities))
    column = {name: i for i, name in enumerate(names)}
    owner = np.array([column[i] for i in candidates.identities])
    d = recognizer.distance(probes, gallery)
    for row, source in enumerate(probe_sources):
        if source is not None:
            d[row, [i for i, f in enumerate(candidates.files) if f == source]] = np.inf
    per_identity = np.full((len(probes), len(names)), np.inf)
    for j in range(len(names)):
        per_identity[:, j] = d[:, owner == j].min(axis=1)
    truth = per_identity[np.arange(len(probes)), [column[i] for i in probe_ids]]
    return (per_identity < truth[:, None]).sum(axis=1) == 0


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p): how likely chance alone does this well."""
    if trials == 0:
        return 1.0
    return float(min(1.0, sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
                              for k in range(successes, trials + 1))))


def attack_summary(
    recognizer: Recognizer,
    candidates: Candidates,
    probes: list[tuple[str, str | None, np.ndarray, np.ndarray, np.ndarray]],
    method: str,
) -> dict:
    """Rank-1 of the tool-aware attacker, against chance and the solid floor.

    Args:
        probes: ``(identity, source, original, anonymized, null)`` embeddings of labelled faces of the
            evaluated footage; only those whose identity has a candidate other than their own source count.
        method: What anonymized the candidates (shown in the report).
    """
    identities = sorted(set(candidates.identities))
    usable = []
    for identity, source, *embeddings in probes:
        others = [f for f, i in zip(candidates.files, candidates.identities, strict=True) if i == identity
                  and f != source]
        if others:
            usable.append((identity, source, *embeddings))
    out: dict = {
        "method": method,
        "candidates": len(candidates.files),
        "identities": len(identities),
        "chance": round(1.0 / len(identities), 4),
        "probes": len(usable),
        "probes_without_candidate": len(probes) - len(usable),
    }
    if not usable:
        return {**out, "rank1_rate": None, "solid_rank1_rate": None, "clear_rank1_rate": None, "verdict": "no-probes"}
    ids = [p[0] for p in usable]
    sources = [p[1] for p in usable]
    original, anonymized, null = (np.stack([p[k] for p in usable]) for k in (2, 3, 4))
    hits = rank1(recognizer, anonymized, ids, sources, candidates.anonymized, candidates)
    floor = rank1(recognizer, null, ids, sources, candidates.solid, candidates)
    clear = rank1(recognizer, original, ids, sources, candidates.clear, candidates)
    n, k = len(usable), int(hits.sum())
    baseline = max(out["chance"], float(floor.mean()))
    p_value = binomial_tail(k, n, baseline)
    out.update(
        rank1_rate=round(k / n, 4),
        solid_rank1_rate=round(float(floor.mean()), 4),
        clear_rank1_rate=round(float(clear.mean()), 4),
        p_value_above_floor=round(p_value, 4),
        # Above the floor only when chance (or solid's context) would rarely do as well: one in twenty.
        verdict="above-floor" if p_value < 0.05 and k / n > baseline else "at-floor",
    )
    return out
