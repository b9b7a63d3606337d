"""Model components: registry, where each comes from (hub id or local path), fetch, offline check, loading.

Every component of a generative method is named here with its default hub id. A user points any of them
at a hub id (``owner/name`` or ``owner/name@revision``), a diffusers/transformers folder, or a single
``.safetensors`` file, through a TOML config or ``--model NAME=SPEC``; ``--models-dir DIR`` makes every hub
id resolve to ``DIR/<name>`` for offline use (``camouflage-video models fetch base --models-dir DIR`` fills
it). Weights load as safetensors only. The controlnet-aux annotators (openpose, normalbae, lineart) are
published only as pickled ``.pth`` files: ``models fetch`` converts them once to ``.safetensors`` with
``torch.load(weights_only=True)`` (a loader that cannot run code), and runs load only the converted files.

CAMOUFLaGE-Light adds its components with ``register`` and a preset of its own.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

SD15_FILES = (
    "model_index.json", "scheduler/scheduler_config.json", "tokenizer/*", "text_encoder/config.json",
    "text_encoder/model.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
)
DIFFUSERS_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
TRANSFORMERS_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
CAPTIONER_FILES = (*TRANSFORMERS_FILES, "tokenizer*", "special_tokens_map.json", "vocab.txt")
# What a local folder must hold (the hub listings above also carry optional files).
REQUIRED_LOCAL = {
    "sd15": ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
             "text_encoder/model.safetensors", "tokenizer/*"),
    "vae": DIFFUSERS_MODEL_FILES,
    "controlnet": DIFFUSERS_MODEL_FILES,
    "depth": ("config.json", "model.safetensors"),
    "segmentation": ("config.json", "model.safetensors"),
    "captioner": ("config.json", "model.safetensors"),
}
SD15_SCHEDULER = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon", "steps_offset": 1, "timestep_spacing": "leading",
}


@dataclass(frozen=True)
class Component:
    """One model a method needs.

    Attributes:
        name: Key in configs and ``--model NAME=SPEC`` (``base``, ``controlnet-depth``, ``annotator-seg``...).
        default: Hub id used when nothing else is configured; ``None`` if there is no public checkpoint.
        kind: How it loads: ``sd15``, ``vae``, ``controlnet``, ``depth``, ``segmentation``, ``captioner``, or
            a controlnet-aux annotator (``openpose``, ``normalbae``, ``lineart``).
        files: Hub files (glob patterns) that ``models fetch`` downloads.
        pickles: Upstream pickled files that ``models fetch`` converts to ``<stem>.safetensors``.
        note: One line for ``models list``.

    A component published outside the hub (pyfacer's weights are GitHub release assets) has its download URL
    as ``default``; ``models fetch`` stores it in ``<models-dir or cache>/<name>/``, converted to safetensors
    if it is a pickle. ``kind="torchscript"`` marks TorchScript archives, which load as published.
    """

    name: str
    default: str | None
    kind: str
    files: tuple[str, ...] = ()
    pickles: tuple[str, ...] = ()
    note: str = ""

    @property
    def safetensors_files(self) -> tuple[str, ...]:
        return tuple(Path(p).stem + ".safetensors" for p in self.pickles)


COMPONENTS: dict[str, Component] = {}
PRESETS: dict[str, list[str]] = {}


def register(component: Component, presets: Iterable[str] = ()) -> None:
    """Add a component to the registry and to the named presets (``models list base``)."""
    COMPONENTS[component.name] = component
    for preset in presets:
        PRESETS.setdefault(preset, [])
        if component.name not in PRESETS[preset]:
            PRESETS[preset].append(component.name)


for _component in (
    Component("base", "SG161222/Realistic_Vision_V5.1_noVAE", "sd15", SD15_FILES,
              note="Stable Diffusion 1.5 fine-tune (UNet, text encoder, tokenizer)"),
    Component("vae", "stabilityai/sd-vae-ft-mse", "vae", DIFFUSERS_MODEL_FILES, note="SD 1.5 VAE"),
    Component("controlnet-depth", "lllyasviel/control_v11f1p_sd15_depth", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-normalbae", "lllyasviel/control_v11p_sd15_normalbae", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-seg", "lllyasviel/control_v11p_sd15_seg", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-openpose", "lllyasviel/control_v11p_sd15_openpose", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("controlnet-lineart", "lllyasviel/control_v11p_sd15_lineart", "controlnet", DIFFUSERS_MODEL_FILES),
    Component("identity", "lllyasviel/control_v11f1e_sd15_tile@refs/pr/4", "controlnet", DIFFUSERS_MODEL_FILES,
              note="identity ControlNet; default is the public tile ControlNet, an approximation"),
    Component("annotator-depth", "depth-anything/Depth-Anything-V2-Small-hf", "depth", TRANSFORMERS_FILES,
              note="relative depth (transformers)"),
    Component("annotator-seg", "openmmlab/upernet-convnext-base", "segmentation", TRANSFORMERS_FILES,
              note="ADE20k segmentation (transformers UperNet)"),
    Component("annotator-normalbae", "lllyasviel/Annotators", "normalbae", pickles=("scannet.pt",),
              note="surface normals (controlnet-aux NormalBae)"),
    Component("annotator-openpose", "lllyasviel/Annotators", "openpose",
              pickles=("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
              note="body, hands and face pose (controlnet-aux OpenPose)"),
    Component("annotator-lineart", "lllyasviel/Annotators", "lineart", pickles=("sk_model.pth",),
              note="realistic lineart (controlnet-aux)"),
    Component("captioner", "Salesforce/blip-image-captioning-base", "captioner", CAPTIONER_FILES,
              note="automatic prompt when none is given (transformers BLIP)"),
):
    register(_component, presets=("base",))


@dataclass(frozen=True)
class ModelSource:
    """Where one component loads from: a local ``path``, or a hub ``repo_id`` at ``revision``."""

    component: str
    spec: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def pretrained(self) -> str:
        """The first argument of ``from_pretrained``."""
        return str(self.path) if self.path is not None else str(self.repo_id)

    @property
    def single_file(self) -> bool:
        return self.path is not None and self.path.suffix == ".safetensors"

    def describe(self) -> str:
        hub = None if self.repo_id is None else self.repo_id + (f"@{self.revision}" if self.revision else "")
        hub = hub or self.url
        if self.path is None:
            return str(hub)
        return str(self.path) if hub is None else f"{hub} -> {self.path}"

    @property
    def url(self) -> str | None:
        """The download URL of a component published outside the hub."""
        return self.spec if _is_url(self.spec) else None


def cache_home() -> Path:
    """Where converted annotator weights go when no ``--models-dir`` is given."""
    root = os.environ.get("CAMOUFLAGE_VIDEO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "camouflage-video"
    )
    return Path(root)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def _is_hub_id(spec: str) -> bool:
    """``owner/name`` or ``owner/name@revision`` that is not an existing path or a weights file name."""
    return bool(_HUB_ID.match(spec)) and not spec.endswith(".safetensors") and not Path(spec).expanduser().exists()


def _is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


def _split_hub_id(spec: str) -> tuple[str, str | None]:
    repo_id, _, revision = spec.partition("@")
    return repo_id, revision or None


def local_name(repo_id: str) -> str:
    """Folder name of a hub repo inside ``--models-dir``: the repo's own name."""
    return repo_id.split("/")[-1]


def resolve(name: str, spec: str | None = None, models_dir: str | os.PathLike[str] | None = None) -> ModelSource:
    """Where component ``name`` loads from, given its configured ``spec`` (``None``: the default).

    Raises:
        ConfigError: Unknown component, no source for a component without a default, or a path that is not
            a folder or a ``.safetensors`` file.
    """
    if name not in COMPONENTS:
        raise ConfigError(f"unknown model component {name!r}; known: {', '.join(COMPONENTS)}")
    component = COMPONENTS[name]
    spec = spec or component.default
    if not spec:
        raise ConfigError(f"{name}: no public checkpoint exists; set it in the config or with --model {name}=PATH")
    if _is_url(spec):
        return ModelSource(name, spec, path=Path(models_dir or cache_home()).expanduser() / name)
    if not _is_hub_id(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ConfigError(f"{name}: {path} does not exist")
        if path.is_file() and path.suffix != ".safetensors" and component.kind != "torchscript":
            raise ConfigError(f"{name}: {path} is not a .safetensors file (weights load as safetensors only)")
        return ModelSource(name, spec, path=path)
    repo_id, revision = _split_hub_id(spec)
    if models_dir is not None:
        local = Path(models_dir).expanduser() / local_name(repo_id)
        return ModelSource(name, spec, path=local, repo_id=repo_id, revision=revision)
    if component.pickles:
        # Converted annotator weights live outside the HF cache (it only holds files as published).
        converted = cache_home() / repo_id.replace("/", "--")
        return ModelSource(name, spec, path=converted, repo_id=repo_id, revision=revision)
    return ModelSource(name, spec, repo_id=repo_id, revision=revision)


def resolve_all(
    names: Iterable[str], specs: Mapping[str, str] | None = None, models_dir: str | os.PathLike[str] | None = None
) -> dict[str, ModelSource]:
    specs = dict(specs or {})
    unknown = sorted(set(specs) - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"unknown model component(s) {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
    return {name: resolve(name, specs.get(name), models_dir) for name in names}


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML config of a generative method, keys in snake_case; relative paths are relative to the file."""
    toml = require("tomllib", "diffusion") if sys.version_info >= (3, 11) else require("tomli", "diffusion")
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    out = {key.replace("-", "_"): value for key, value in data.items()}
    # Relative model paths are relative to the config file, not to wherever the command runs.
    base = Path(path).resolve().parent
    for key in ("models_dir", "base_config"):
        if key in out:
            out[key] = _relative_to(base, out[key])
    if isinstance(out.get("models"), dict):
        out["models"] = {name: _relative_to(base, spec) for name, spec in out["models"].items()}
    return out


def layered_options(
    options: Mapping[str, Any],
    tables: Iterable[str] = ("models",),
    normalize: Callable[[str, Any], Any] | None = None,
) -> dict[str, Any]:
    """Merge a generative method's options: the TOML file at ``options["config"]``, then the other keys.

    Keys may be kebab- or snake-case; ``None`` values are ignored (an unset CLI flag). Keys named in
    ``tables`` are merged entry by entry; ``normalize(key, value)`` may rewrite a value of each layer first.
    The dataclass that receives the result supplies the defaults.
    """
    merged: dict[str, Any] = {}
    layers = [read_toml(options["config"])] if options.get("config") else []
    layers.append({k.replace("-", "_"): v for k, v in options.items() if k != "config"})
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if normalize is not None:
                value = normalize(key, value)
            if key in tables:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{key.replace('_', '-')} must be a table of name = value")
                value = {**merged.get(key, {}), **value}
            merged[key] = value
    return merged


def _relative_to(base: Path, spec: Any) -> Any:
    """``spec`` as a path under ``base`` when it names something there; otherwise unchanged (a hub id)."""
    if isinstance(spec, str) and not os.path.isabs(spec) and (base / spec).exists():
        return str(base / spec)
    return spec


def selected_components(preset: str, generative: Mapping[str, Any]) -> tuple[list[str], dict[str, str], str | None]:
    """Components a method's configuration needs, their configured specs and the models folder."""
    if preset == "base":
        from camouflage_video.pipelines.camouflage_base import BaseOptions, needed_components

        options = BaseOptions.from_mapping(generative)
        return needed_components(options), dict(options.models), options.models_dir
    if preset == "light":
        from camouflage_video.pipelines.camouflage_light import LightOptions, needed_components

        light = LightOptions.from_mapping(generative)
        names = needed_components(light)
        if "t2i-adapter" not in light.models:
            names.remove("t2i-adapter")  # no public checkpoint: train-light makes it (and needs the others)
        return names, dict(light.models), light.models_dir
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    config = read_toml(generative["config"]) if generative.get("config") else {}
    specs = {**config.get("models", {}), **generative.get("models", {})}
    return list(PRESETS[preset]), specs, generative.get("models_dir") or config.get("models_dir")


# -- fetch and check ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """Whether one component can load without the network."""

    component: str
    source: str
    ok: bool
    detail: str


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check(sources: Mapping[str, ModelSource]) -> list[CheckResult]:
    """Check that every file the loaders need is present locally (a folder, a file, or the HF cache).

    Nothing is downloaded and nothing is loaded: a present but corrupt file shows up only when a run loads it.
    """
    results = []
    for name, source in sources.items():
        component = COMPONENTS[name]
        if source.path is not None:
            missing = _missing_local(component, source.path)
            detail = "ok" if not missing else f"missing {', '.join(missing)}"
            if missing and (source.repo_id is not None or source.url is not None):
                detail += " (camouflage-video models fetch downloads it)"
            results.append(CheckResult(name, source.describe(), not missing, detail))
            continue
        try:
            folder = _snapshot(source, component.files, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any hub-client failure means "not available offline"
            results.append(CheckResult(name, source.describe(), False, f"not in the HF cache ({type(exc).__name__})"))
            continue
        missing = _missing_local(component, Path(folder))
        results.append(CheckResult(name, source.describe(), not missing,
                                   f"cached at {folder}" if not missing else f"cache lacks {', '.join(missing)}"))
    return results


def fetch(sources: Mapping[str, ModelSource]) -> list[CheckResult]:
    """Download hub components (to the HF cache, or into ``--models-dir`` folders) and convert pickles.

    Raises:
        ModelError: ``HF_HUB_OFFLINE`` is set, or a download fails.
    """
    if hub_offline():
        raise ModelError("HF_HUB_OFFLINE is set: models fetch needs the network (models check works offline)")
    done: set[tuple] = set()
    for name, source in sources.items():
        component = COMPONENTS[name]
        if source.url is not None:
            _fetch_url(source, component)
            continue
        if source.repo_id is None:
            continue  # a local path given by the user: nothing to download
        key = (source.repo_id, source.revision, component.files, component.pickles, str(source.path))
        if key in done:
            continue
        done.add(key)
        logger.info("fetching %s (%s)", name, source.describe())
        try:
            if component.pickles:
                _fetch_and_convert(source, component)
            else:
                local_dir = source.path if source.path is not None else None
                _snapshot(source, component.files, local_files_only=False, local_dir=local_dir)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into one clear line for the CLI
            raise ModelError(f"{name}: cannot download {source.describe()}: {type(exc).__name__}: {exc}") from exc
    return check(sources)


def _snapshot(source: ModelSource, patterns: tuple[str, ...], *, local_files_only: bool, local_dir: Any = None) -> str:
    hub = require("huggingface_hub", "diffusion")
    return hub.snapshot_download(
        source.repo_id, revision=source.revision, allow_patterns=list(patterns),
        local_files_only=local_files_only, local_dir=local_dir,
    )


def _fetch_and_convert(source: ModelSource, component: Component) -> None:
    hub = require("huggingface_hub", "diffusion")
    target = source.path
    assert target is not None  # resolve() always gives pickled annotators a local folder
    target.mkdir(parents=True, exist_ok=True)
    for filename in component.pickles:
        out = target / (Path(filename).stem + ".safetensors")
        if out.exists():
            continue
        downloaded = hub.hf_hub_download(source.repo_id, filename, revision=source.revision)
        convert_pickle(Path(downloaded), out)


def _fetch_url(source: ModelSource, component: Component) -> None:
    """Download a file published outside the hub into the component's folder (pickles converted)."""
    torch = require("torch", "diffusion")
    assert source.path is not None and source.url is not None  # resolve() gives URL components a folder
    filename = Path(urlparse(source.url).path).name
    pickled = filename in component.pickles
    target = source.path / (Path(filename).stem + ".safetensors" if pickled else filename)
    if target.exists():
        return
    source.path.mkdir(parents=True, exist_ok=True)
    temporary = source.path / f".{filename}.download"
    try:
        torch.hub.download_url_to_file(source.url, str(temporary), progress=True)
        if pickled:
            convert_pickle(temporary, target)
        else:
            os.replace(temporary, target)
    except Exception as exc:  # noqa: BLE001 - turned into one clear line for the CLI
        raise ModelError(f"{source.component}: cannot download {source.url}: {type(exc).__name__}: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def convert_pickle(src: Path, dst: Path) -> None:
    """Convert an upstream pickled state dict to safetensors, reading it with the tensors-only unpickler."""
    torch = require("torch", "diffusion")
    safetensors_torch = require("safetensors.torch", "diffusion", package="safetensors")
    state = torch.load(src, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # NormalBae's scannet.pt wraps its state dict
    state = {k.removeprefix("module."): v.contiguous() for k, v in state.items() if hasattr(v, "contiguous")}
    temporary = dst.with_name(f".{dst.name}.tmp")
    safetensors_torch.save_file(state, str(temporary))
    os.replace(temporary, dst)


def _missing_local(component: Component, path: Path) -> list[str]:
    if path.is_file():
        return []
    if not path.is_dir():
        return [str(path)]
    required = component.safetensors_files or REQUIRED_LOCAL.get(component.kind, component.files)
    files = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    return [pattern for pattern in required if not fnmatch.filter(files, pattern)]


# -- loading ------------------------------------------------------------------------------------------


def _load_failure(source: ModelSource, exc: BaseException) -> ModelError:
    hint = ""
    if source.path is None:
        hint = " (HF_HUB_OFFLINE is set and it is not in the HF cache: run `camouflage-video models fetch`)" \
            if hub_offline() else " (check the hub id, the network, or point it at a local folder)"
    return ModelError(f"{source.component}: cannot load {source.describe()}: {type(exc).__name__}: {exc}{hint}")


def _from_pretrained(cls: Any, source: ModelSource, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(source.pretrained, revision=source.revision, use_safetensors=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load"
        raise _load_failure(source, exc) from exc


def load_sd15(source: ModelSource, dtype: Any, config: str | None = None) -> dict[str, Any]:
    """UNet, text encoder, tokenizer and scheduler config of an SD 1.5 model (folder, hub id or single file).

    A single ``.safetensors`` checkpoint needs the SD 1.5 configs and tokenizer: diffusers takes them from
    the hub (cached after the first time) or from ``config``, a diffusers folder or hub id.
    """
    diffusers = require("diffusers", "diffusion")
    transformers = require("transformers", "diffusion")
    if source.single_file:
        try:
            pipe = diffusers.StableDiffusionPipeline.from_single_file(
                str(source.path), torch_dtype=dtype, config=config, load_safety_checker=False,
            )
        except Exception as exc:  # noqa: BLE001
            raise _load_failure(source, exc) from exc
        return {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer,
                "scheduler_config": dict(pipe.scheduler.config)}
    unet = _from_pretrained(diffusers.UNet2DConditionModel, source, subfolder="unet", torch_dtype=dtype)
    text_encoder = _from_pretrained(transformers.CLIPTextModel, source, subfolder="text_encoder", torch_dtype=dtype)
    try:
        tokenizer = transformers.CLIPTokenizer.from_pretrained(
            source.pretrained, subfolder="tokenizer", revision=source.revision
        )
    except Exception as exc:  # noqa: BLE001
        raise _load_failure(source, exc) from exc
    scheduler_config = dict(SD15_SCHEDULER)
    try:
        scheduler_config.update(diffusers.DPMSolverSDEScheduler.load_config(
            source.pretrained, subfolder="scheduler", revision=source.revision
        ))
    except Exception:  # noqa: BLE001 - a base without a scheduler folder uses SD 1.5's training schedule
        logger.debug("%s has no scheduler config; using SD 1.5's", source.describe())
    return {"unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler_config": scheduler_config}


def load_vae(source: ModelSource, dtype: Any) -> Any:
    return _load_diffusers_model("AutoencoderKL", source, dtype)


def load_controlnet(source: ModelSource, dtype: Any) -> Any:
    return _load_diffusers_model("ControlNetModel", source, dtype)


def _load_diffusers_model(class_name: str, source: ModelSource, dtype: Any) -> Any:
    """A diffusers model from a hub id, a folder or a single ``.safetensors`` file."""
    model_class = getattr(require("diffusers", "diffusion"), class_name)
    if source.single_file:
        try:
            return model_class.from_single_file(str(source.path), torch_dtype=dtype)
        except Exception as exc:  # noqa: BLE001
            raise _load_failure(source, exc) from exc
    return _from_pretrained(model_class, source, torch_dtype=dtype)


def load_transformers_model(auto_class: str, source: ModelSource) -> tuple[Any, Any]:
    """A transformers model (``AutoModelFor...`` class name) and its processor, safetensors only."""
    transformers = require("transformers", "annotators")
    if source.single_file:
        raise ConfigError(f"{source.component}: needs a transformers folder or hub id, not a single file")
    model = _from_pretrained(getattr(transformers, auto_class), source)
    try:
        processor = transformers.AutoProcessor.from_pretrained(source.pretrained, revision=source.revision)
    except Exception as exc:  # noqa: BLE001
        raise _load_failure(source, exc) from exc
    return model.eval(), processor


def load_state_dict(source: ModelSource, filename: str) -> dict[str, Any]:
    """A converted annotator state dict ``<folder>/<filename>`` (safetensors only)."""
    safetensors_torch = require("safetensors.torch", "diffusion", package="safetensors")
    path = source.path / filename if source.path is not None and source.path.is_dir() else source.path
    if path is None or not path.is_file():
        where = source.path if source.path is not None else source.describe()
        raise ModelError(
            f"{source.component}: {filename} not found in {where}; `camouflage-video models fetch` converts the "
            f"upstream weights once, or point {source.component} at a folder holding {filename}"
        )
    return safetensors_torch.load_file(str(path))


@contextlib.contextmanager
def quiet_stdout():  # noqa: ANN201 - context manager
    """controlnet-aux prints progress while building some networks; keep the CLI's output clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
