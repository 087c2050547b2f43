"""Read a TensorFlow Lite model file (a FlatBuffer) into plain Python records, without TensorFlow.

Only what is needed to run a small float model: the tensors (shape, dtype, constant data), the
operators of the first subgraph in execution order (builtin op name or custom op name, input/output
tensor indices, decoded options) and the graph's inputs/outputs. Quantized (int8/uint8) graphs are not
supported (they are rejected by the runner, not here).

The FlatBuffer format (google.github.io/flatbuffers, "internals"): a little-endian buffer whose first
uint32 is the offset of the root table; a table starts with an int32 pointing back (``table - value``)
to its vtable of uint16s ``[vtable_size, table_size, field_0_offset, field_1_offset, ...]`` (0 = field
absent, take the default); a reference field (table, vector, string) holds a uint32 offset relative to
the field's own position; vectors and strings start with a uint32 element count. Field numbers below
follow TensorFlow's ``tensorflow/compiler/mlir/lite/schema/schema.fbs``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TfliteTensor", "TfliteOperator", "TfliteModel", "read_tflite", "parse_tflite"]

# TensorType -> numpy dtype (schema.fbs enum TensorType); others are reported by name
_TENSOR_TYPES: dict[int, tuple[str, np.dtype | None]] = {
    0: ("FLOAT32", np.dtype("<f4")), 1: ("FLOAT16", np.dtype("<f2")), 2: ("INT32", np.dtype("<i4")),
    3: ("UINT8", np.dtype("u1")), 4: ("INT64", np.dtype("<i8")), 5: ("STRING", None), 6: ("BOOL", np.dtype("?")),
    7: ("INT16", np.dtype("<i2")), 8: ("COMPLEX64", None), 9: ("INT8", np.dtype("i1")),
    10: ("FLOAT64", np.dtype("<f8")),
}

# BuiltinOperator codes we can name (schema.fbs enum BuiltinOperator); unknown codes become "BUILTIN_<n>"
_BUILTIN_NAMES: dict[int, str] = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL",
    19: "RELU", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 25: "SOFTMAX", 28: "TANH", 32: "CUSTOM",
    34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV", 43: "SQUEEZE", 97: "RESIZE_NEAREST_NEIGHBOR",
    117: "HARD_SWISH",
}

# Options tables we decode: op name -> [(field name, scalar kind, default)] in field order.
# kinds: "b" int8, "B" uint8/bool, "i" int32. Padding enum: 0 SAME, 1 VALID.
# Activation enum: 0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6, 4 TANH, 5 SIGN_BIT.
_OPTION_FIELDS: dict[str, list[tuple[str, str, int]]] = {
    "CONV_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("activation", "b", 0),
                ("dilation_w", "i", 1), ("dilation_h", "i", 1)],
    "DEPTHWISE_CONV_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                          ("depth_multiplier", "i", 0), ("activation", "b", 0), ("dilation_w", "i", 1),
                          ("dilation_h", "i", 1)],
    "AVERAGE_POOL_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("filter_w", "i", 0),
                        ("filter_h", "i", 0), ("activation", "b", 0)],
    "MAX_POOL_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("filter_w", "i", 0),
                    ("filter_h", "i", 0), ("activation", "b", 0)],
    "ADD": [("activation", "b", 0)],
    "SUB": [("activation", "b", 0)],
    "MUL": [("activation", "b", 0)],
    "DIV": [("activation", "b", 0)],
    "CONCATENATION": [("axis", "i", 0), ("activation", "b", 0)],
    "RESIZE_BILINEAR": [("new_height", "i", 0), ("new_width", "i", 0), ("align_corners", "B", 0),
                        ("half_pixel_centers", "B", 0)],
    "RESIZE_NEAREST_NEIGHBOR": [("align_corners", "B", 0), ("half_pixel_centers", "B", 0)],
    "MEAN": [("keep_dims", "B", 0)],
    "SOFTMAX": [("beta", "f", 0)],
}


@dataclass
class TfliteTensor:
    """One tensor of the graph. ``shape`` is TFLite's (NHWC for images); ``data`` is the constant
    value (a read-only array of ``shape``) or None for activations."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    dtype: np.dtype | None
    data: np.ndarray | None
    quantized: bool


@dataclass
class TfliteOperator:
    """One operator: ``op`` is the builtin name (e.g. "CONV_2D") or, for a custom op, its custom code
    (e.g. "Convolution2DTransposeBias"); ``inputs``/``outputs`` are tensor indices (-1 = absent input);
    ``options`` the decoded builtin options; ``custom_options`` the raw custom bytes."""

    op: str
    is_custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_options: bytes = b""


