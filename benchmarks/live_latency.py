"""Issue 5 benchmark: glass-to-glass latency that camouflage-video adds to a live feed.

A camera stand-in (gst-rtsp-server, tests/servers/rtsp_camera.py) draws its CLOCK_MONOTONIC milliseconds
into every 640x360 25 fps frame as it pushes it; a reader decodes the stream that comes out and compares
the drawn time with its own clock (same machine, same clock). Three paths, run one after the other:

- direct: the reader pulls the camera itself (camera encode + RTSP + decode: the floor);
- ffmpeg relay (peer): Debian ffmpeg pulls the camera, re-encodes with x264 zerolatency, pushes RTSP;
- camouflage-video: pulls the camera, detects, tracks and blurs faces (classic method), pushes RTSP.

Added latency = median(path) - median(direct); the ffmpeg relay shows what any re-encoding hop adds, so
median(camouflage) - median(ffmpeg) is what anonymizing adds. Goal (issue 5): at most two frame intervals
(80 ms), and no growth over a two-minute run while processing is slower than the feed.

Run:  python benchmarks/live_latency.py              # ~1.5 minutes: 20 s per path
      python benchmarks/live_latency.py --long       # adds the two-minute growth run (once, recorded)
Writes the "Live latency" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO, WORK, write_results

sys.path.insert(0, str(REPO))  # the test helpers that run the real servers
from tests.live_servers import RtspCamera, StreamReader, free_port, write_raw_frames  # noqa: E402

WARMUP = 4.0  # seconds of each run left out (connection, probing, first keyframe)
SLOW_DELAY = 0.04  # the two-minute run: an added 40 ms per frame makes processing slower than the 25 fps feed

# The two-minute run checks the latency policy where it matters: processing slower than the feed. Detection now
# keeps up with a 640x360 feed on this CPU, so the real CLI runs with a fixed sleep added to each blurred frame.
SLOW_CLI = f"""
import sys, time
from camouflage_video.pipelines.classic import ClassicObfuscator
from camouflage_video.cli import main
blur = ClassicObfuscator.__call__
ClassicObfuscator.__call__ = lambda self, ctx: (time.sleep({SLOW_DELAY}), blur(self, ctx))[1]
sys.exit(main(sys.argv[1:]))
"""


def run_path(name: str, camera: RtspCamera, seconds: float, tmp: Path, *, slow: bool = False) -> dict:
    """Measure one path for ``seconds`` after warm-up; returns latency figures in ms."""
    stats_path = tmp / f"{name}.stats.json"
    tool = None
    if name == "direct":
        reader = StreamReader(camera.url(), timeout=20, keep=2, stamps=True).start()
    else:
        url = f"rtsp://127.0.0.1:{free_port()}/{name}"
        reader = StreamReader(url, listen=True, timeout=30, keep=2, stamps=True).start()
        time.sleep(0.5)  # the listener opens its port
        if name == "ffmpeg":
            cmd = ["ffmpeg", "-v", "error", "-fflags", "nobuffer", "-flags", "low_delay", "-rtsp_transport", "tcp",
                   "-i", camera.url(), "-an", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
                   "-g", "25", "-f", "rtsp", "-rtsp_transport", "tcp", url]
        else:
            launcher = ["-c", SLOW_CLI] if slow else ["-m", "camouflage_video"]
            cmd = [sys.executable, *launcher, "anonymize", camera.url(), "-o", url, "-q",
                   "--stats", str(stats_path), "--stats-interval", "2"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        tool = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not reader.wait_frames(1, timeout=40):
            raise RuntimeError(f"{name}: no frame arrived ({reader.error})")
        time.sleep(WARMUP)
        start = len(reader.latencies_ms)
        t0 = time.monotonic()
        time.sleep(seconds)
        samples = np.array(reader.latencies_ms[start:], dtype=np.float64)
        elapsed = time.monotonic() - t0
    finally:
        if tool is not None:
            tool.send_signal(signal.SIGINT)
            try:
                tool.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                tool.kill()
                tool.communicate()
        reader.stop()
    third = max(1, len(samples) // 3)
    result = {
        "frames": len(samples),
        "fps_out": round(len(samples) / elapsed, 1),
        "p50": float(np.median(samples)),
        "p90": float(np.percentile(samples, 90)),
        "max": float(samples.max()),
        "first_third_p50": float(np.median(samples[:third])),
        "last_third_p50": float(np.median(samples[-third:])),
    }
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        result["tool"] = {k: stats["live"][k] for k in ("frames_received", "frames_dropped")}
        result["tool"]["frames_processed"] = stats["frames_in"]
        result["tool"]["internal_latency"] = stats["live"]["latency"]
        result["tool"]["seconds"] = stats["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per path (default: 20)")
    parser.add_argument("--long", action="store_true", help="also run camouflage-video for two minutes")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs Debian's ffmpeg (apt-get install ffmpeg)")

    from camouflage_video.samples import sample_frames

    tmp = WORK / "live"
    tmp.mkdir(parents=True, exist_ok=True)
    raw = write_raw_frames(tmp / "astronaut.rgb", sample_frames(100))
    load_before = os.getloadavg()
    results = {}
    with RtspCamera(raw, 640, 360, fps=25, stamp=True).start() as camera:
        for name in ("direct", "ffmpeg", "camouflage"):
            results[name] = run_path(name, camera, args.seconds, tmp)
            print(name, json.dumps(results[name]), flush=True)
        if args.long:
            results["long"] = run_path("camouflage", camera, 120, tmp, slow=True)
            print("long", json.dumps(results["long"]), flush=True)
    load_after = os.getloadavg()

    load = (
        f"Load average (1/5/15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in load_after)} (camera stand-in, tool and reader share the 2 cores)."
    )
    write_results("Live latency", report(results, ["direct", "ffmpeg", "camouflage"], load))
    if args.long:
        write_results("Live latency, two-minute run", report(results, ["direct", "ffmpeg", "long"], load))


LABELS = {"direct": "direct (floor)", "ffmpeg": "ffmpeg re-encode relay (peer)",
          "camouflage": "camouflage-video, classic blur",
          "long": f"camouflage-video, classic blur + {SLOW_DELAY * 1000:.0f} ms injected per frame, 120 s"}


HISTORY = (
    "History: while the run-time identity checks ran dlib's own code (74 ms per face, before the descriptor "
    "moved to onnxruntime) three runs gave added p50 76 and 79 ms on a quiet machine and 101 ms while the cores "
    "were shared, in-tool p99 85-95 ms; before the checks stopped blocking live pictures, in-tool p99 251 ms."
)


def report(results: dict, names: list[str], load: str) -> str:
    direct, relay = results["direct"]["p50"], results["ffmpeg"]["p50"]
    lines = [
        "Glass-to-glass latency of a 640x360 25 fps RTSP camera stand-in (gst-rtsp-server, x264 ultrafast",
        "zerolatency), read back over RTSP by PyAV; timestamps drawn into the frames at the source. "
        "`python benchmarks/live_latency.py` (add `--long` for the two-minute run). Latencies are of new pictures "
        "(repeats not counted); added = p50 minus p50 of the direct path, or of the ffmpeg relay (peer).",
        "",
        "| path | new pictures/s | p50 ms | p90 ms | max ms | added vs direct | added vs ffmpeg relay "
        "| p50 first third -> last third |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = results[name]
        added = "-" if name == "direct" else f"{r['p50'] - direct:.0f}"
        over_relay = f"{r['p50'] - relay:.0f}" if name in ("camouflage", "long") else "-"
        lines.append(
            f"| {LABELS[name]} | {r['fps_out']} | {r['p50']:.0f} | {r['p90']:.0f} | {r['max']:.0f} | {added} "
            f"| {over_relay} | {r['first_third_p50']:.0f} -> {r['last_third_p50']:.0f} |"
        )
    r = results[names[-1]]
    tool = r["tool"]
    processed = tool["frames_processed"]
    per_frame = {k: round(1000 * v / max(1, processed), 1) for k, v in tool["seconds"].items()}
    goal = 2 * 1000 / 25
    lines += [
        "",
        f"camouflage-video: {tool['frames_received']} frames received, {processed} processed, "
        f"{tool['frames_dropped']} dropped as stale; in-tool latency (arrival to outputs) "
        f"p50 {tool['internal_latency'].get('p50_ms')} ms, p99 {tool['internal_latency'].get('p99_ms')} ms; "
        f"ms per processed frame {per_frame}.",
        "",
        (
            f"Goal: no growth while processing is slower than the feed ({processed} of {tool['frames_received']} "
            f"frames processed). Growth from the first to the last third of the two minutes: "
            f"{r['last_third_p50'] - r['first_third_p50']:+.0f} ms."
            if names[-1] == "long" else
            f"Goal: added p50 <= {goal:.0f} ms (two frame intervals): "
            f"{'met' if r['p50'] - direct <= goal else 'not met'} against the direct path "
            f"({r['p50'] - direct:.0f} ms), {'met' if r['p50'] - relay <= goal else 'not met'} against the relay "
            f"peer ({r['p50'] - relay:.0f} ms). "
            f"Growth from the first to the last third of the run: {r['last_third_p50'] - r['first_third_p50']:+.0f} ms."
        ),
        "",
        load,
    ]
    if names[-1] == "camouflage":
        lines += ["", HISTORY]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
