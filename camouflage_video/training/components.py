"""What train-light loads: Light's frozen components (through the loader ``anonymize --method light`` uses),
the face analysis that writes the attribute maps, and the T2I-Adapter to train."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from camouflage_video._deps import require
from camouflage_video.errors import ConfigError


def load_training_components(options: Any, device: Any, dtype: Any) -> dict[str, Any]:
    """The frozen pipeline (SD 1.5 + IP-Adapter), VAE, noise scheduler, face analysis and the adapter to train,
    for ``options`` (a ``TrainLightOptions``)."""
    torch = require("torch", "light")
    diffusers = require("diffusers", "light")
    from camouflage_video import models
    from camouflage_video.annotators.attribute_map import MAP_CHANNELS
    from camouflage_video.annotators.attributes import (
        FaceAnalyzer,
        RetinaFaceDetector,
        classifier_from_source,
        retinaface_from_state_dict,
    )
    from camouflage_video.annotators.faces import CenterFaceDetector
    from camouflage_video.pipelines.adapters import AdapterPipeline, adapter_config_for
    from camouflage_video.pipelines.camouflage_light import conditioning_components, load_frozen_light

    conditioning = options.conditioning
    names = conditioning_components(conditioning)
    if options.face_detector == "retinaface":
        names.append("face-detector")
    specs = dict(options.models)
    if options.init_adapter:
        specs["t2i-adapter"] = options.init_adapter
        names.append("t2i-adapter")
    sources = models.resolve_all(names, specs, options.models_dir)

    classifier = classifier_from_source(sources["face-attributes"], device)
    if options.face_detector == "retinaface":
        state = models.load_state_dict(sources["face-detector"], models.RETINAFACE_FILE)
        detector: Any = RetinaFaceDetector(retinaface_from_state_dict(state, "mobilenet"), device=device)
    else:
        detector = CenterFaceDetector(thresh=0.5, det_size=options.resolution)
    analyzer = FaceAnalyzer(classifier, region_scale=conditioning.region_scale)

    def analyze(image: np.ndarray) -> Any:
        return analyzer.analyze(image, detector.detect(image))

    frozen, scheduler_config = load_frozen_light(
        conditioning, sources, options.base_config, device, dtype, load_dtype=torch.float32
    )
    if options.init_adapter:
        adapter = models.load_t2i_adapter(sources["t2i-adapter"], torch.float32)
        if adapter.config.in_channels != MAP_CHANNELS:
            raise ConfigError(f"--init-adapter reads {adapter.config.in_channels} channels, not {MAP_CHANNELS}")
    else:
        torch.manual_seed(options.seed)  # the fresh adapter's initialisation is part of the run's seed
        adapter = diffusers.T2IAdapter(**adapter_config_for(frozen["unet"], MAP_CHANNELS))
    pipeline = AdapterPipeline(
        **frozen, scheduler=diffusers.DDPMScheduler(**_ddpm_config(scheduler_config)), adapter=adapter.to(device),
    )
    pipeline.set_ip_adapter_scale(conditioning.ip_adapter_scale)
    for module in (pipeline.sd.unet, frozen["vae"], pipeline.sd.text_encoder, frozen["image_encoder"]):
        if module is not None:
            module.requires_grad_(False).eval()
    return {
        "pipeline": pipeline, "vae": frozen["vae"], "noise_scheduler": pipeline.sd.scheduler, "adapter": adapter,
        "analyze": analyze, "detector_name": options.face_detector,
        "classifier_name": sources["face-attributes"].describe(),
    }


def _ddpm_config(config: Mapping[str, Any]) -> dict[str, Any]:
    diffusers = require("diffusers", "light")
    accepted = inspect.signature(diffusers.DDPMScheduler.__init__).parameters
    # SD 1.5 never clips its samples; DDPMScheduler's default would (and warns when it is not set).
    return {"clip_sample": False, **{k: v for k, v in config.items() if k in accepted}}
