"""The service's ``/metrics``: Prometheus text format (version 0.0.4), one series per camera by name.

Counters add up over a camera's restarts (its process reports its own totals; what a finished process
counted is kept). Label values are camera names from the cameras file (checked to be plain names) and
quantiles: no URL, and so no credential, is ever part of the page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from camouflage_video.errors import ConfigError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: name, type, help, key in a camera's report. Counters are summed over the camera's processes.
SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("camouflage_camera_up", "gauge", "1 while the camera's process runs and reports.", "up"),
    ("camouflage_camera_connected", "gauge", "1 while the camera's feed is connected (0: black frames).",
     "connected"),
    ("camouflage_frames_received_total", "counter", "Pictures received from the feed.", "frames_received"),
    ("camouflage_frames_processed_total", "counter", "Pictures anonymized.", "frames_processed"),
    ("camouflage_frames_written_total", "counter", "Pictures handed to the outputs.", "frames_written"),
    ("camouflage_frames_dropped_total", "counter",
     "Pictures dropped as stale because processing was slower than the feed.", "frames_dropped"),
    ("camouflage_outage_frames_total", "counter", "Black pictures sent while the feed was down.", "outage_frames"),
    ("camouflage_fallback_frames_total", "counter",
     "Pictures that got the whole-frame fallback because a stage failed.", "fallback_frames"),
    ("camouflage_damaged_frames_total", "counter",
     "Pictures decoded from damaged data (a lost packet), pixelated whole until the next clean keyframe.",
     "damaged_frames"),
    ("camouflage_faces_total", "counter", "Faces detected (and held by tracking).", "faces"),
    ("camouflage_reconnects_total", "counter", "Times the feed came back after it was lost or could not be opened.",
     "reconnects"),
    ("camouflage_camera_restarts_total", "counter", "Times the camera's process was restarted.", "restarts"),
    ("camouflage_turn_wait_seconds_total", "counter",
     "Seconds the camera waited for a turn at the CPU (more cameras than cores).", "turn_wait_seconds"),
    ("camouflage_turns_given_up_total", "counter",
     "Times no turn came free in time (a camera holding one is stuck) and the camera went on without turns.",
     "turns_given_up"),
)
COUNTERS = tuple(key for _, kind, _, key in SERIES if kind == "counter" and key != "restarts")
LATENCY = "camouflage_latency_seconds"
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))


@dataclass
class CameraMetrics:
    """What the service knows of one camera: the running process's last report and what earlier ones counted."""

    name: str
    up: bool = False
    restarts: int = 0
    report: dict = field(default_factory=dict)
    done: dict = field(default_factory=dict)  # counters of the camera's finished processes

    def process_ended(self) -> None:
        """Keep the finished process's totals; the next one counts from zero."""
        for key in (*COUNTERS, "latency_sum", "latency_count"):
            self.done[key] = self.done.get(key, 0) + self.report.get(key, 0)
        self.report, self.up = {}, False

    def value(self, key: str) -> float:
        if key == "up":
            return float(self.up)
        if key == "restarts":
            return float(self.restarts)
        if key == "connected":
            return float(bool(self.report.get("connected", False)) and self.up)
        return float(self.done.get(key, 0) + self.report.get(key, 0))


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def render(cameras: Iterable[CameraMetrics]) -> str:
    """The text format page for these cameras."""
    cameras = list(cameras)
    lines: list[str] = []
    for name, kind, help_text, key in SERIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{camera="{_label(c.name)}"}} {_number(c.value(key))}' for c in cameras]
    lines += [f"# HELP {LATENCY} Seconds from a picture's arrival to its hand-off to the outputs (recent pictures).",
              f"# TYPE {LATENCY} summary"]
    for camera in cameras:
        label = _label(camera.name)
        latency: Mapping[str, float] = camera.report.get("latency", {})
        for quantile, key in QUANTILES:
            if key in latency:
                lines.append(f'{LATENCY}{{camera="{label}",quantile="{quantile}"}} {_number(latency[key])}')
        lines.append(f'{LATENCY}_sum{{camera="{label}"}} {_number(camera.value("latency_sum"))}')
        lines.append(f'{LATENCY}_count{{camera="{label}"}} {_number(camera.value("latency_count"))}')
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MetricsServer:
    """Serve ``render(cameras())`` at ``http://HOST:PORT/metrics`` from a thread.

    Binding happens in the constructor, so a port in use fails before any camera starts.

    Examples:
        >>> server = MetricsServer(("127.0.0.1", 0), lambda: [CameraMetrics("door")]).start()
        >>> server.address[0]
        '127.0.0.1'
        >>> server.close()
    """

    def __init__(self, address: tuple[str, int], cameras) -> None:  # noqa: ANN001 - () -> Iterable[CameraMetrics]
        page = cameras

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = render(page()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server name
                pass  # a scrape every few seconds is not news

        try:
            self._server = ThreadingHTTPServer(address, Handler)
        except OSError as exc:
            raise ConfigError(f"metrics: cannot listen on {address[0]}:{address[1]} ({exc.strerror or exc})") from None
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="camouflage-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
