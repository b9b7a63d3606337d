"""``train-light``: a few real steps on a handful of real face photos with tiny random models (tests/tiny_light.py).

The photos are read in place from the shared media folder (linked into a temporary data folder) plus
scikit-image's public-domain astronaut; the faces are detected by the real CenterFace detector and analysed
by pyfacer's FaRL classifier architecture with random weights.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from camouflage_video.cli import main
from camouflage_video.errors import ConfigError, InputError, InputNotFoundError
from camouflage_video.training.light import TrainLightOptions, checkpoint_dirs, sample_indices, train_light
from tests.conftest import media_file

torch = pytest.importorskip("torch")
pytest.importorskip("facer")
pytest.importorskip("accelerate")

PHOTOS = ("identity/fr_kit_harington_1.jpg", "identity/fr_rose_leslie_1.jpg", "identity/deepface/img25.jpg")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    from tests.tiny_light import save_tiny_light_models, tiny_light_components

    folder = tmp_path_factory.mktemp("tiny_light")
    return save_tiny_light_models(tiny_light_components(folder), folder / "models")


@pytest.fixture(scope="module")
def faces(tmp_path_factory, astronaut) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("faces")
    for relative in PHOTOS:
        os.symlink(media_file(relative), folder / Path(relative).name)
    (folder / "nested").mkdir()  # data folders are searched recursively
    cv2.imwrite(str(folder / "nested" / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return folder


def options(faces: Path, output: Path, models: dict, **changes) -> TrainLightOptions:
    settings = {"data_dir": str(faces), "output": str(output), "models": models, "resolution": 64, "batch_size": 2,
                "max_steps": 2, "checkpoint_every": 2, "log_every": 1, "device": "cpu", "learning_rate": 1e-3}
    return TrainLightOptions.from_mapping({**settings, **changes})


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def test_training_runs_logs_a_finite_loss_and_its_adapter_changes_the_pipeline(faces, models, tmp_path, astronaut):
    from camouflage_video.models import resolve
    from camouflage_video.pipelines.camouflage_light import load_t2i_adapter
    from tests.tiny_light import attribute_map, generate, make_pipeline, tiny_light_components

    output = tmp_path / "ckpt"
    result = train_light(options(faces, output, models, max_steps=3), progress=False)

    assert result.step == 3 and len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)
    log = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in log)
    # Everything written is safetensors or JSON (plus the cache's array-only .npz files).
    suffixes = {p.suffix for p in output.rglob("*") if p.is_file()}
    assert suffixes <= {".safetensors", ".json", ".jsonl", ".npz"}, suffixes
    assert [p.name for p in checkpoint_dirs(output)] == ["step-0000002", "step-0000003"]
    cache = json.loads((output / "attribute-cache" / "cache.json").read_text())
    assert cache["resolution"] == 64 and len(list((output / "attribute-cache").glob("*.npz"))) == len(PHOTOS) + 1

    # The trained adapter loads the way --t2i-adapter loads it, and changes what the pipeline makes.
    trained = load_t2i_adapter(resolve("t2i-adapter", str(output)), torch.float32)
    components = tiny_light_components(tmp_path / "fresh")
    import cv2

    photo = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)
    before = generate(make_pipeline(components), attribute_map(0.8), photo)
    after = generate(make_pipeline(components, adapter=trained), attribute_map(0.8), photo)
    assert np.abs(before - after).max() > 0.02


def test_training_resumes_exactly_where_a_checkpoint_left_off(faces, models, tmp_path, monkeypatch):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_light(options(faces, straight, models, max_steps=4), progress=False)
    train_light(options(faces, split, models, max_steps=2), progress=False)

    with pytest.raises(ConfigError, match="--resume"):
        train_light(options(faces, split, models, max_steps=4), progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        train_light(options(faces, split, models, max_steps=4, batch_size=1, resume=True), progress=False)

    # Continue through the command line, as a user would.
    config = tmp_path / "models.toml"
    config.write_text("[models]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in models.items()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["train-light", str(faces), "--output", str(split), "--config", str(config), "--resume",
                 "--resolution", "64", "--batch-size", "2", "--max-steps", "4", "--checkpoint-every", "2",
                 "--log-every", "1", "--device", "cpu", "--learning-rate", "1e-3", "-q"])
    assert code == 0
    a, b = adapter_weights(straight), adapter_weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (split / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_on_the_fly_analysis_gives_the_same_data_as_the_cache(faces, models, tmp_path):
    from camouflage_video.training.face_data import FaceImageDataset
    from camouflage_video.training.light import load_training_components

    opts = options(faces, tmp_path / "o", models)
    analyze = load_training_components(opts, "cpu", torch.float32)["analyze"]
    cached = FaceImageDataset(faces, analyze, 64, cache_dir=tmp_path / "cache")
    fly = FaceImageDataset(faces, analyze, 64, cache_dir=None)
    for index in range(len(fly)):
        a, b = cached[index], fly[index]
        again = cached[index]  # second read comes from the cache
        assert np.allclose(a["condition"], b["condition"], atol=1e-6)
        assert np.array_equal(a["condition"], again["condition"])
        assert a["pixels"].shape == (3, 64, 64) and a["condition"].shape == (41, 64, 64)
    assert sum(fly[i]["faces"] for i in range(len(fly))) >= 2  # real faces were found and encoded


def test_a_cache_made_with_other_settings_is_refused(faces, tmp_path):
    from camouflage_video.training.face_data import CacheKey, FaceImageDataset

    FaceImageDataset(faces, None, 64, tmp_path / "cache", CacheKey(64, 1.2, "centerface", "a"))
    with pytest.raises(ConfigError, match="other settings"):
        FaceImageDataset(faces, None, 64, tmp_path / "cache", CacheKey(128, 1.2, "centerface", "a"))


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("missing", InputNotFoundError, "no such data folder"),
        ("empty", InputError, "no images"),
        ("notes.txt", InputError, "not a folder"),
    ],
)
def test_bad_data_folders(tmp_path, name, error, message):
    from camouflage_video.training.face_data import list_images

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(error, match=message):
        list_images(tmp_path / name)


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["train-light", "/nonexistent/faces", "--output", "OUT", "--device", "cpu"], 1, "no such data folder"),
        (["train-light", "DATA", "--output", "OUT", "--mixed-precision", "fp8"], 2, "invalid choice"),
        (["train-light", "DATA"], 2, "--output"),
        (["train-light", "DATA", "--output", "OUT", "--max-steps", "0"], 1, "max-steps"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(tmp_path, capsys, argv, code, message):
    argv = [a.replace("OUT", str(tmp_path / "out")).replace("DATA", str(tmp_path)) for a in argv]
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    else:
        assert main(argv) == code
    assert message in capsys.readouterr().err


def test_data_order_is_a_function_of_the_step_and_shards_across_processes():
    opts = TrainLightOptions(data_dir="d", output="o", batch_size=3, seed=1)
    n = 10
    first_epoch = [i for step in range(2) for p in range(2) for i in sample_indices(step, 0, opts, n, p, 2)][:n]
    assert sorted(first_epoch) == list(range(n))  # each image once per epoch, across both processes
    assert sample_indices(5, 0, opts, n, 1, 2) == sample_indices(5, 0, opts, n, 1, 2)
    assert set(sample_indices(0, 0, opts, n, 0, 2)).isdisjoint(sample_indices(0, 0, opts, n, 1, 2))
