"""Privacy evaluation: how well an anonymized video, image or folder hides identities, and at what cost.

``evaluate()`` (and ``camouflage-video evaluate``) pairs an original with its anonymized version, finds the
faces of the original, and measures face-level re-identification with an independent recognizer, gallery
rank-1 identification, a leak audit, temporal consistency (flow-warping error, identity stability) and
fidelity outside the faces; ``write_report`` renders one self-contained HTML file, ``write_json`` the data.
"""

from __future__ import annotations

import dataclasses
import os

from camouflage_video.errors import ConfigError
from camouflage_video.evaluation.attributes import AttributeAgreement, AttributeModel, FacerAttributeModel
from camouflage_video.evaluation.evaluator import (
    EvaluationConfig,
    EvaluationResult,
    Evaluator,
    FaceCase,
    FaceRecord,
)
from camouflage_video.evaluation.pairing import FramePair, PairedInputs, match_faces
from camouflage_video.evaluation.recognizers import (
    RECOGNIZERS,
    ArcFaceRecognizer,
    DlibRecognizer,
    Recognizer,
    load_recognizer,
    register_recognizer,
)
from camouflage_video.evaluation.report import check_writable, render_report, write_json, write_report

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
    for path in (report, json_path):
        if path is not None:
            check_writable(path)  # before minutes of work, not after
    evaluator = Evaluator(config, recognizer=recognizer, attribute_model=attribute_model)
    result = evaluator.run(original, anonymized, progress=progress)
    if report is not None:
        write_report(result, report)
    if json_path is not None:
        write_json(result, json_path)
    if result.interrupted:
        raise KeyboardInterrupt
    return result
