"""Issue 2 benchmarks: I/O overhead against ffmpeg, speed against deface, memory on a 10x longer input.

Run: python benchmarks/foundation.py [--speed-only]   (needs Debian's ffmpeg, the deface CLI and ../shared/media)
Writes the "Foundation" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import av

from _common import MEDIA, WORK, ffmpeg, timed, write_results

PY = sys.executable
CLIP = MEDIA / "videos" / "intel_preview_face-demographics-walking-and-pause.gif"  # 3 real frontal faces


def make_inputs() -> dict[str, object]:
    """720p and 1080p H.264 + AAC clips upscaled from a real clip (looped for length), and a 10x longer one."""
    WORK.mkdir(exist_ok=True)
    inputs = {}
    clips = (
        ("720p", "1280:720", 4),  # 164 frames, 6.6 s
        ("1080p", "1920:1080", 2),  # 82 frames
        ("720p_x4", "1280:720", 16),  # 656 frames, 26 s: start-up (~1.3 s for either tool) weighs less
        ("1080p_x4", "1920:1080", 8),  # 328 frames
        ("720p_x10", "1280:720", 40),  # memory on a 10x longer input
    )
    for name, size, loops in clips:
        path = WORK / f"faces_{name}.mp4"
        if not path.exists():
            ffmpeg(
                "-stream_loop", str(loops - 1), "-i", str(CLIP), "-f", "lavfi", "-i", "sine=frequency=440",
                "-vf", f"scale={size}:flags=lanczos,format=yuv420p", "-c:v", "libx264", "-crf", "16",
                "-preset", "veryfast", "-c:a", "aac", "-shortest", str(path),
            )
        inputs[name] = path
    return inputs


def count_frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


PASSTHROUGH = """
import sys
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.runner import Runner
from camouflage_video.sinks import EncoderOptions, open_sink
from camouflage_video.sources import open_source

class Passthrough(Anonymizer):  # benchmark only: measures the project's I/O path, no anonymization
    name = "passthrough"
    def __call__(self, ctx):
        return ctx.frame.image

with open_source(sys.argv[1]) as src:
    sink = open_sink(sys.argv[2], src.info, encoder=EncoderOptions(crf=18, preset="veryfast"), audio=False)
    Runner(src, [sink], [], Passthrough(), progress=False).run()
