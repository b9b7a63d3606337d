"""Privacy evaluation: how well an anonymized video, image or folder hides identities, and at what cost.

``evaluate()`` (and ``camouflage-video evaluate``) pairs an original with its anonymized version, finds the
faces of the original, and measures face-level re-identification with an independent recognizer, gallery
rank-1 identification, a leak audit, temporal consistency (flow-warping error, identity stability) and
fidelity outside the faces; ``write_report`` renders one self-contained HTML file, ``write_json`` the data.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from camouflage_video.errors import ConfigError, InputError
from camouflage_video.evaluation.attributes import AttributeAgreement, AttributeModel, FacerAttributeModel
from camouflage_video.evaluation.evaluator import Evaluator
from camouflage_video.evaluation.pairing import FramePair, PairedInputs, match_faces
from camouflage_video.evaluation.recognizers import (
    RECOGNIZERS,
    ArcFaceRecognizer,
    DlibRecognizer,
    Recognizer,
    load_recognizer,
    register_recognizer,
)
from camouflage_video.evaluation.records import EvaluationConfig, EvaluationResult, FaceCase, FaceRecord
from camouflage_video.evaluation.report import check_writable, render_report, write_json, write_report
from camouflage_video.interrupts import Finalized
from camouflage_video.preflight import Write, check_writes

__all__ = [
    "RECOGNIZERS",
    "ArcFaceRecognizer",
    "AttributeAgreement",
    "AttributeModel",
    "DlibRecognizer",
    "EvaluationConfig",
    "EvaluationResult",
    "Evaluator",
    "FaceCase",
    "FaceRecord",
    "FacerAttributeModel",
    "FramePair",
    "PairedInputs",
    "Recognizer",
    "evaluate",
    "load_recognizer",
    "match_faces",
    "register_recognizer",
    "render_report",
    "write_json",
    "write_report",
]


def evaluate(
    original: str | os.PathLike[str],
    anonymized: str | os.PathLike[str],
    config: EvaluationConfig | None = None,
    *,
    report: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    progress: bool | None = False,
    recognizer: Recognizer | str | None = None,
    attribute_model: AttributeModel | str | os.PathLike[str] | None = None,
    run_stats: str | os.PathLike[str] | None = None,
    **options: object,
) -> EvaluationResult:
    """Evaluate an anonymized video, image or image folder against its original.

    Args:
        original: The input that was anonymized.
        anonymized: The anonymizer's output (same kind: video, image or folder with the same relative paths).
        config: Options; keyword ``options`` override single fields (``step=5``).
        report: Also write the HTML report there.
        json_path: Also write the JSON there.
        progress: Show a progress bar (``None``: only on a terminal).
        recognizer: A recognizer object, or the registered name of one (sets ``config.recognizer``).
        attribute_model: An attribute model object, or the path of facer's weights
            (sets ``config.attribute_model``).
        run_stats: The ``--stats`` JSON of the run that made ``anonymized``: the report then also says what
            that run did (verification checks and escalations, fallback frames, faces carried back).

    Returns:
        The result; ``result.verdict()`` is ``"leak"`` when any anonymized face still matches its original.

    Raises:
        CamouflageError: Inputs that cannot be paired, outputs that cannot be written, missing models.
        KeyboardInterrupt: After writing the report and JSON of what was analysed.

    Examples:
        >>> result = evaluate("clip.mp4", "clip_anonymized.mp4", report="report.html", step=5)  # doctest: +SKIP
        >>> result.summary()["reidentification_rate"], len(result.leaks)  # doctest: +SKIP
        (0.0, 0)
    """
    config = config or EvaluationConfig()
    if isinstance(recognizer, str):
        options["recognizer"], recognizer = recognizer, None
    if isinstance(attribute_model, (str, os.PathLike)):
        options["attribute_model"], attribute_model = os.fspath(attribute_model), None
    if options:
        try:
            config = dataclasses.replace(config, **options)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(f"unknown evaluation option: {exc}") from None
    reads = [original, anonymized] + ([run_stats] if run_stats is not None else [])
    check_writes(  # before minutes of work, not after; never over an input
        [Write(role, Path(path)) for role, path in (("--report", report), ("--json", json_path)) if path is not None],
        reads=[r for r in reads if "://" not in os.fspath(r)],
    )
    for path in (report, json_path):
        if path is not None:
            check_writable(path)
    run = read_run_stats(run_stats) if run_stats is not None else None
    evaluator = Evaluator(config, recognizer=recognizer, attribute_model=attribute_model)
    result = evaluator.run(original, anonymized, progress=progress)
    result.run = run
    if report is not None:
        write_report(result, report)
    if json_path is not None:
        write_json(result, json_path)
    if result.interrupted:
        raise Finalized  # the report and JSON of what was analysed are written
    return result


def read_run_stats(path: str | os.PathLike[str]) -> dict:
    """What the anonymizing run did, from its ``--stats`` JSON: counters only (no paths, no URLs)."""
    try:
        stats = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable --stats file ({exc})") from exc
    if not isinstance(stats, dict) or "frames_out" not in stats:
        raise InputError(f"{path}: not the --stats JSON of an anonymize run")
    verify = (stats.get("model") or {}).get("verify")
    redaction = (stats.get("model") or {}).get("redaction")
    backfill = (stats.get("annotators") or {}).get("backfill") or {}
    return {
        "method": stats.get("method"),
        "frames_out": stats.get("frames_out"),
        "fallback_frames": stats.get("fallback_frames"),
        "faces_detected": stats.get("faces_detected"),
        "faces_held": stats.get("faces_held"),
        "interrupted": stats.get("interrupted"),
        "verify": None if verify is None else {k: verify.get(k) for k in (
            "margin", "checks", "cleared", "escalations", "too_small", "errors", "tracks_escalated", "faces_by_level")},
        "backfilled_boxes": backfill.get("backfilled_boxes"),
        "interpolated_boxes": backfill.get("interpolated_boxes"),
        "redaction": None if redaction is None else {k: redaction.get(k) for k in (
            "mode", "faces_kept", "faces_removed", "tracks", "untracked_faces", "region_frames")},
    }
