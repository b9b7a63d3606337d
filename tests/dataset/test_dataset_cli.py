"""``camouflage-video dataset``: a full run, a rerun, a configuration change, kill -9 and Ctrl-C midway."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.cli import build_parser, config_from_args
from camouflage_video.dataset import config_hash, read_manifest
from camouflage_video.dataset.manifest import file_sha256
from camouflage_video.dataset.walk import walk
from tests.conftest import read_frames, run_cli
from tests.dataset.conftest import (
    CORRUPT,
    FAST,
    good_inputs,
    latest,
    manifest_lines,
    media_inputs,
    partial_files,
    start_cli,
)


def expected_hash(*args: str) -> str:
    """The configuration hash the CLI should record for these options."""
    return config_hash(config_from_args(build_parser().parse_args(["dataset", "in", "out", *args])))


@pytest.fixture(scope="module")
def full_run(tree: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("full") / "anonymized"
    result = run_cli("dataset", str(tree), str(out), "--workers", "2", "--export-tracks", *FAST)
    return out, result


def test_full_run_mirrors_the_tree_and_reports_the_corrupt_files(tree: Path, full_run) -> None:
    out, result = full_run
    good = good_inputs(tree)
    assert result.returncode == 1, result.stderr  # failures are in the exit code...
    assert f"{len(good)} anonymized, 0 already done, 2 failed of {len(good) + 2}" in result.stderr  # ...and summary
    records = latest(out)
    assert sorted(records) == sorted(media_inputs(tree) + ["README.txt", "labels/boxes.csv"])
    for name in good:
        record = records[name]
        assert record["status"] == "done", record
        assert (out / record["output"]).is_file()
        assert record["sha256"] == file_sha256(tree / name)
        assert record["config_hash"] == expected_hash(*FAST)
        assert record["method"] == "blur" and record["error"] is None
        assert record["frames"] >= 1 and record["fallback_frames"] == 0 and record["seconds"] > 0
    assert records["clips/legacy.avi"]["output"] == "clips/legacy.mp4"
    for name in CORRUPT:
        assert records[name]["status"] == "failed"
        assert "not a readable" in records[name]["error"]
        assert not (out / name).exists()
    # Other files are listed, not copied; hidden ones are not even listed; no temporary is left.
    assert records["README.txt"]["status"] == "listed" and not (out / "README.txt").exists()
    assert ".DS_Store" not in records
    assert not partial_files(out)


@pytest.mark.parametrize(
    "name",
    [
        "clips/day1/cam1.mp4",
        "clips/vfr.mp4",
        "clips/legacy.avi",
        "clips/day2/cam4.webm",
        "real/asl_thanks.mkv",
    ],
)
def test_videos_keep_frame_count_timestamps_and_size(tree: Path, full_run, name: str) -> None:
    out, _ = full_run
    if not (tree / name).exists():
        pytest.skip(f"{name} needs the shared real media")
    record = latest(out)[name]
    frames_in, pts_in, tb_in = read_frames(tree / name)
    frames_out, pts_out, tb_out = read_frames(out / record["output"])
    assert len(frames_out) == len(frames_in) == record["frames"]
    assert [round(float(p * tb_out), 3) for p in pts_out] == [round(float(p * tb_in), 3) for p in pts_in]
    assert frames_out[0].shape == frames_in[0].shape


def test_images_keep_their_size_and_format(tree: Path, full_run) -> None:
    out, _ = full_run
    for name in good_inputs(tree):
        if Path(name).suffix in (".png", ".jpg", ".webp", ".bmp"):
            original, anonymized = cv2.imread(str(tree / name)), cv2.imread(str(out / name))
            assert anonymized is not None and anonymized.shape == original.shape, name


def test_exported_tracks_locate_the_faces_that_were_blurred(tree: Path, full_run) -> None:
    out, _ = full_run
    record = latest(out)["clips/day1/cam1.mp4"]
    with open(out / record["tracks_file"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["frame", "time", "track_id", "x1", "y1", "x2", "y2", "score", "held"]
    assert sorted({int(r["frame"]) for r in rows}) == list(range(record["frames"]))  # the face, every frame
    assert {int(r["track_id"]) for r in rows[2:]} == {0}  # one person, one confirmed track
    frames_in, _, _ = read_frames(tree / "clips/day1/cam1.mp4")
    frames_out, _, _ = read_frames(out / "clips/day1/cam1.mp4")
    row = rows[5]
    x1, y1, x2, y2 = (int(float(row[k])) for k in ("x1", "y1", "x2", "y2"))
    i = int(row["frame"])
    inside = np.abs(frames_out[i][y1:y2, x1:x2].astype(int) - frames_in[i][y1:y2, x1:x2]).mean()
    assert inside > 8, "the exported box is not where the output was blurred"


def test_rerun_skips_finished_retries_failed_and_a_new_config_redoes_all(tree: Path, full_run, tmp_path: Path) -> None:
    done, _ = full_run
    out = tmp_path / "anonymized"
    shutil.copytree(done, out)
    good = good_inputs(tree)
    lines = len(manifest_lines(out))
    mtimes = {n: (out / latest(out)[n]["output"]).stat().st_mtime_ns for n in good}

    again = run_cli("dataset", str(tree), str(out), "--workers", "2", "--export-tracks", *FAST)
    assert again.returncode == 1
    assert f"0 anonymized, {len(good)} already done, 2 failed" in again.stderr
    added = manifest_lines(out)[lines:]
    assert sorted(r["input"] for r in added) == sorted(CORRUPT)  # only the failed ones were tried again
    assert all((out / latest(out)[n]["output"]).stat().st_mtime_ns == mtimes[n] for n in good)

    changed = run_cli("dataset", str(tree), str(out), "--method", "pixelate", "--copy-other", *FAST)
    assert changed.returncode == 1
    assert f"{len(good)} anonymized, 0 already done" in changed.stderr
    records = latest(out)
    assert all(records[n]["config_hash"] == expected_hash("--method", "pixelate", *FAST) for n in good)
    assert all(records[n]["method"] == "pixelate" and records[n]["status"] == "done" for n in good)
    # Without --export-tracks the old tracks (of the replaced outputs) are gone; labels are copied now.
    assert not list(out.rglob("*.tracks.csv"))
    assert (out / "labels/boxes.csv").read_text() == (tree / "labels/boxes.csv").read_text()
    assert records["labels/boxes.csv"]["status"] == "copied"


def _wait_for_done(out: Path, proc, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {proc.stderr.read()}")
        done = [r for r in read_manifest(out / "camouflage_manifest.jsonl") if r["status"] == "done"]
        if done:
            return len(done)
        time.sleep(0.02)
    pytest.fail("no file finished in time")


def _check_resumed(tree: Path, out: Path) -> None:
    resumed = run_cli("dataset", str(tree), str(out), "--workers", "2", *FAST)
    assert resumed.returncode == 1, resumed.stderr
    lines = manifest_lines(out)  # every line complete JSON
    for name in good_inputs(tree):
        done = [r for r in lines if r["input"] == name and r["status"] == "done"]
        assert len(done) == 1, f"{name} finished {len(done)} times"
        assert (out / done[0]["output"]).stat().st_size == done[0]["output_size"]
    assert not partial_files(out)


def _complete_outputs_only(tree: Path, out: Path) -> None:
    """Every video under a final name is a whole output: all its frames decode."""
    good = set(good_inputs(tree))
    for entry in walk(tree):
        target = out / entry.output
        if entry.relative in good and target.exists() and entry.kind == "video":
            frames, _, _ = read_frames(target)
            assert len(frames) == len(read_frames(tree / entry.relative)[0]), f"{target} is incomplete"


def test_kill_9_midway_then_resume_processes_every_input_exactly_once(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "anonymized"
    proc = start_cli("dataset", str(tree), str(out), "--workers", "2", *FAST)
    finished = _wait_for_done(out, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the node dies: driver and workers at once
    proc.wait(timeout=30)
    proc.stdout.close(), proc.stderr.close()
    assert finished < len(good_inputs(tree)), "the run was not killed midway"
    _complete_outputs_only(tree, out)
    _check_resumed(tree, out)


def test_ctrl_c_finishes_the_files_in_flight_and_resume_does_the_rest(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "anonymized"
    proc = start_cli("dataset", str(tree), str(out), "--workers", "2", *FAST)
    _wait_for_done(out, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole process group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not partial_files(out)
    records = latest(out)
    assert len([r for r in records.values() if r["status"] == "done"]) < len(good_inputs(tree))
    for record in records.values():
        if record["status"] == "done":
            assert (out / record["output"]).stat().st_size == record["output_size"]
    _check_resumed(tree, out)


def test_repeated_ctrl_c_aborts_without_losing_the_finished_records(tree: Path, tmp_path: Path) -> None:
    """Presses in quick succession: the second aborts the files in flight, the later ones only wait."""
    import time

    out = tmp_path / "anonymized"
    proc = start_cli("dataset", str(tree), str(out), "--workers", "2", *FAST)
    _wait_for_done(out, proc)
    for _ in range(12):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.03)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "leaked semaphore" not in stderr  # the aborted workers let go of what they held
    assert not partial_files(out)
    records = latest(out)
    assert any(r["status"] == "done" for r in records.values())
    for record in records.values():
        if record["status"] == "done":
            assert (out / record["output"]).stat().st_size == record["output_size"]
    _check_resumed(tree, out)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{missing}", "{out}"], 1, "no such folder"),
        (["{raw}", "{raw}/anonymized"], 1, "must lie outside the input folder"),
        (["{raw}", "{out}", "--workers", "0"], 1, "workers must be at least 1"),
        (["{raw}", "{out}", "--address", "auto"], 1, "need --engine ray"),
        (["{raw}", "{out}", "--cpus-per-worker", "4"], 1, "--cpus-per-worker needs --engine ray"),
        (["{raw}", "{out}", "--engine", "ray", "--gpus-per-worker", "-1"], 1, "must not be negative"),
        (["{raw}", "{out}", "--engine", "spark"], 2, "invalid choice"),
    ],
)
def test_bad_invocations_fail_with_one_line_and_write_nothing(tmp_path: Path, args: list, code: int, message: str):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jpg").write_bytes(b"x")
    paths = {"raw": raw, "out": tmp_path / "out", "missing": tmp_path / "missing"}
    result = run_cli("dataset", *(a.format(**paths) for a in args))
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (raw / "anonymized").exists()


def test_the_ray_engine_without_ray_names_the_extra_to_install(tmp_path: Path, monkeypatch) -> None:
    import sys

    from camouflage_video.dataset import DatasetOptions, run_dataset
    from camouflage_video.errors import MissingDependencyError

    (tmp_path / "raw").mkdir()
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the 'dataset' extra looks like
    with pytest.raises(MissingDependencyError, match=r"camouflage-video\[dataset\]"):
        run_dataset(tmp_path / "raw", tmp_path / "out", options=DatasetOptions(engine="ray"))
    assert not (tmp_path / "out").exists()
