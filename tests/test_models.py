"""Model management: where components come from, offline checks, fetch under HF_HUB_OFFLINE, conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from camouflage_video import models
from camouflage_video.cli import main
from camouflage_video.errors import ConfigError, ModelError

pytest.importorskip("torch")
pytest.importorskip("diffusers")


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch):
    """An empty HF cache and converted-weights cache, with the hub switched off."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("CAMOUFLAGE_VIDEO_CACHE", str(tmp_path / "converted"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def test_defaults_are_the_published_hub_ids_of_the_paper_models(capsys):
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    for hub_id in (
        "SG161222/Realistic_Vision_V5.1_noVAE", "stabilityai/sd-vae-ft-mse", "lllyasviel/control_v11f1p_sd15_depth",
        "lllyasviel/control_v11p_sd15_normalbae", "lllyasviel/control_v11p_sd15_seg",
        "lllyasviel/control_v11p_sd15_openpose", "lllyasviel/control_v11p_sd15_lineart",
        "lllyasviel/control_v11f1e_sd15_tile",
    ):
        assert hub_id in listing


def test_sources_resolve_to_hub_ids_revisions_folders_and_models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMOUFLAGE_VIDEO_CACHE", str(tmp_path / "converted"))
    hub = models.resolve("controlnet-depth")
    assert (hub.repo_id, hub.revision, hub.path) == ("lllyasviel/control_v11f1p_sd15_depth", None, None)
    pinned = models.resolve("vae", "someone/vae@refs/pr/3")
    assert (pinned.repo_id, pinned.revision) == ("someone/vae", "refs/pr/3")
    folder = tmp_path / "my_controlnet"
    folder.mkdir()
    assert models.resolve("controlnet-seg", str(folder)).path == folder
    offline = models.resolve("controlnet-seg", None, models_dir=tmp_path)
    assert offline.path == tmp_path / "control_v11p_sd15_seg"
    converted = models.resolve("annotator-openpose")
    assert converted.path == tmp_path / "converted" / "lllyasviel--Annotators"


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("unet", None, "unknown model component"),
        ("base", "./no/such/folder", "does not exist"),
        ("base", "weights.bin", "not a .safetensors file"),
    ],
)
def test_bad_sources_are_config_errors(tmp_path, monkeypatch, name, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ConfigError, match=message):
        models.resolve(name, spec)


def test_check_passes_for_local_folders_and_flags_what_is_not_offline(tmp_path, offline_cache, capsys):
    from tests.tiny_models import save_tiny_models, tiny_components, write_config

    table = save_tiny_models(tiny_components(tmp_path), tmp_path / "models")
    del table["identity"]
    config = write_config(tmp_path / "local.toml", table, prompt="a person", anonymization_scale=0.0,
                          control_scales={"normalbae": 0.0, "seg": 0.0, "openpose": 0.0, "lineart": 0.0})
    (tmp_path / "annotator").mkdir()
    empty = f"annotator-depth={tmp_path / 'annotator'}"
    assert main(["models", "check", "--config", str(config), "--model", empty]) == 1
    out = capsys.readouterr().out
    assert "ok       base" in out and "ok       controlnet-depth" in out
    assert "MISSING  annotator-depth" in out and "model.safetensors" in out

    # A hub component that is not in the (empty) HF cache cannot load offline.
    assert main(["models", "check", "--config", str(config), "--model", "vae=stabilityai/sd-vae-ft-mse"]) == 1
    assert "MISSING  vae" in capsys.readouterr().out


def test_fetch_refuses_when_hf_hub_offline_is_set(offline_cache, capsys):
    assert main(["models", "fetch"]) == 1
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_annotator_pickles_are_converted_once_and_loaded_as_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("controlnet_aux")
    from camouflage_video.annotators.control_maps import build_control_annotator
    from tests.tiny_models import tiny_lineart_state

    state = tiny_lineart_state()
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "sk_model.pth")  # as DataParallel saves
    folder = tmp_path / "Annotators"
    folder.mkdir()
    models.convert_pickle(tmp_path / "sk_model.pth", folder / "sk_model.safetensors")
    annotator = build_control_annotator("lineart", models.resolve("annotator-lineart", str(folder)), resolution=64)
    loaded = annotator.detector.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="models fetch"):
        build_control_annotator("openpose", models.resolve("annotator-openpose", str(empty)))


def test_a_hub_model_missing_offline_is_a_model_error_naming_the_fix(offline_cache):
    source = models.resolve("vae")
    with pytest.raises(ModelError, match="models fetch"):
        models.load_vae(source, None)


def test_toml_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "weights").mkdir()
    config = tmp_path / "conf.toml"
    config.write_text('steps = 12\nmodels-dir = "weights"\n[models]\nbase = "weights"\n')
    data = models.read_toml(config)
    assert data["steps"] == 12
    assert Path(data["models_dir"]) == tmp_path / "weights"
    assert Path(data["models"]["base"]) == tmp_path / "weights"
    with pytest.raises(ConfigError, match="does not exist"):
        models.read_toml(tmp_path / "missing.toml")


def test_a_controlnet_folder_holding_only_the_published_fp16_variant_checks_and_loads(tmp_path, offline_cache):
    import torch

    from tests.tiny_models import tiny_components

    net = tiny_components(tmp_path)["controlnets"]["depth"].half()
    folder = tmp_path / "control_v11f1p_sd15_depth"
    net.save_pretrained(folder, variant="fp16")  # as lllyasviel's repos ship it, beside the fp32 file
    assert not (folder / "diffusion_pytorch_model.safetensors").exists()
    sources = models.resolve_all(["controlnet-depth"], {"controlnet-depth": str(folder)})
    assert all(result.ok for result in models.check(sources))
    loaded = models.load_controlnet(sources["controlnet-depth"], torch.float32)
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded.controlnet_mid_block.weight, net.controlnet_mid_block.weight.float())
