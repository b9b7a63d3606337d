"""The manifest survives crashes: torn last lines, stale temporaries, a second run on the same folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import pytest

from camouflage_video.config import AnonymizeConfig
from camouflage_video.dataset import DatasetOptions, config_hash, read_manifest, run_dataset
from camouflage_video.dataset.manifest import MANIFEST_NAME, RUNS_NAME, Manifest, resolved_settings
from camouflage_video.errors import OutputError
from camouflage_video.sinks.video import EncoderOptions
from tests.dataset.conftest import latest, manifest_lines, partial_files

RECORD = {"input": "a.jpg", "status": "done", "config_hash": "h"}


def test_reader_ignores_a_torn_last_line_and_skips_a_bad_middle_one(tmp_path: Path, caplog) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text(
        json.dumps({**RECORD, "input": "a.jpg"})
        + "\n"
        + "{not json\n"
        + json.dumps({**RECORD, "input": "b.jpg"})
        + "\n"
        + '{"input": "c.jpg", "sta'  # a run was killed while appending
    )
    with caplog.at_level(logging.WARNING):
        records = read_manifest(path)
    assert [r["input"] for r in records] == ["a.jpg", "b.jpg"]
    assert "line 2 is not valid JSON" in caplog.text


def test_a_new_run_cuts_the_torn_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text(json.dumps(RECORD) + "\n" + '{"input": "b.jpg", "stat')
    with Manifest(tmp_path) as manifest:
        assert list(manifest.latest) == ["a.jpg"]
        manifest.append({**RECORD, "input": "c.jpg"})
    assert [r["input"] for r in manifest_lines(tmp_path)] == ["a.jpg", "c.jpg"]


def test_only_one_run_may_write_to_an_output_folder(tmp_path: Path) -> None:
    with Manifest(tmp_path), pytest.raises(OutputError, match="another dataset run"):
        Manifest(tmp_path).open()
    with Manifest(tmp_path):  # released with the first run
        pass


def test_records_need_a_known_status(tmp_path: Path) -> None:
    with Manifest(tmp_path) as manifest, pytest.raises(ValueError, match="status"):
        manifest.append({"input": "a.jpg", "status": "maybe"})


@pytest.mark.parametrize(
    "change",
    [
        {"method": "pixelate"},
        {"mask_scale": 1.5},
        {"det_size": 640},
        {"audio": False},
        {"encoder": EncoderOptions(crf=23)},
    ],
)
def test_config_hash_covers_every_option(change: dict) -> None:
    base = AnonymizeConfig()
    assert config_hash(base) == config_hash(AnonymizeConfig())
    assert config_hash(base.with_options(**change)) != config_hash(base)


@pytest.mark.parametrize("method", ["base", "light"])
def test_config_hash_covers_generative_options_but_not_their_spelling(method: str) -> None:
    default = AnonymizeConfig(method=method)
    assert config_hash(default.with_options(generative={"steps": 4})) != config_hash(default)
    # Resolved options are hashed: naming a default changes nothing, neither does kebab-case.
    assert config_hash(default.with_options(generative={"steps": 25})) == config_hash(default)
    assert config_hash(default.with_options(generative={"guidance-scale": 7.0})) == config_hash(default)


def test_generative_options_do_not_matter_to_the_classic_methods() -> None:
    blur = AnonymizeConfig(method="blur")
    assert config_hash(blur.with_options(generative={"steps": 4})) == config_hash(blur)


def _toml(path: Path, steps: int) -> Path:
    path.write_text(f"steps = {steps}\nanonymization_scale = 1.25\n")
    return path


def test_config_hash_covers_the_toml_contents_not_its_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _toml(tmp_path / "my.toml", steps=10)
    spelled = [AnonymizeConfig(method="base", generative={"config": c}) for c in ("my.toml", "./my.toml")]
    absolute = AnonymizeConfig(method="base", generative={"config": str(tmp_path / "my.toml")})
    before = config_hash(spelled[0])
    assert config_hash(spelled[1]) == config_hash(absolute) == before
    # The same options given as flags are the same configuration.
    assert config_hash(AnonymizeConfig(method="base", generative={"steps": 10, "anonymization_scale": 1.25})) == before
    _toml(tmp_path / "my.toml", steps=12)  # the user edits the file between two runs
    assert config_hash(spelled[0]) != before


def test_the_recorded_configuration_is_resolved_and_has_no_secrets(tmp_path: Path) -> None:
    url = "https://user:hunter2@models.example/sd.safetensors?token=s3cret"
    config = AnonymizeConfig(
        method="base", generative={"config": str(_toml(tmp_path / "my.toml", 10)), "models": {"base": url}}
    )
    settings = resolved_settings(config)
    generative = settings["generative"]
    assert "config" not in generative  # the contents, not a path that can change under the run
    assert generative["steps"] == 10 and generative["anonymization_scale"] == 1.25
    assert generative["resolution"] == 768  # defaults are recorded too
    text = json.dumps(settings)
    assert "hunter2" not in text and "s3cret" not in text
    assert "models.example/sd.safetensors" in text


def test_the_runs_log_records_the_resolved_configuration(photos: Path, tmp_path: Path) -> None:
    config = AnonymizeConfig(det_size=320, generative={"steps": 4})  # ignored by blur
    run_dataset(photos, tmp_path / "out", config)
    (run,) = [json.loads(line) for line in (tmp_path / "out" / RUNS_NAME).read_text().splitlines()]
    assert run["config"] == resolved_settings(config)
    assert run["config"]["generative"] == {}
    assert run["config_hash"] == config_hash(config) == latest(tmp_path / "out")["p0.png"]["config_hash"]


@pytest.fixture
def photos(tmp_path: Path, astronaut) -> Path:
    root = tmp_path / "raw"
    root.mkdir()
    for i, size in enumerate(((96, 96), (128, 96), (64, 80))):
        cv2.imwrite(str(root / f"p{i}.png"), cv2.cvtColor(cv2.resize(astronaut, size), cv2.COLOR_RGB2BGR))
    return root


def test_a_rerun_after_a_crash_repairs_the_manifest_and_removes_leftovers(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = AnonymizeConfig(det_size=320)
    first = run_dataset(photos, out, config)
    assert (first.processed, first.failed) == (3, 0)
    # What kill -9 leaves: half a record at the end, and a temporary file under a hidden name.
    with open(out / MANIFEST_NAME, "a") as f:
        f.write('{"input": "p1.png", "status": "do')
    leftover = out / ".p9.x1y2.partial.png"
    leftover.write_bytes(b"half")
    before = (out / "p0.png").stat().st_mtime_ns

    second = run_dataset(photos, out, config)
    assert (second.processed, second.skipped, second.partials_removed) == (0, 3, 1)
    assert not partial_files(out)
    assert len(manifest_lines(out)) == 3  # complete lines only, nothing redone
    assert (out / "p0.png").stat().st_mtime_ns == before


def test_touched_inputs_are_compared_by_content_and_changed_ones_redone(
    photos: Path, tmp_path: Path, astronaut
) -> None:
    out = tmp_path / "out"
    config = AnonymizeConfig(det_size=320)
    run_dataset(photos, out, config)
    touched = (photos / "p0.png").stat().st_mtime_ns + 5 * 10**9
    os.utime(photos / "p0.png", ns=(touched, touched))  # same content, new timestamp (a copy without -t)
    cv2.imwrite(str(photos / "p1.png"), cv2.cvtColor(cv2.resize(astronaut[::-1], (96, 96)), cv2.COLOR_RGB2BGR))

    summary = run_dataset(photos, out, config)
    assert (summary.processed, summary.skipped) == (1, 2)
    records = latest(out)
    assert records["p1.png"]["size"] == (photos / "p1.png").stat().st_size


def test_an_output_name_taken_by_another_input_is_a_failure_of_its_own(tmp_path: Path) -> None:
    from fractions import Fraction

    from camouflage_video.samples import make_sample_video

    raw = tmp_path / "raw"
    raw.mkdir()
    small = {"seconds": 0.2, "fps": Fraction(10), "size": (64, 48), "audio": None}
    make_sample_video(raw / "cam.mp4", **small)
    make_sample_video(raw / "cam.avi", codec="mpeg4", **small)  # would become cam.mp4 too
    summary = run_dataset(raw, tmp_path / "out", AnonymizeConfig(det_size=320), DatasetOptions(workers=1))
    records = latest(tmp_path / "out")
    assert records["cam.mp4"]["status"] == "done"  # the file that has the name keeps it
    assert records["cam.avi"]["status"] == "failed"
    assert "cam.mp4 is taken by cam.mp4" in records["cam.avi"]["error"]
    assert summary.failed == 1


def test_switching_the_detector_runtime_redoes_nothing() -> None:
    """onnxruntime and OpenCV DNN run the same network (same boxes): a finished dataset stays finished."""
    base = AnonymizeConfig()
    assert config_hash(base.with_options(detector_backend="opencv")) == config_hash(base)


def _photo(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def test_the_recorded_configuration_does_not_name_the_reference_photos(tmp_path: Path) -> None:
    # The runs file ships with the anonymized dataset; a photo's file name often names the person.
    photo = _photo(tmp_path / "jane_doe_erasure_request.jpg", b"a photo")
    for name in ("keep_person", "only_person"):
        settings = resolved_settings(AnonymizeConfig(**{name: (photo,)}))
        assert "jane_doe" not in json.dumps(settings)
        assert settings[name] == "1 photo"


def test_config_hash_covers_the_reference_photos_contents_not_their_path(tmp_path: Path, monkeypatch) -> None:
    # Another person's photo saved under the same name must redo the files, not keep the first person visible.
    monkeypatch.chdir(tmp_path)
    photo = _photo(tmp_path / "subject.jpg", b"person A")
    before = config_hash(AnonymizeConfig(keep_person=("subject.jpg",)))
    assert config_hash(AnonymizeConfig(keep_person=(photo,))) == before
    assert config_hash(AnonymizeConfig(only_person=(photo,))) != before
    _photo(tmp_path / "subject.jpg", b"person B")
    assert config_hash(AnonymizeConfig(keep_person=("subject.jpg",))) != before


def test_a_full_disk_is_a_one_line_error_naming_the_file(tmp_path, small_disk, astronaut) -> None:
    from tests.conftest import run_cli

    raw, disk = tmp_path / "raw", small_disk(256 << 10)
    raw.mkdir()
    cv2.imwrite(str(raw / "a.jpg"), astronaut[..., ::-1])
    (disk / "out").mkdir()
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(filler, b"\0" * 4096):  # every block taken
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    result = run_cli("dataset", str(raw), str(disk / "out"), "-q")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(": cannot write (No space left on device)"), result.stderr
    assert "camouflage_" in result.stderr and len(result.stderr.strip().splitlines()) == 1