@dataclass
class TfliteModel:
    """The first subgraph of a ``.tflite`` file: tensors, operators in execution order, graph I/O."""

    version: int
    description: str
    tensors: list[TfliteTensor]
    operators: list[TfliteOperator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def op_counts(self) -> dict[str, int]:
        """How many operators of each kind the graph uses."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return counts


class _Buf:
    """Bounds-checked little-endian reads of a FlatBuffer; every bad offset raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _unpack(self, fmt: str, pos: int) -> Any:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise ValueError(f"offset {pos} (+{size}) is outside the {len(self.data)}-byte file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u8(self, pos: int) -> int:
        return self._unpack("<B", pos)

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def u64(self, pos: int) -> int:
        return self._unpack("<Q", pos)


class _Table:
    """A FlatBuffer table at byte position ``pos``."""

    def __init__(self, buf: _Buf, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vtable = pos - buf.i32(pos)
        self.vtable_size = buf.u16(self.vtable)

    def _field_pos(self, slot: int) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        off = self.buf.u16(self.vtable + entry)
        return self.pos + off if off else None

    def scalar(self, slot: int, kind: str, default: Any = 0) -> Any:
        p = self._field_pos(slot)
        if p is None:
            return default
        return self.buf._unpack("<" + kind, p)

    def _ref(self, slot: int) -> int | None:
        p = self._field_pos(slot)
        return None if p is None else p + self.buf.u32(p)

    def table(self, slot: int) -> "_Table | None":
        p = self._ref(slot)
        return None if p is None else _Table(self.buf, p)

    def string(self, slot: int) -> str:
        p = self._ref(slot)
        if p is None:
            return ""
        n = self.buf.u32(p)
        return self.buf.data[p + 4:p + 4 + n].decode("utf-8", errors="replace")

    def vector(self, slot: int) -> tuple[int, int] | None:
        """(position of the first element, length) of a vector field, or None."""
        p = self._ref(slot)
        if p is None:
            return None
        n = self.buf.u32(p)
        return p + 4, n

    def bytes_vector(self, slot: int) -> bytes:
        v = self.vector(slot)
        if v is None:
            return b""
        start, n = v
        if start + n > len(self.buf.data):
            raise ValueError(f"vector at {start} (+{n}) is outside the {len(self.buf.data)}-byte file")
        return self.buf.data[start:start + n]

    def int_vector(self, slot: int) -> tuple[int, ...]:
        v = self.vector(slot)
        if v is None:
            return ()
        start, n = v
        return tuple(self.buf.i32(start + 4 * k) for k in range(n))

    def tables(self, slot: int) -> list["_Table"]:
        v = self.vector(slot)
        if v is None:
            return []
        start, n = v
        out = []
        for k in range(n):
            p = start + 4 * k
            out.append(_Table(self.buf, p + self.buf.u32(p)))
        return out


def _decode_options(op: str, table: _Table | None) -> dict[str, Any]:
    fields = _OPTION_FIELDS.get(op)
    if fields is None or table is None:
        return {name: default for name, _, default in (fields or [])}
    return {name: table.scalar(slot, kind, default) for slot, (name, kind, default) in enumerate(fields)}


def parse_tflite(data: bytes) -> TfliteModel:
    """Parse the bytes of a ``.tflite`` file. Raises ValueError when it is not a readable TFLite model."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (missing the 'TFL3' file identifier)")
    buf = _Buf(data)
    try:
        model = _Table(buf, buf.u32(0))
        version = model.scalar(0, "I", 0)
        # operator_codes: deprecated_builtin_code (int8, slot 0), custom_code (1), version (2),
        # builtin_code (int32, slot 3; newer files put codes > 127 only here)
        opcodes: list[tuple[str, bool]] = []
        for oc in model.tables(1):
            code = max(int(oc.scalar(0, "b", 0)), int(oc.scalar(3, "i", 0)))
            if code == 32:
                opcodes.append((oc.string(1), True))
            else:
                opcodes.append((_BUILTIN_NAMES.get(code, f"BUILTIN_{code}"), False))
        subgraphs = model.tables(2)
        if not subgraphs:
            raise ValueError("the model has no subgraph")
        description = model.string(3)
        # buffers: data (ubyte vector, slot 0); offset/size (slots 1, 2) for > 2 GB models
        buffers: list[bytes] = []
        for b in model.tables(4):
            raw = b.bytes_vector(0)
            if not raw:
                off, size = b.scalar(1, "Q", 0), b.scalar(2, "Q", 0)
                if off > 1 and size:
                    raw = data[off:off + size]
            buffers.append(raw)
        g = subgraphs[0]
        tensors: list[TfliteTensor] = []
        # Tensor: shape (0), type (1), buffer (2), name (3), quantization (4)
        for k, t in enumerate(g.tables(0)):
            shape = t.int_vector(0)
            tcode = t.scalar(1, "b", 0)
            type_name, dtype = _TENSOR_TYPES.get(tcode, (f"TYPE_{tcode}", None))
            buf_idx = t.scalar(2, "I", 0)
            q = t.table(4)
            quantized = False
            if q is not None:  # QuantizationParameters: min (0), max (1), scale (2), zero_point (3)
                sv = q.vector(2)
                quantized = sv is not None and sv[1] > 0
            arr = None
            raw = buffers[buf_idx] if 0 < buf_idx < len(buffers) else b""
            if raw and dtype is not None:
                count = int(np.prod(shape)) if shape else 1
                if count * dtype.itemsize != len(raw):
                    raise ValueError(f"tensor {k} ({t.string(3)!r}): {len(raw)} bytes do not fit shape {shape} "
                                     f"of {type_name}")
                arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
            tensors.append(TfliteTensor(k, t.string(3), tuple(shape), type_name, dtype, arr, quantized))
        operators: list[TfliteOperator] = []
        # Operator: opcode_index (0), inputs (1), outputs (2), builtin_options_type (3), builtin_options (4),
        # custom_options (5)
        for o in g.tables(3):
            idx = o.scalar(0, "I", 0)
            if idx >= len(opcodes):
                raise ValueError(f"operator refers to opcode {idx}, the model has {len(opcodes)}")
            name, is_custom = opcodes[idx]
            operators.append(TfliteOperator(name, is_custom, o.int_vector(1), o.int_vector(2),
                                            _decode_options(name, o.table(4)), o.bytes_vector(5)))
        return TfliteModel(int(version), description, tensors, operators, g.int_vector(1), g.int_vector(2))
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt TFLite model: {type(e).__name__}: {e}") from e


def read_tflite(path: str | Path) -> TfliteModel:
    """Read and parse a ``.tflite`` file. Raises ValueError for a missing or unreadable file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"TFLite model not found: {p}")
    return parse_tflite(p.read_bytes())
