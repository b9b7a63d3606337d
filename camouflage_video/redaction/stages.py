"""What a run's redaction options (``keep_person``, ``only_person``, ``regions``, ``tracks_in``,
``tracks_out``) add to its stages, checked and loaded before any frame is read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camouflage_video.annotators.base import Annotator, ordered_stages
from camouflage_video.errors import ConfigError
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.redaction.decide import RedactingAnonymizer
from camouflage_video.redaction.files import (
    Regions,
    TracksFile,
    TracksWriter,
    file_sha256,
    load_regions,
    load_tracks,
)
from camouflage_video.redaction.people import PersonMatcher, ReferencePeople
from camouflage_video.redaction.replay import TracksReplay


def wanted(config: Any) -> bool:
    """Whether ``config`` (an ``AnonymizeConfig``) asks for any redaction option."""
    return bool(config.keep_person or config.only_person or config.regions or config.tracks_in or config.tracks_out)


def check_paths(config: Any) -> None:
    """The redaction files of ``config``: inputs exist, the output is none of them (no model needed)."""
    inputs = [*config.keep_person, *config.only_person, config.regions, config.tracks_in]
    for path in filter(None, inputs):
        if not Path(path).is_file():
            raise ConfigError(f"{path}: file not found")
    if config.tracks_out:
        out = Path(config.tracks_out)
        if not out.parent.is_dir():
            raise ConfigError(f"{out}: --tracks-out folder does not exist")
        if out.is_dir():
            raise ConfigError(f"{out}: --tracks-out is a folder")
        if any(Path(p).resolve() == out.resolve() for p in filter(None, inputs)):
            raise ConfigError(f"{out}: --tracks-out would overwrite one of the run's inputs")


class Redaction:
    """The loaded redaction options of one configuration (reference photos embedded, files read)."""

    def __init__(self, config: Any, people: ReferencePeople | None, regions: Regions | None,
                 tracks: TracksFile | None) -> None:
        self.config, self.people, self.regions, self.tracks = config, people, regions, tracks
        self.mode = "keep" if config.keep_person else ("only" if config.only_person else None)

    @classmethod
    def load(cls, config: Any, detector: Any) -> Redaction | None:
        """``None`` when ``config`` asks for no redaction; raises ``ConfigError`` on any bad file or photo."""
        if not wanted(config):
            return None
        check_paths(config)
        regions = load_regions(config.regions) if config.regions else None
        tracks = load_tracks(config.tracks_in) if config.tracks_in else None
        people = None
        photos = config.keep_person or config.only_person
        if photos:
            from camouflage_video.evaluation.recognizer_process import isolated_recognizer

            # In a child process, as the verifier's: dlib's landmarks hold the interpreter lock; a crash stays there.
            people = ReferencePeople(photos, detector, isolated_recognizer("dlib"), margin=config.person_margin)
        if regions is not None and regions.tracks and tracks is None:
            raise ConfigError(f"{regions.path}: forcing tracks needs the tracks file they come from (--tracks-in)")
        return cls(config, people, regions, tracks)

    def stages(self, info: Any, detection: Sequence[Annotator], extra: Sequence[Annotator],
               anonymizer: Anonymizer) -> tuple[list[Annotator], Anonymizer]:
        """The run's stages for the input ``info``, with detection replaced by the tracks file where given."""
        config = self.config
        if (self.tracks is not None or self.regions is not None) and info.kind not in ("video", "image"):
            raise ConfigError(f"--tracks-in and --regions describe one video's frames; not for a {info.kind} input")
        local = info.uri if info.kind in ("video", "image") and Path(info.uri).is_file() else None
        if self.tracks is not None:
            if local is None:
                raise ConfigError(f"{self.tracks.path}: a tracks file is replayed on the video file it was made "
                                  "from; this input is not a file")
            self.tracks.check_video(info.width, info.height, info.frame_count, local)
            self.tracks.check_look(config.mask_scale, config.shape)
        if self.regions is not None:
            frame_count = self.tracks.frame_count if self.tracks is not None else info.frame_count
            self.regions.check(width=info.width, height=info.height, frame_count=frame_count,
                               track_ids=self.tracks.track_ids if self.tracks is not None else None)
        annotators = [TracksReplay(self.tracks)] if self.tracks is not None else list(detection)
        if self.people is not None:
            look_ahead = 0
            if self.mode == "only" and info.kind == "video" and not info.live and config.look_ahead > 0:
                look_ahead = max(1, math.ceil(config.look_ahead * float(info.fps or 25)))
            annotators.append(PersonMatcher(self.people, look_ahead=look_ahead))
        video = {"uri": info.uri, "width": info.width, "height": info.height,
                 "fps": str(info.fps) if info.fps else None}
        if config.tracks_out and local is not None:  # what a replay checks it is given the same file
            video["sha256"] = self.tracks.sha256 if self.tracks is not None else file_sha256(local)
        writer = None
        if config.tracks_out:
            # How many reference photos, not their paths: file names often name the people.
            header = {"version": 1, "method": config.method, "mode": self.mode or "all",
                      "people": len(config.keep_person or config.only_person)}
            writer = TracksWriter(config.tracks_out, header)
        wrapped = RedactingAnonymizer(anonymizer, mode=self.mode, regions=self.regions, writer=writer,
                                      method=config.method, mask_scale=config.mask_scale, video=video)
        return ordered_stages([*annotators, *extra]), wrapped


def check_for_dataset(config: Any) -> None:
    """Up front, before a dataset run touches its output: the per-video files make no sense over a folder,
    and every reference photo must show one usable face (else every file would fail the same way)."""
    if config.tracks_out or config.tracks_in or config.regions:
        raise ConfigError("--tracks-out, --tracks-in and --regions describe one video: run anonymize on it")
    if config.keep_person or config.only_person:
        from camouflage_video.annotators.faces import CenterFaceDetector

        detector = CenterFaceDetector(thresh=config.thresh, det_size=config.det_size, nms=config.nms,
                                      min_face=config.min_face, model_path=config.detector_model,
                                      backend=config.detector_backend, precision=config.detector_precision)
        Redaction.load(config, detector)
