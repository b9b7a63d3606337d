"""A dataset run writes and deletes only inside its output folder, whatever links, mounts or a hand-edited
manifest point at: an input is never replaced or removed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset import run_dataset
from camouflage_video.dataset.manifest import MANIFEST_NAME, remove_partials
from camouflage_video.errors import ConfigError
from tests.dataset.conftest import latest

CONFIG = AnonymizeConfig(det_size=320, verify=False)


def _photo(path: Path, astronaut: np.ndarray, size: int = 128) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    face = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_output_folder_linked_into_the_input_neither_deletes_nor_replaces_an_input(tmp_path: Path,
                                                                                        astronaut) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    kept = {name: _photo(raw / name, astronaut, size) for name, size in
            (("sub/kit.jpg", 128), ("a/x.jpg", 120), ("b/x.jpg", 140), ("top.jpg", 100))}
    out.mkdir()
    os.symlink("../raw/sub", out / "sub")  # outputs of sub/ would be written over (or, failing, delete) inputs
    os.symlink("../raw/b", out / "a")  # a/x.jpg's output would replace b/x.jpg
    summary = run_dataset(raw, out, CONFIG)
    assert {name: _digest(raw / name) for name in kept} == kept  # every input as it was
    records = latest(out)
    for name in ("sub/kit.jpg", "a/x.jpg"):
        assert records[name]["status"] == "failed"
        assert "leads out of the output folder" in records[name]["error"] and "symbolic link" in records[name]["error"]
    assert records["b/x.jpg"]["status"] == records["top.jpg"]["status"] == "done"
    assert summary.failed == 2 and (out / "b" / "x.jpg").is_file()


def test_paths_in_a_hand_edited_manifest_never_delete_files_outside_the_output_folder(tmp_path: Path,
                                                                                      astronaut) -> None:
    raw, out, victim = tmp_path / "raw", tmp_path / "out", tmp_path / "victim.txt"
    kept = {name: _photo(raw / name, astronaut) for name in ("a.jpg", "b.jpg")}
    victim.write_text("precious")
    run_dataset(raw, out, CONFIG)
    with open(out / MANIFEST_NAME, "a") as manifest:
        for record in (
            {"input": "a.jpg", "kind": "other", "status": "copied", "output": "../raw/a.jpg", "size": 1},
            {"input": "b.jpg", "kind": "image", "status": "done", "output": "b.jpg", "config_hash": "older",
             "size": 1, "mtime_ns": 0, "tracks_file": str(victim)},
            {"input": ["a.jpg"], "status": "done"},  # not a file name: skipped
            {"input": "c.jpg", "kind": "other", "status": "copied", "output": 5},
        ):
            manifest.write(json.dumps(record) + "\n")
    summary = run_dataset(raw, out, CONFIG)
    assert {name: _digest(raw / name) for name in kept} == kept and victim.read_text() == "precious"
    assert summary.failed == 0 and summary.processed == 2


def test_an_output_folder_that_is_the_input_through_a_bind_mount_is_refused(tmp_path: Path, astronaut) -> None:
    raw, view = tmp_path / "raw", tmp_path / "view"
    _photo(raw / "a.jpg", astronaut)
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(raw), str(view)], capture_output=True).returncode:
        pytest.skip("a bind mount needs root")
    try:
        with pytest.raises(ConfigError, match="must lie outside the input folder"):
            run_dataset(raw, view / "anonymized", CONFIG)
        assert sorted(p.name for p in raw.iterdir()) == ["a.jpg"]
    finally:
        subprocess.run(["umount", "-l", str(view)], check=True)


@pytest.mark.parametrize("layout", ["OUT is a mount of IN/sub", "OUT/x is a mount of IN/sub",
                                    "IN holds a mount of OUT"])
def test_a_folder_of_the_input_mounted_in_the_output_tree_is_never_written(tmp_path: Path, astronaut,
                                                                          layout: str) -> None:
    """As `docker run -v raw:/in -v raw/sub:/out` does: the mount is the input's folder under another path."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    kept = {name: _photo(raw / name, astronaut, size) for name, size in
            (("a.jpg", 100), ("sub/a.jpg", 120), ("x/a.jpg", 140))}
    out.mkdir()
    source, mount = {"OUT is a mount of IN/sub": (raw / "sub", out),
                     "OUT/x is a mount of IN/sub": (raw / "sub", out / "x"),
                     "IN holds a mount of OUT": (out, raw / "mnt")}[layout]
    mount.mkdir(exist_ok=True)
    if subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True).returncode:
        pytest.skip("a bind mount needs root")
    try:
        if layout == "OUT/x is a mount of IN/sub":
            run_dataset(raw, out, CONFIG)
            records = latest(out)
            assert records["x/a.jpg"]["status"] == "failed" and "in the input folder" in records["x/a.jpg"]["error"]
        else:
            with pytest.raises(ConfigError, match="must lie outside the input folder"):
                run_dataset(raw, out, CONFIG)
        assert {name: _digest(raw / name) for name in kept} == kept
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_an_output_folder_inside_another_dataset_runs_output_is_refused(tmp_path: Path, astronaut) -> None:
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    _photo(first / "a.jpg", astronaut)
    _photo(second / "b.jpg", astronaut)
    run_dataset(first, out, CONFIG)
    with pytest.raises(ConfigError, match="inside another dataset run's output folder"):
        run_dataset(second, out / "sub", CONFIG)


