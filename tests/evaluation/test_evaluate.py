"""End to end on real faces: an unchanged copy is caught, a strong pixelation passes, for images, videos and folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from camouflage_video.errors import ConfigError, InputError, InputNotFoundError, OutputError
from camouflage_video.evaluation import AttributeModel, EvaluationConfig, Evaluator, evaluate
from camouflage_video.frame import Faces
from tests.conftest import media_file, run_cli
from tests.evaluation.conftest import pixelate_faces, write_rgb


def test_unchanged_image_is_fully_reidentified_and_flagged(evaluator, astronaut_pair):
    result = evaluator.run(astronaut_pair["original"], astronaut_pair["copy"])
    summary = result.summary()
    assert summary["faces"] == 1
    assert summary["reidentification_rate"] == 1.0
    assert summary["verdict"] == "leak"
    assert [leak.distance for leak in result.leaks] == [0.0]
    assert summary["detected_rate"] == 1.0
    assert summary["fidelity_outside_faces"]["psnr_db"] == 100.0  # capped: identical pixels
    assert result.leak_cases and result.leak_cases[0].original_jpeg.startswith(b"\xff\xd8")  # thumbnail kept


@pytest.mark.parametrize("version", ["pixelated", "solid"])
def test_strong_obfuscation_is_not_reidentified(evaluator, astronaut_pair, version):
    result = evaluator.run(astronaut_pair["original"], astronaut_pair[version])
    summary = result.summary()
    assert summary["faces"] == 1
    assert summary["reidentification_rate"] == 0.0
    assert summary["verdict"] == "pass"
    assert summary["distance"]["min"] > evaluator.recognizer.threshold
    # Only the faces changed: the rest of the picture is untouched.
    assert summary["fidelity_outside_faces"]["psnr_db"] == 100.0
    assert summary["fidelity_outside_faces"]["ssim"] == pytest.approx(1.0)


def test_video_copy_leaks_on_every_analysed_frame_of_one_track(clip_copy_result):
    result = clip_copy_result
    summary = result.summary()
    assert summary["faces"] == 10  # 50 frames, every 5th analysed, one face each
    assert summary["identities"] == 1  # one track, its first (unconfirmed) frame included
    assert summary["reidentification_rate"] == 1.0
    assert summary["leak_frames"] == list(range(0, 50, 5))
    assert summary["identity_stability"]["anonymized_same_identity_rate"] == 1.0
    warp = summary["warping_error"]
    assert warp["pairs"] == 9 and warp["anonymized"] == warp["original"]


def test_pixelated_video_hides_the_identity_and_flickers_more(evaluator, clip_pair):
    result = evaluator.run(clip_pair["original"], clip_pair["pixelated"])
    summary = result.summary()
    assert summary["faces"] == 10
    assert summary["reidentification_rate"] <= 0.1
    assert summary["detected_rate"] <= 0.2  # a pixelated face is mostly no longer a face to CenterFace
    warp = summary["warping_error"]
    # The pixel blocks jump as the face moves: far more flicker inside faces than the original has.
    assert warp["anonymized_faces"] > 5 * warp["original_faces"]
    assert summary["fidelity_outside_faces"]["psnr_db"] > 35  # only the re-encode touched the rest
    assert [t["faces"] for t in result.tracks()] == [10]


def test_folders_are_paired_by_relative_path_and_leaks_named(evaluator, tmp_path):
    names = ["fr_kit_harington_1.jpg", "fr_rose_leslie_1.jpg", "fr_alex_lacamoire_1.jpg"]
    sources = [media_file(f"identity/{name}") for name in names]
    raw, anon = tmp_path / "raw", tmp_path / "anon"
    from camouflage_video.sources.images import read_image

    for i, source in enumerate(sources):
        image = read_image(source)
        write_rgb(raw / "people" / f"{source.stem}.png", image)
        # The second person is left unchanged by a faulty anonymizer; the others are pixelated.
        write_rgb(anon / "people" / f"{source.stem}.png", image if i == 1 else pixelate_faces(image))
    write_rgb(raw / "only_in_raw.png", np.zeros((64, 64, 3), np.uint8))
    result = evaluator.run(raw, anon)
    summary = result.summary()
    assert result.frames["paired"] == 3
    assert result.frames["unpaired_keys"] == ["only_in_raw.png"]
    assert [leak.key for leak in result.leaks] == ["people/fr_rose_leslie_1.png"]
    assert summary["identities"] == 3 and summary["gallery_identities"] == 3
    assert summary["rank1_chance"] == pytest.approx(1 / 3, abs=1e-3)
    ranks = {f.key: f.rank for f in result.faces}
    assert ranks["people/fr_rose_leslie_1.png"] == 1


def test_gallery_distractors_enlarge_the_search(evaluator, astronaut_pair, media_dir):
    from dataclasses import replace

    gallery = media_dir / "identity" / "deepface"
    names = ["img1.jpg", "img5.jpg", "img12.jpg"]
    folder = astronaut_pair["original"].parent / "gallery"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(gallery / name, folder / name)
    config = replace(evaluator.config, gallery=str(folder))
    result = Evaluator(config, recognizer=evaluator.recognizer).run(astronaut_pair["original"], astronaut_pair["copy"])
    summary = result.summary()
    assert summary["gallery_identities"] == 4
    assert summary["rank1_rate"] == 1.0  # an unchanged face is found among strangers
    pixelated = Evaluator(config, recognizer=evaluator.recognizer).run(
        astronaut_pair["original"], astronaut_pair["pixelated"]
    )
    assert pixelated.faces[0].rank >= 1 and pixelated.summary()["gallery_identities"] == 4


class _Brightness(AttributeModel):
    """Stand-in for facer's classifier (its weights cannot be downloaded here): is the face box bright?"""

    name = "test-brightness"
    labels = ("Bright", "Reddish")

    def predict(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        out = []
        for x1, y1, x2, y2 in faces.xyxy.astype(int):
            crop = image[y1:y2, x1:x2].astype(float) / 255
            out.append([crop.mean(), float(crop[..., 0].mean() > crop[..., 2].mean())])
        return np.array(out)


def test_attribute_agreement_compares_original_and_anonymized(recognizer, astronaut_pair):
    config = EvaluationConfig()
    same = Evaluator(config, recognizer=recognizer, attribute_model=_Brightness()).run(
        astronaut_pair["original"], astronaut_pair["copy"]
    )
    assert same.attributes["agreement"] == 1.0
    black = Evaluator(config, recognizer=recognizer, attribute_model=_Brightness()).run(
        astronaut_pair["original"], astronaut_pair["solid"]
    )
    assert black.attributes["per_attribute"]["Bright"] == 0.0
    assert black.attributes["agreement"] < 1.0


def test_interrupt_writes_what_was_analysed_and_reraises(recognizer, sample_clip, tmp_path):
    class Interrupting(type(recognizer)):
        calls = 0

        def embed_versions(self, *args):  # noqa: ANN202
            Interrupting.calls += 1
            if Interrupting.calls == 4:
                raise KeyboardInterrupt
            return recognizer.embed_versions(*args)

    fake = Interrupting.__new__(Interrupting)
    fake.__dict__.update(recognizer.__dict__)
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            sample_clip, sample_clip, recognizer=fake, step=5, report=tmp_path / "r.html", json_path=tmp_path / "m.json"
        )
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["interrupted"] is True
    assert data["summary"]["faces"] == 3
    assert "Interrupted" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize(
    ("original", "anonymized", "options", "error"),
    [
        ("{tmp}/missing.mp4", "{astronaut}", {}, InputNotFoundError),
        ("{astronaut}", "{clip}", {}, InputError),  # an image against a video
        ("{astronaut}", "{small}", {}, InputError),  # different sizes
        ("rtsp://127.0.0.1:9/live", "{astronaut}", {}, ConfigError),
        ("{astronaut}", "{astronaut}", {"step": 0}, ConfigError),
        ("{astronaut}", "{astronaut}", {"no_such_option": 1}, ConfigError),
        ("{astronaut}", "{astronaut}", {"recognizer": "nope"}, ConfigError),
        ("{astronaut}", "{astronaut}", {"pair_by": "nope"}, ConfigError),
        ("{astronaut}", "{astronaut}", {"leak_rule": "nope"}, ConfigError),
        ("{astronaut}", "{astronaut}", {"null_scale": 0.5}, ConfigError),
        ("{astronaut}", "{astronaut}", {"min_recovery": 1.5}, ConfigError),
        ("{astronaut}", "{astronaut}", {"min_face_size": -1}, ConfigError),
        ("{astronaut}", "{astronaut}", {"gallery": "{tmp}/no_gallery"}, InputNotFoundError),
    ],
)
def test_bad_inputs_raise_typed_errors(astronaut_pair, sample_clip, tmp_path, original, anonymized, options, error):
    from camouflage_video.sources.images import read_image

    small = write_rgb(tmp_path / "small.png", read_image(astronaut_pair["original"])[::2, ::2])
    paths = {"astronaut": astronaut_pair["original"], "clip": sample_clip, "small": small, "tmp": tmp_path}
    options = {k: v.format(**paths) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(error):
        evaluate(original.format(**paths), anonymized.format(**paths), **options)


def test_unwritable_report_fails_before_any_work(astronaut_pair, tmp_path):
    with pytest.raises(OutputError):
        evaluate(astronaut_pair["original"], astronaut_pair["copy"], report=tmp_path / "missing" / "r.html")


# -- the command line -----------------------------------------------------------------------------------


def test_cli_fail_on_leak_exits_non_zero_and_still_writes_both_files(astronaut_pair, tmp_path):
    report, metrics = tmp_path / "report.html", tmp_path / "metrics.json"
    result = run_cli(
        "evaluate",
        str(astronaut_pair["original"]),
        str(astronaut_pair["copy"]),
        "--report",
        str(report),
        "--json",
        str(metrics),
        "--fail-on-leak",
    )
    assert result.returncode == 3, result.stderr
    assert "leak" in result.stderr.splitlines()[-1]
    data = json.loads(metrics.read_text())
    assert data["summary"]["verdict"] == "leak" and data["summary"]["reidentification_rate"] == 1.0
    assert data["leaks"][0]["distance"] == 0.0
    assert report.read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob(".*partial*"))


