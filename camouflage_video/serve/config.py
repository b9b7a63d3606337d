"""The service's cameras file (``CAMERAS.toml``), read and checked whole before anything starts.

```toml
metrics = "127.0.0.1:9108"            # Prometheus text format at http://127.0.0.1:9108/metrics
method = "blur"                       # defaults for every camera: method, detection, encoding, stream options
[[camera]]
name = "door"
input = "rtsp://user:pass@10.0.0.5/stream1"
outputs = ["rtmp://127.0.0.1/live/door", "recordings/door.mp4"]
segment = "10m"                       # optional: door_YYYYmmdd-HHMMSS.mp4 files, each playable
method = "pixelate"                   # this camera only
```

A mistake (an unknown key, two cameras of one name, an input scheme that cannot be read, two cameras
writing one file or stream) is one :class:`~camouflage_video.errors.ConfigError` naming the file, the camera
and the key; no camera has started then. Inputs and restream URLs keep their credentials here, for the
cameras' processes only: every message about them goes through :func:`~camouflage_video.redact.redact_url`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from camouflage_video._deps import require
from camouflage_video.config import CLASSIC_METHODS, AnonymizeConfig
from camouflage_video.errors import CamouflageError, ConfigError
from camouflage_video.redact import redact_url
from camouflage_video.sinks.segments import MIN_SEGMENT, belongs_to_recording
from camouflage_video.sinks.stream import FORMATS as RESTREAM_FORMATS
from camouflage_video.sinks.video import FORMATS as FILE_FORMATS
from camouflage_video.sinks.video import EncoderOptions
from camouflage_video.sources.stream import StreamOptions
from camouflage_video.streaming import Backoff

#: Input schemes a camera can be read from (and ``/dev/videoN`` webcams).
INPUT_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DURATION = re.compile(r"\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>h|m|min|s|)\s*", re.IGNORECASE)
_UNITS = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "": 1.0}

#: Option keys a camera (or the top level, as every camera's default) may set: key -> (where, type).
OPTIONS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    # what is done to the pictures (AnonymizeConfig fields)
    "method": ("config", str),
    "thresh": ("config", (int, float)),
    "det_size": ("config", int),
    "nms": ("config", (int, float)),
    "min_face": ("config", int),
    "mask_scale": ("config", (int, float)),
    "shape": ("config", str),
    "track": ("config", bool),
    "hold_frames": ("config", int),
    "on_error": ("config", str),
    "audio": ("config", bool),
    "detector_model": ("config", str),
    "detector_backend": ("config", str),
    "detector_precision": ("config", str),
    "verify": ("config", bool),
    "verify_margin": ("config", (int, float)),
    "verify_every": ("config", int),
    # how it is encoded (EncoderOptions fields)
    "crf": ("encoder", int),
    "preset": ("encoder", str),
    "gop": ("encoder", int),
    # how the feed is read (StreamOptions fields, reconnection)
    "rtsp_transport": ("stream", str),
    "open_timeout": ("stream", (int, float)),
    "read_timeout": ("stream", (int, float)),
    "reconnect_delay": ("stream", (int, float)),
    "reconnect_max_delay": ("stream", (int, float)),
    # recordings
    "segment": ("segment", (str, int, float)),
}
CAMERA_KEYS = ("name", "input", "outputs", *OPTIONS)
TOP_KEYS = ("metrics", "stall_timeout", "camera", *OPTIONS)


@dataclass(frozen=True)
class CameraConfig:
    """One camera of the service: where it is read from, what is done to it, where it goes.

    Attributes:
        name: Unique name; labels its metrics and logs, names its segments' folder entries.
        input: Stream URL (credentials included) or ``/dev/videoN``.
        outputs: Restream URLs and recording paths.
        config: Method, detection and encoding options.
        stream: How the feed is read and reconnected.
        segment: Seconds per recording segment; ``None`` writes one file per run.
        table: The camera's table with the top-level defaults merged in.

    Examples:
        >>> door = camera_from_table({"name": "door", "input": "rtsp://admin:secret@10.0.0.5/s",
        ...                           "outputs": ["rtmp://127.0.0.1/live/door"], "segment": "10m"})
        >>> door.redacted_input, door.segment
        ('rtsp://***@10.0.0.5/s', 600.0)
    """

    name: str
    input: str = field(repr=False)  # credentials
    outputs: tuple[str, ...] = field(repr=False)  # stream keys
    config: AnonymizeConfig = field(default_factory=AnonymizeConfig)
    stream: StreamOptions = field(default_factory=StreamOptions, repr=False)
    segment: float | None = None
    #: The camera's table with the defaults merged in: what its process is started with.
    table: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def redacted_input(self) -> str:
        return redact_url(self.input)


@dataclass(frozen=True)
class ServeConfig:
    """The whole service: its cameras and where its metrics are served.

    Attributes:
        cameras: The cameras, in file order.
        metrics: ``(host, port)`` of the metrics endpoint; ``None`` serves none.
        stall_timeout: Seconds a camera's process may go without reporting before it is killed and restarted.
        path: The file it was read from.

    Examples:
        >>> config = parse_config({"camera": [{"name": "door", "input": "rtsp://10.0.0.5/s",
        ...                                    "outputs": ["rtmp://127.0.0.1/live/door"]}]})
        >>> [camera.name for camera in config.cameras], config.metrics
        (['door'], None)
    """

    cameras: tuple[CameraConfig, ...]
    metrics: tuple[str, int] | None = None
    stall_timeout: float = 30.0
    path: str = "CAMERAS.toml"


def parse_duration(value: object, where: str) -> float:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"1.5m"`` or a number of seconds, as seconds.

    Examples:
        >>> parse_duration("10m", "segment"), parse_duration(30, "segment")
        (600.0, 30.0)
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as \"10m\", got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.fullmatch(str(value))
    if not match:
        raise ConfigError(f"{where}: expected a duration such as \"10m\", \"90s\" or \"1h\", got {value!r}")
    return float(match["number"]) * _UNITS[match["unit"].lower()]


def load_config(path: str | os.PathLike[str]) -> ServeConfig:
    """Read and check a cameras file; every problem is a one-line ConfigError before anything starts."""
    toml = require("tomllib", None) if sys.version_info >= (3, 11) else require("tomli", None)
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such cameras file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError: line and column, never a value of ours
        raise ConfigError(f"{path}: not valid TOML ({redact_url(str(exc))})") from None
    return parse_config(data, str(path))


def parse_config(data: dict[str, Any], path: str = "CAMERAS.toml") -> ServeConfig:
    """Check the parsed TOML of a cameras file (see :func:`load_config`)."""
    _known(data, TOP_KEYS, path)
    metrics = _metrics_address(data.get("metrics"), path)
    stall = data.get("stall_timeout", 30.0)
    if isinstance(stall, bool) or not isinstance(stall, (int, float)) or stall <= 0:
        raise ConfigError(f"{path}: stall_timeout must be a number of seconds > 0, got {stall!r}")
    defaults = {key: data[key] for key in OPTIONS if key in data}
    tables = data.get("camera")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: no cameras; add at least one [[camera]] table with name, input and outputs")
    cameras: list[CameraConfig] = []
    for number, table in enumerate(tables, 1):
        cameras.append(_camera(table, defaults, f"{path}: camera {number}"))
    _check_unique(cameras, path)
    return ServeConfig(cameras=tuple(cameras), metrics=metrics, stall_timeout=float(stall), path=path)


def _known(table: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(keys)}")


def _metrics_address(value: object, path: str) -> tuple[str, int] | None:
    if value is None:
        return None
    host, sep, port = str(value).rpartition(":")
    if not isinstance(value, str) or not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{path}: metrics must be \"HOST:PORT\" such as \"127.0.0.1:9108\", got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _camera(table: dict[str, Any], defaults: dict[str, Any], where: str) -> CameraConfig:
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: name must be letters, digits, '_', '.' or '-' (at most 64), got {name!r}")
    where = where.rsplit(": camera", 1)[0] + f": camera {name!r}"
    _known(table, CAMERA_KEYS, where)
    source = table.get("input")
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{where}: input must be a stream URL such as \"rtsp://host/stream\"")
    _check_input(source, where)
    outputs = table.get("outputs")
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) and o for o in outputs):
        raise ConfigError(f"{where}: outputs must be a list of restream URLs and recording paths")
    for output in outputs:
        _check_output(output, where)
    options = {**defaults, **{key: table[key] for key in OPTIONS if key in table}}
    for key, value in options.items():
        expected = OPTIONS[key][1]
        if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
            kind = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"{where}: {key} must be {kind}, got {value!r}")
    try:
        config = _anonymize_config(options)
        stream = _stream_options(options)
        segment = parse_duration(options["segment"], f"{where}: segment") if "segment" in options else None
    except CamouflageError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if segment is not None and segment < MIN_SEGMENT:
        raise ConfigError(f"{where}: segment must be at least {MIN_SEGMENT:g} s, got {options['segment']!r}")
    return CameraConfig(name=name, input=source, outputs=tuple(outputs), config=config, stream=stream,
                        segment=segment, table={"name": name, "input": source, "outputs": list(outputs), **options})


def camera_from_table(table: dict[str, Any]) -> CameraConfig:
    """A camera from its merged table (:attr:`CameraConfig.table`), as its process receives it."""
    return _camera(table, {}, "camera")


def _check_input(source: str, where: str) -> None:
    if source.startswith("/dev/video"):
        return
    scheme, sep, _ = source.partition("://")
    if not sep:
        raise ConfigError(f"{where}: input {redact_url(source)!r} is not a stream URL; use one of "
                          f"{', '.join(s + '://' for s in INPUT_SCHEMES)} or /dev/videoN")
    if scheme.lower() not in INPUT_SCHEMES:
        raise ConfigError(f"{where}: cannot read {scheme}:// inputs; use one of "
                          f"{', '.join(s + '://' for s in INPUT_SCHEMES)} or /dev/videoN")


def _check_output(output: str, where: str) -> None:
    if "://" in output:
        scheme = output.split("://", 1)[0].lower()
        if scheme not in RESTREAM_FORMATS:
            raise ConfigError(f"{where}: cannot stream to {scheme}://; use one of "
                              f"{', '.join(s + '://' for s in RESTREAM_FORMATS)} or a recording path")
        return
    suffix = Path(output).suffix.lower()
    if suffix not in FILE_FORMATS:
        raise ConfigError(f"{where}: recording {output!r} needs one of the extensions {', '.join(FILE_FORMATS)}")
    folder = Path(output).parent
    if not folder.is_dir():
        raise ConfigError(f"{where}: recording {output!r}: the folder {str(folder)!r} does not exist")


def _anonymize_config(options: dict[str, Any]) -> AnonymizeConfig:
    names = {f.name for f in fields(AnonymizeConfig)}
    changes = {key: value for key, value in options.items() if OPTIONS[key][0] == "config" and key in names}
    if changes.get("method", "blur") not in CLASSIC_METHODS:
        raise ConfigError(f"method must be one of {', '.join(CLASSIC_METHODS)} for live cameras, "
                          f"got {changes['method']!r}")
    encoder = {key: value for key, value in options.items() if OPTIONS[key][0] == "encoder"}
    config = AnonymizeConfig(**changes)
    if encoder:
        config = replace(config, encoder=replace(EncoderOptions(), **encoder))
    return config


def _stream_options(options: dict[str, Any]) -> StreamOptions:
    base = StreamOptions()
    initial = float(options.get("reconnect_delay", base.reconnect.initial))
    maximum = float(options.get("reconnect_max_delay", max(base.reconnect.maximum, initial)))
    return StreamOptions(
        transport=options.get("rtsp_transport", base.transport),
        open_timeout=float(options.get("open_timeout", base.open_timeout)),
        read_timeout=float(options.get("read_timeout", base.read_timeout)),
        reconnect=Backoff(initial=initial, maximum=maximum),  # a service retries forever
        audio=bool(options.get("audio", True)),
    )


def recording_key(output: str) -> str:
    """What two outputs must not share: a restream URL as written, or a recording's resolved path. A recording
    writes a family of names (``door.mp4``, ``door-1.mp4``, ``door_<start>.mp4``: ``sinks/segments.py``), so
    two recordings also clash when one's name is in the other's family (:func:`_clash`)."""
    return output if "://" in output else os.path.abspath(output)


def _clash(one: str, other: str) -> bool:
    """Whether two resolved recording paths would write some name in common."""
    a, b = Path(one), Path(other)
    if a.parent != b.parent or a.suffix.lower() != b.suffix.lower():
        return False
    return belongs_to_recording(a.stem, b.stem) or belongs_to_recording(b.stem, a.stem)


def _check_unique(cameras: list[CameraConfig], path: str) -> None:
    names: set[str] = set()
    writers: dict[str, str] = {}
    for camera in cameras:
        if camera.name in names:
            raise ConfigError(f"{path}: two cameras are named {camera.name!r}; names must be unique")
        names.add(camera.name)
        for output in camera.outputs:
            key = recording_key(output)
            other = writers.get(key)
            if other is None and "://" not in output:
                other = next((who for written, who in writers.items() if "://" not in written
                              and _clash(key, written)), None)
            if other is not None:
                what = f"{'stream' if '://' in output else 'file'} {redact_url(output)!r}"
                if other == camera.name:
                    raise ConfigError(f"{path}: camera {camera.name!r} writes the {what} twice")
                raise ConfigError(f"{path}: cameras {other!r} and {camera.name!r} both write the {what}; "
                                  "give each its own")
            writers[key] = camera.name
