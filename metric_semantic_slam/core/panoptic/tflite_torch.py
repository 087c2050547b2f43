"""Run a small float TFLite graph with torch (CPU or CUDA, fp32 or fp16), no TFLite runtime needed.

:class:`TfliteTorchGraph` turns a :class:`~.tflite_reader.TfliteModel` into a ``torch.nn.Module``: the
constant tensors become buffers (fp16 weights are dequantized once, at load time) and ``forward`` runs
the operators in the file's order. Activations are kept as NCHW tensors (torch's layout); the graph's
input and output are NHWC, as in TFLite. Batches of any size run in one pass.

Supported operators (what MediaPipe's selfie-segmentation models use, plus a few trivial ones):
CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN (over H, W), ADD, SUB, MUL, DIV,
RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR, CONCATENATION (NHWC
axis), DEQUANTIZE (fp16 -> fp32 constants), and MediaPipe's custom ``Convolution2DTransposeBias``.
Anything else (or a quantized int8 graph) raises ValueError when the graph is built, naming the op.

TFLite semantics kept exactly: SAME padding is asymmetric (the extra row/column goes after, as in
TensorFlow), average pooling with SAME padding divides by the number of valid pixels, bilinear resize
follows ``align_corners`` / ``half_pixel_centers``.
"""
from __future__ import annotations

import struct
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .tflite_reader import TfliteModel, TfliteOperator

__all__ = ["TfliteTorchGraph", "SUPPORTED_OPS", "same_padding"]