def test_cli_passes_a_pixelated_folder(astronaut_pair, tmp_path):
    raw, anon = tmp_path / "raw", tmp_path / "anon"
    shutil.copy(astronaut_pair["original"], raw.mkdir() or raw / "a.png")
    shutil.copy(astronaut_pair["pixelated"], anon.mkdir() or anon / "a.png")
    result = run_cli("evaluate", str(raw), str(anon), "--fail-on-leak", "--json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("PASS: 1 faces, re-identification 0.0%")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.mp4", "{copy}"], "no such file or directory"),
        (["{original}", "{copy}", "--step", "0"], "step must be >= 1"),
        (["{original}", "{copy}", "--report", "{tmp}/no/such/dir/r.html"], "--report folder does not exist"),
        (["{original}", "{copy}", "--recognizer", "arcface"], "needs its ONNX file"),
        (["{original}", "{copy}", "--report", "{copy}"], "the --report is the input"),
        (["{original}", "{copy}", "--report", "{tmp}/r.html", "--json", "{tmp}/r.html"], "given as both"),
        (["{original}", "{copy}", "--run-stats", "{original}"], "not a readable --stats file"),
    ],
)
def test_cli_errors_are_one_line(astronaut_pair, tmp_path, args, message):
    values = {"copy": astronaut_pair["copy"], "original": astronaut_pair["original"], "tmp": tmp_path}
    result = run_cli("evaluate", *[a.format(**values) for a in args], "-q", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_the_report_shows_what_the_anonymizing_run_did(astronaut_pair, tmp_path):
    anonymized, stats = tmp_path / "anon.png", tmp_path / "stats.json"
    result = run_cli("anonymize", str(astronaut_pair["original"]), "-o", str(anonymized), "--stats", str(stats))
    assert result.returncode == 0, result.stderr
    report, metrics = tmp_path / "r.html", tmp_path / "m.json"
    result = run_cli("evaluate", str(astronaut_pair["original"]), str(anonymized), "--run-stats", str(stats),
                     "--report", str(report), "--json", str(metrics), "-q")
    assert result.returncode == 0, result.stderr
    run = json.loads(metrics.read_text())["summary"]["run"]
    expected = json.loads(stats.read_text())["model"]["verify"]
    assert run["verify"]["checks"] == expected["checks"] >= 1
    assert run["verify"]["escalations"] == expected["escalations"]
    html = report.read_text()
    assert 'id="run"' in html and "identity checks" in html and "escalations" in html



def test_the_original_face_moved_elsewhere_in_the_frame_is_a_leak(astronaut_pair, tmp_path):
    """Where the original's face was, the "anonymized" picture shows something else; the face itself is still
    there, moved: a gate that looked only at the original's face boxes would pass it."""
    from camouflage_video.sources.images import read_image

    original = read_image(astronaut_pair["original"])
    anonymized = write_rgb(tmp_path / "shifted.png", np.roll(original, original.shape[1] // 2, axis=1))
    result = run_cli("evaluate", str(astronaut_pair["original"]), str(anonymized), "--fail-on-leak", "-q")
    assert result.returncode == 3, result.stderr
    assert "a face away from every original face is an original's person (frames 0)" in result.stderr


@pytest.mark.parametrize(("turn", "how"), [(lambda image: image[:, ::-1], "mirrored"),
                                           (lambda image: image[::-1, ::-1], "turned 180"),
                                           (lambda image: np.rot90(image), "turned a quarter anticlockwise")])
def test_an_output_that_is_the_original_turned_is_judged_turned_back(astronaut_pair, tmp_path, turn, how):
    """An output that lost its rotation, or a flipped camera: its faces are where the turn put them, and a face
    turned upside down is found by no detector; the picture is turned back before it is judged."""
    from camouflage_video.sources.images import read_image

    original = read_image(astronaut_pair["original"])
    assert original.shape[0] == original.shape[1]  # a quarter turn keeps the size only of a square picture
    anonymized = write_rgb(tmp_path / "turned.png", np.ascontiguousarray(turn(original)))
    metrics = tmp_path / "m.json"
    result = run_cli("evaluate", str(astronaut_pair["original"]), str(anonymized), "--fail-on-leak", "-q",
                     "--json", str(metrics))
    assert result.returncode == 3, result.stderr
    assert "1 anonymized faces are re-identified" in result.stderr and how in result.stderr
    assert json.loads(metrics.read_text())["summary"]["turned_frames"] == {how: 1}


def test_arguments_the_wrong_way_round_fail_the_gate(astronaut_pair):
    result = run_cli("evaluate", str(astronaut_pair["solid"]), str(astronaut_pair["original"]), "--fail-on-leak", "-q")
    assert result.returncode == 3, result.stderr
    assert "shows faces in 1 of 1 pictures where the original shows none" in result.stderr


def test_anonymized_pictures_without_an_original_fail_the_gate(astronaut_pair, tmp_path):
    raw, anon = tmp_path / "raw", tmp_path / "anon"
    shutil.copy(astronaut_pair["original"], raw.mkdir() or raw / "a.png")
    shutil.copy(astronaut_pair["pixelated"], anon.mkdir() or anon / "a.png")
    shutil.copy(astronaut_pair["original"], anon / "renamed.png")  # checked against nothing
    result = run_cli("evaluate", str(raw), str(anon), "--fail-on-leak", "-q")
    assert result.returncode == 3, result.stderr
    assert "1 anonymized pictures have no original to compare with" in result.stderr


def _clip(path, frames):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "rgb24"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(("with_face", "status"), [(1, 0), (10, 3)])
def test_faces_in_a_few_anonymized_frames_only_are_no_sign_of_swapped_arguments(astronaut, tmp_path, with_face,
                                                                               status):
    """A detector fires now and then beside a blurred face (a shirt, a bag) where the original shows none; an
    original given for the anonymized version shows faces in most of its frames."""
    import cv2

    empty = np.full((256, 256, 3), 90, np.uint8)
    face = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    original = _clip(tmp_path / "original.mkv", [empty] * 10)
    anonymized = _clip(tmp_path / "anonymized.mkv", [face] * with_face + [empty] * (10 - with_face))
    result = run_cli("evaluate", str(original), str(anonymized), "--fail-on-leak", "-q")
    assert result.returncode == status, result.stderr