"""


def overhead(clip, repeats: int = 3) -> str:
    rows = []
    for _ in range(repeats):  # alternate the two, keep each one's best: these machines are noisy
        ours, _ = timed([PY, "-c", PASSTHROUGH, str(clip), str(WORK / "io_ours.mp4")])
        ref, _ = timed(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "18", "-an", str(WORK / "io_ffmpeg.mp4")])
        rows.append((ours, ref))
    ours, ref = min(r[0] for r in rows), min(r[1] for r in rows)
    n = count_frames(clip)
    return (
        f"| decode→encode, no detection ({n} frames 1280x720, libx264 veryfast crf 18) | "
        f"{ours:.2f} s | ffmpeg {ref:.2f} s | **{ours / ref:.2f}x** (goal ≤ 1.15x) |"
    )


def deface_faces(clip) -> int:
    """Faces deface obfuscates: its own CenterFace at its defaults (full resolution, thresh 0.2)."""
    from deface.centerface import CenterFace

    net, total = CenterFace(backend="auto"), 0
    with av.open(str(clip)) as c:
        for frame in c.decode(video=0):
            dets, _ = net(frame.to_ndarray(format="rgb24"), threshold=0.2)
            total += len(dets)
    return total


def speed(name, clip, rounds: int = 1) -> str:
    n = count_frames(clip)
    size = name.split("_")[0]
    stats_path = WORK / f"stats_{name}.json"
    deface_bin = shutil.which("deface") or str(Path(PY).with_name("deface"))
    times = []
    for _ in range(rounds):  # the two take turns; each keeps its best (a noisy machine only ever slows one down)
        ours, _ = timed([PY, "-m", "camouflage_video", "anonymize", str(clip), "-o",
                         str(WORK / f"ours_{name}.mp4"), "-q", "--stats", str(stats_path)])
        theirs, _ = timed([deface_bin, str(clip), "-o", str(WORK / f"deface_{name}.mp4"), "--keep-audio"])
        times.append((ours, theirs))
    ours, theirs = min(t[0] for t in times), min(t[1] for t in times)
    stats = json.loads(stats_path.read_text())
    ours_faces = stats["faces_detected"] + stats["faces_held"]
    their_faces = deface_faces(clip)
    return (
        f"| {size} ({n} frames, 3 faces) | {n / ours:.2f} fps, {ours_faces} face boxes | "
        f"{n / theirs:.2f} fps, {their_faces} face boxes | **{theirs / ours:.2f}x** (goal ≥ 3x, faces ≥ deface) |"
    )


def memory(short, long) -> str:
    peaks = {}
    for name, clip in (("1x", short), ("10x", long)):
        _, peaks[name] = timed([PY, "-m", "camouflage_video", "anonymize", str(clip), "-o",
                                str(WORK / f"mem_{name}.mp4"), "-q"])
    return (
        f"| peak RSS, {count_frames(short)} vs {count_frames(long)} frames at 720p | {peaks['1x']} MiB | "
        f"{peaks['10x']} MiB | **{peaks['10x'] / peaks['1x']:.2f}x** (goal ≤ 1.2x) |"
    )


SPEED_HISTORY = (
    "History: before the identity checks' dlib network moved to onnxruntime (74 -> 4 ms a face) and the detector "
    "took the uint8 picture, one round side by side gave 720p 2.66x and 1080p 3.17x (load 2.1)."
)


def speed_only(inputs: dict, rounds: int) -> None:
    """Only the speed rows, on the 4x longer clips (start-up weighs least there), the tools taking turns."""
    lines = ["| what | camouflage-video | peer | ratio |", "|---|---|---|---|",
             speed("720p_x4", inputs["720p_x4"], rounds), speed("1080p_x4", inputs["1080p_x4"], rounds)]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    body = (
        "Script: `benchmarks/foundation.py --speed-only`: the speed rows of the section above on the 4x longer "
        f"clips, camouflage-video with today's defaults (CenterFace fp32, --min-face 20, tracking, 1 s look-ahead, "
        f"run-time verification) against deface 1.5.0 (full-resolution detection, onnxruntime), {rounds} "
        "round(s) taking turns, each tool's best kept; wall time of the whole process.\n\n" + "\n".join(lines)
        + f"\n\nLoad average (1/5/15 min) at the end: {load}.\n\n{SPEED_HISTORY}"
    )
    write_results("Foundation: speed against deface with today's defaults", body)
    print(body)


if __name__ == "__main__":
    if not MEDIA.is_dir() or shutil.which("ffmpeg") is None:
        sys.exit("needs ../shared/media and ffmpeg (apt-get install ffmpeg)")
    started = time.time()
    inputs = make_inputs()
    if "--speed-only" in sys.argv:
        speed_only(inputs, rounds=int(os.environ.get("ROUNDS", "1")))
        print(f"done in {time.time() - started:.0f} s")
        sys.exit(0)
    lines = [
        "| what | camouflage-video | peer | ratio |",
        "|---|---|---|---|",
        overhead(inputs["720p"]),
        overhead(inputs["720p_x4"], repeats=2),
        speed("720p", inputs["720p"]),
        speed("720p_x4", inputs["720p_x4"]),
        speed("1080p", inputs["1080p"]),
        speed("1080p_x4", inputs["1080p_x4"]),
        memory(inputs["720p"], inputs["720p_x10"]),
    ]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    body = (
        "Script: `benchmarks/foundation.py`. Inputs: a real clip with three frontal faces "
        f"(`{CLIP.name}`, CC-BY-4.0) upscaled with lanczos and looped, H.264 crf 16 + AAC; each size once as "
        "6.6 s and once as 26 s of video (4x longer). camouflage-video runs with its defaults (blur painted "
        "from the surroundings, CenterFace on onnxruntime with --min-face 20, tracking, 1 s of look-ahead, "
        "run-time identity verification); deface 1.5.0 with its defaults (full-resolution "
        "detection, onnxruntime when installed) plus `--keep-audio`. Each pair runs one after the other in the "
        "same session; wall time includes start-up (imports and model load: about 1.3 s for either tool), "
        "which is why the short clips give lower ratios.\n\n" + "\n".join(lines)
        + f"\n\nLoad average (1/5/15 min) at the end: {load}.\n\n"
        "History: before three changes of 2026-11-22 (x264 frame threads instead of PyAV's slice threads, "
        "OpenCV's yuv420p conversion instead of the encoder's swscale pass, CenterFace on onnxruntime with the "
        "shipped graph's weights folded instead of OpenCV DNN) the same script measured 1.21-1.40x ffmpeg's "
        "wall time for decode→encode and 2.2-3.0x deface's speed at 720p on this machine."
    )
    write_results("Foundation (issue 2)", body)
    print(body)
    print(f"done in {time.time() - started:.0f} s")