SUPPORTED_OPS: frozenset[str] = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "ADD", "SUB", "MUL", "DIV",
    "RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "CONCATENATION", "DEQUANTIZE", "Convolution2DTransposeBias",
})

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: (before, after), the odd pixel after.

    Output size is ``ceil(size / stride)``.
    """
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _activation(code: int, op: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if code == 0:
        return lambda x: x
    if code == 1:
        return F.relu
    if code == 2:
        return lambda x: x.clamp(-1.0, 1.0)
    if code == 3:
        return lambda x: x.clamp(0.0, 6.0)
    if code == 4:
        return torch.tanh
    raise ValueError(f"{op}: fused activation {code} is not supported")


def _pad_same(x: torch.Tensor, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1,
              value: float = 0.0) -> torch.Tensor:
    top, bottom = same_padding(x.shape[2], kh, sh, dh)
    left, right = same_padding(x.shape[3], kw, sw, dw)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class TfliteTorchGraph(torch.nn.Module):
    """A TFLite model's first subgraph as a torch module.

    Shape: ``forward(x)`` takes the graph's single input (B, H, W, C) float (NHWC, as TFLite) and
    returns a list of its outputs, each NHWC (B, ...). H and W must be those of the file (the graph's
    constant shapes, e.g. resize targets, were computed for them). Raises ValueError when the model uses
    an unsupported operator, is quantized, or has more than one input.
    """

    def __init__(self, model: TfliteModel) -> None:
        super().__init__()
        if len(model.inputs) != 1:
            raise ValueError(f"only single-input graphs are supported, this one has {len(model.inputs)}")
        unsupported = sorted({op.op for op in model.operators} - SUPPORTED_OPS)
        if unsupported:
            raise ValueError(f"TFLite operators not supported by the torch runner: {unsupported}")
        for t in model.tensors:
            if t.quantized and t.type_name in ("INT8", "UINT8", "INT16"):
                raise ValueError(f"quantized tensor {t.name!r} ({t.type_name}): quantized graphs are not supported")
        self.input_index = model.inputs[0]
        self.output_indices = tuple(model.outputs)
        self.input_shape = model.tensors[self.input_index].shape  # NHWC, batch 1 in the file
        self._shapes = {t.index: t.shape for t in model.tensors}
        self._const_np: dict[int, np.ndarray] = {}
        for t in model.tensors:
            if t.data is not None:
                self._const_np[t.index] = t.data
        # DEQUANTIZE of a constant is done once here: its output becomes a constant too
        ops: list[TfliteOperator] = []
        for op in model.operators:
            if op.op == "DEQUANTIZE" and op.inputs[0] in self._const_np:
                self._const_np[op.outputs[0]] = self._const_np[op.inputs[0]].astype(np.float32)
            else:
                ops.append(op)
        # one closure per operator, reading its inputs from the tensor-index -> activation dict
        self._steps: list[tuple[TfliteOperator, Callable[[dict[int, torch.Tensor]], torch.Tensor]]] = [
            (op, self._build(op)) for op in ops]

    # -- constants -----------------------------------------------------------------------------
    def _const(self, index: int, as_: str = "raw") -> str:
        """Register a constant tensor as a buffer (converted to a torch layout) and return its name.

        Buffers follow ``.to(device)`` / ``.half()`` of the module.
        """
        key = f"c{index}_{as_}"
        if hasattr(self, key):
            return key
        arr = self._const_np.get(index)
        if arr is None:
            raise ValueError(f"tensor {index} must be a constant here (weights, bias, sizes)")
        a = np.asarray(arr, dtype=np.float32)
        if as_ == "conv":  # OHWI -> OIHW
            a = a.transpose(0, 3, 1, 2)
        elif as_ == "dw":  # (1, KH, KW, C*M) -> (C*M, 1, KH, KW)
            a = a[0].transpose(2, 0, 1)[:, None]
        elif as_ == "tconv":  # (O, KH, KW, I) -> torch's transposed-conv weight (I, O, KH, KW)
            a = a.transpose(3, 0, 1, 2)
        elif as_ == "nchw":  # an elementwise operand: NHWC rank 4 -> NCHW; a vector broadcasts over C
            if a.ndim == 4:
                a = a.transpose(0, 3, 1, 2)
            elif a.ndim == 1:
                a = a.reshape(1, -1, 1, 1)
            elif a.ndim != 0:
                raise ValueError(f"constant elementwise operand of rank {a.ndim} is not supported")
        # a copy: file data is read-only, and torch wants to own its buffers
        self.register_buffer(key, torch.from_numpy(np.array(a, dtype=np.float32, order="C")), persistent=False)
        return key

    def _buf(self, key: str) -> torch.Tensor:
        return getattr(self, key)

    # -- operators -----------------------------------------------------------------------------
    def _operand(self, index: int) -> Callable[[dict[int, torch.Tensor]], torch.Tensor]:
        """A getter for an elementwise operand: a runtime activation, or a constant cast to the
        graph's compute dtype (the input's, stored under key -1) so fp16 never silently upcasts."""
        if index in self._const_np:
            key = self._const(index, "nchw")
            return lambda env: self._buf(key).to(dtype=env[-1].dtype)
        return lambda env: env[index]

    def _build(self, op: TfliteOperator) -> Callable[[dict[int, torch.Tensor]], torch.Tensor]:
        o, name, ins = op.options, op.op, op.inputs
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w_key = self._const(ins[1], "conv" if name == "CONV_2D" else "dw")
            b_key = self._const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            wshape = self._const_np[ins[1]].shape
            kh, kw = wshape[1], wshape[2]
            sh, sw, dh, dw = o["stride_h"], o["stride_w"], o["dilation_h"], o["dilation_w"]
            groups = 1
            if name == "DEPTHWISE_CONV_2D":
                cin = self._shapes[ins[0]][3]
                if wshape[3] != cin * max(1, o["depth_multiplier"]):
                    raise ValueError(f"DEPTHWISE_CONV_2D: weights {wshape} do not match {cin} input channels")
                groups = cin
            same, act = o["padding"] == 0, _activation(o["activation"], name)

            def conv(env: dict, x_i=ins[0]) -> torch.Tensor:
                x = env[x_i]
                if same:
                    x = _pad_same(x, kh, kw, sh, sw, dh, dw)
                w = self._buf(w_key).to(x.dtype)
                b = self._buf(b_key).to(x.dtype) if b_key else None
                return act(F.conv2d(x, w, b, stride=(sh, sw), dilation=(dh, dw), groups=groups))
            return conv
        if name == "Convolution2DTransposeBias":
            # custom options: MediaPipe's TfLiteTransposeConvParams {padding (1 SAME, 2 VALID), stride_w, stride_h}
            if len(op.custom_options) < 12:
                raise ValueError(f"{name}: custom options have {len(op.custom_options)} bytes, expected 12")
            pad_code, sw, sh = struct.unpack_from("<iii", op.custom_options, 0)
            w_key = self._const(ins[1], "tconv")
            b_key = self._const(ins[2])
            wshape = self._const_np[ins[1]].shape
            kh, kw = wshape[1], wshape[2]
            if pad_code not in (1, 2):
                raise ValueError(f"{name}: unknown padding code {pad_code}")
            same = pad_code == 1

            def tconv(env: dict, x_i=ins[0]) -> torch.Tensor:
                x = env[x_i]
                y = F.conv_transpose2d(x, self._buf(w_key).to(x.dtype), None, stride=(sh, sw))
                if same:  # TensorFlow SAME: output = input * stride, cropped as the forward conv pads
                    oh, ow = x.shape[2] * sh, x.shape[3] * sw
                    top, left = max(kh - sh, 0) // 2, max(kw - sw, 0) // 2
                    y = y[:, :, top:top + oh, left:left + ow]
                    if y.shape[2] < oh or y.shape[3] < ow:  # kernel smaller than stride: zero rows/cols
                        y = F.pad(y, (0, ow - y.shape[3], 0, oh - y.shape[2]))
                return y + self._buf(b_key).to(x.dtype).reshape(1, -1, 1, 1)
            return tconv
        if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            kh, kw, sh, sw = o["filter_h"], o["filter_w"], o["stride_h"], o["stride_w"]
            same, act, is_avg = o["padding"] == 0, _activation(o["activation"], name), name == "AVERAGE_POOL_2D"

            def pool(env: dict, x_i=ins[0]) -> torch.Tensor:
                x = env[x_i]
                if is_avg:
                    if not same:
                        return act(F.avg_pool2d(x, (kh, kw), (sh, sw)))
                    # SAME average pooling counts only the valid pixels of each window
                    ones = torch.ones_like(x[:1, :1])
                    s = F.avg_pool2d(_pad_same(x, kh, kw, sh, sw), (kh, kw), (sh, sw))
                    n = F.avg_pool2d(_pad_same(ones, kh, kw, sh, sw), (kh, kw), (sh, sw))
                    return act(s / n)
                if same:
                    x = _pad_same(x, kh, kw, sh, sw, value=float("-inf"))
                return act(F.max_pool2d(x, (kh, kw), (sh, sw)))
            return pool
        if name == "MEAN":
            axes = tuple(sorted(_NHWC_TO_NCHW_AXIS[int(a) % 4] for a in np.asarray(self._const_np[ins[1]]).ravel()))
            if axes != (2, 3):
                raise ValueError(f"MEAN over NHWC axes other than (1, 2) is not supported (got NCHW axes {axes})")
            keep = bool(o["keep_dims"])
            if not keep:
                raise ValueError("MEAN without keep_dims is not supported")
            return lambda env, x_i=ins[0]: env[x_i].mean(dim=(2, 3), keepdim=True)
        if name in ("ADD", "SUB", "MUL", "DIV"):
            a, b, act = self._operand(ins[0]), self._operand(ins[1]), _activation(o["activation"], name)
            fn = {"ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul, "DIV": torch.div}[name]
            return lambda env: act(fn(a(env), b(env)))
        unary = {"RELU": F.relu, "RELU6": lambda x: x.clamp(0.0, 6.0), "LOGISTIC": torch.sigmoid,
                 "TANH": torch.tanh, "HARD_SWISH": F.hardswish,
                 "DEQUANTIZE": lambda x: x.float()}
        if name in unary:
            f = unary[name]
            return lambda env, x_i=ins[0]: f(env[x_i])
        if name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
            size = tuple(int(v) for v in np.asarray(self._const_np[ins[1]]).ravel())
            if len(size) != 2:
                raise ValueError(f"{name}: size must have 2 values, got {size}")
            align, half = bool(o["align_corners"]), bool(o["half_pixel_centers"])
            if name == "RESIZE_BILINEAR":
                if align and half:
                    raise ValueError(f"{name}: align_corners and half_pixel_centers together are invalid")
                if not align and not half:
                    # legacy TF: src = dst * in / out, no half-pixel shift; sample via grid_sample
                    return lambda env, x_i=ins[0]: _resize_legacy_bilinear(env[x_i], size)
                return lambda env, x_i=ins[0]: F.interpolate(env[x_i], size=size, mode="bilinear",
                                                             align_corners=align)
            if align or not half:
                # TF legacy nearest (floor(dst * in / out)) is torch's "nearest"
                if align:
                    raise ValueError(f"{name}: align_corners is not supported")
                return lambda env, x_i=ins[0]: F.interpolate(env[x_i], size=size, mode="nearest")
            return lambda env, x_i=ins[0]: F.interpolate(env[x_i], size=size, mode="nearest-exact")
        if name == "CONCATENATION":
            axis = _NHWC_TO_NCHW_AXIS[int(o["axis"]) % 4]
            getters = [self._operand(i) for i in ins]
            act = _activation(o["activation"], name)
            return lambda env: act(torch.cat([g(env) for g in getters], dim=axis))
        raise ValueError(f"TFLite operator {name!r} is not supported")  # unreachable: checked in __init__

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the graph. Shape: (B, H, W, C) NHWC -> list of NHWC outputs (B, H', W', C')."""
        expect = self.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(expect[1:]):
            raise ValueError(f"graph input must be (B, {expect[1]}, {expect[2]}, {expect[3]}) NHWC, got "
                             f"{tuple(x.shape)}")
        env: dict[int, torch.Tensor] = {-1: x, self.input_index: x.permute(0, 3, 1, 2)}
        for op, step in self._steps:
            env[op.outputs[0]] = step(env)
        return [env[i].permute(0, 2, 3, 1) if env[i].ndim == 4 else env[i] for i in self.output_indices]


def _resize_legacy_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow's legacy bilinear resize (no align_corners, no half-pixel centers): src = dst * in/out."""
    h, w = x.shape[2], x.shape[3]
    ys = torch.arange(size[0], device=x.device, dtype=torch.float32) * (h / size[0])
    xs = torch.arange(size[1], device=x.device, dtype=torch.float32) * (w / size[1])
    y0 = ys.floor().long().clamp(max=h - 1)
    x0 = xs.floor().long().clamp(max=w - 1)
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    fy = (ys - y0.float()).to(x.dtype)[:, None]
    fx = (xs - x0.float()).to(x.dtype)[None, :]
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bot = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy) + bot * fy