def test_a_run_leaves_another_runs_output_folder_inside_its_own_alone(tmp_path: Path, astronaut) -> None:
    """The inner run came first; the outer one must neither clean up its temporaries nor write among its
    outputs."""
    inner_raw, outer_raw, out = tmp_path / "inner", tmp_path / "outer", tmp_path / "out"
    _photo(inner_raw / "b.jpg", astronaut)
    run_dataset(inner_raw, out / "sub", CONFIG)
    in_flight = out / "sub" / ".c.1234-abcd.partial.mp4"  # what the inner run is writing now
    in_flight.write_bytes(b"being written")
    _photo(outer_raw / "sub" / "b.jpg", astronaut, 100)  # its output would replace the inner run's b.jpg
    _photo(outer_raw / "top.jpg", astronaut)
    inner_output = _digest(out / "sub" / "b.jpg")
    run_dataset(outer_raw, out, CONFIG)
    assert in_flight.read_bytes() == b"being written" and remove_partials(out) == []
    assert _digest(out / "sub" / "b.jpg") == inner_output
    records = latest(out)
    assert records["sub/b.jpg"]["status"] == "failed" and "another dataset run's" in records["sub/b.jpg"]["error"]
    assert records["top.jpg"]["status"] == "done"


def test_an_output_folder_swapped_for_a_link_after_planning_is_not_written_through(tmp_path: Path,
                                                                                  astronaut) -> None:
    from camouflage_video.dataset.worker import FileWorker, Task

    raw, out = tmp_path / "raw", tmp_path / "out"
    kept = _photo(raw / "day1" / "a.png", astronaut)
    _photo(raw / "day1" / "a.jpg", astronaut, 120)  # a.jpg's output, a.jpg, lies beside another input there
    (out / "day1").mkdir(parents=True)
    worker = FileWorker(CONFIG)
    task = Task("day1/a.png", "day1/a.jpg", "image", str(raw / "day1" / "a.png"), str(out / "day1" / "a.jpg"))
    (out / "day1").rmdir()
    os.symlink("../raw/day1", out / "day1")  # after the run planned: the task still names out/day1/a.jpg
    before = _digest(raw / "day1" / "a.jpg")
    record = worker.process(task)
    assert record["status"] == "failed" and "now leads out of the output folder" in record["error"]
    assert _digest(raw / "day1" / "a.jpg") == before and _digest(raw / "day1" / "a.png") == kept
