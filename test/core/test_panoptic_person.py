"""The ``person`` panoptic backend (issue #6, item 5): TFLite reader, torch runner, MediaPipe model.

Two groups:
- the torch implementation of each TFLite operator against an independent numpy reference (TensorFlow
  semantics: asymmetric SAME padding, valid-count SAME average pooling, half-pixel bilinear resize, the
  transposed convolution as the exact adjoint of the SAME convolution), on hand-built graphs; these
  need no model file and always run;
- the real MediaPipe selfie-segmentation model on real photos: matplotlib's bundled portrait
  (``grace_hopper.jpg``) and a TUM fr1/rpy frame with a person sitting behind the desk. These skip
  unless the model is found: set ``MSSLAM_PERSON_MODEL`` to the wheel (or its download folder) from
  ``pip download mediapipe==0.10.21 --no-deps -d DIR``, or ``pip install --no-deps mediapipe==0.10.21``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.panoptic import person as person_mod
from metric_semantic_slam.core.panoptic.person import PersonBackend, find_person_model
from metric_semantic_slam.core.panoptic.tflite_reader import TfliteModel, TfliteOperator, TfliteTensor, parse_tflite
from metric_semantic_slam.core.panoptic.tflite_torch import TfliteTorchGraph
from metric_semantic_slam.core.panoptic.types import PanopticInput, validate_result

# ---------------------------------------------------------------------------------------------------
# numpy references (TensorFlow semantics), written independently of the code under test


def _tf_same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    out = (size + s - 1) // s
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def np_conv2d(x, w, b, stride, same, dilation=1, depthwise=False):
    """x (N, H, W, C); w (O, KH, KW, C) or depthwise (1, KH, KW, C); -> (N, H', W', O)."""
    kh, kw = w.shape[1:3]
    if same:
        (t, bo), (l, r) = _tf_same_pad(x.shape[1], kh, stride, dilation), _tf_same_pad(x.shape[2], kw, stride, dilation)
        x = np.pad(x, ((0, 0), (t, bo), (l, r), (0, 0)))
    ho = (x.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    wo = (x.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[0] if not depthwise else w.shape[3]), np.float64)
    for ky in range(kh):
        for kx in range(kw):
            patch = x[:, ky * dilation:ky * dilation + (ho - 1) * stride + 1:stride,
                      kx * dilation:kx * dilation + (wo - 1) * stride + 1:stride, :]
            if depthwise:
                out += patch * w[0, ky, kx]
            else:
                out += np.einsum("nhwc,oc->nhwo", patch, w[:, ky, kx, :])
    return out + (b if b is not None else 0.0)


def np_avg_pool_same(x, k, s):
    """SAME average pooling that divides by the number of valid (unpadded) pixels."""
    (t, _), (l, _) = _tf_same_pad(x.shape[1], k, s), _tf_same_pad(x.shape[2], k, s)
    ho, wo = (x.shape[1] + s - 1) // s, (x.shape[2] + s - 1) // s
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]))
    for i in range(ho):
        for j in range(wo):
            y0, x0 = max(i * s - t, 0), max(j * s - l, 0)
            y1, x1 = min(i * s - t + k, x.shape[1]), min(j * s - l + k, x.shape[2])
            out[:, i, j] = x[:, y0:y1, x0:x1].mean(axis=(1, 2))
    return out


def np_resize_bilinear(x, oh, ow, half_pixel):
    """TensorFlow ResizeBilinear (align_corners False) with or without half-pixel centers."""
    h, w = x.shape[1:3]

    def coords(n_out, n_in):
        scale = n_in / n_out
        src = (np.arange(n_out) + 0.5) * scale - 0.5 if half_pixel else np.arange(n_out) * scale
        lo = np.floor(src)
        frac = src - lo
        lo_i = np.clip(lo, 0, n_in - 1).astype(int)
        hi_i = np.clip(lo + 1, 0, n_in - 1).astype(int)
        return lo_i, hi_i, frac

    y0, y1, fy = coords(oh, h)
    x0, x1, fx = coords(ow, w)
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bot = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bot * fy


class GraphBuilder:
    """Hand-builds a TfliteModel (the records the reader returns) for op tests."""

    def __init__(self, input_shape):
        self.tensors: list[TfliteTensor] = []
        self.ops: list[TfliteOperator] = []
        self.input = self.tensor(input_shape)

    def tensor(self, shape, data=None, fp16=False) -> int:
        k = len(self.tensors)
        name, dt = ("FLOAT16", np.dtype("<f2")) if fp16 else ("FLOAT32", np.dtype("<f4"))
        if data is not None and np.asarray(data).dtype.kind == "i":
            name, dt = "INT32", np.dtype("<i4")
        if data is not None:
            data = np.asarray(data, dt)
        self.tensors.append(TfliteTensor(k, f"t{k}", tuple(shape), name, dt, data, False))
        return k

    def const(self, arr, fp16=False) -> int:
        """A constant; fp16 ones go through a DEQUANTIZE op as in MediaPipe's files."""
        arr = np.asarray(arr)
        if not fp16:
            return self.tensor(arr.shape, arr)
        src = self.tensor(arr.shape, arr, fp16=True)
        dst = self.tensor(arr.shape)
        self.ops.append(TfliteOperator("DEQUANTIZE", False, (src,), (dst,)))
        return dst

    def op(self, name, inputs, out_shape, custom=b"", **options) -> int:
        out = self.tensor(out_shape)
        self.ops.append(TfliteOperator(name, name == "Convolution2DTransposeBias", tuple(inputs), (out,),
                                       dict(options), custom))
        return out

    def model(self, outputs) -> TfliteModel:
        return TfliteModel(3, "test", self.tensors, self.ops, (self.input,), tuple(outputs))


def run_graph(model: TfliteModel, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [y.numpy().astype(np.float64) for y in TfliteTorchGraph(model)(torch.from_numpy(x.astype(np.float32)))]


CONV_OPTS = dict(padding=0, stride_w=2, stride_h=2, activation=0, dilation_w=1, dilation_h=1)


# ---------------------------------------------------------------------------------------------------
# operators against numpy


@pytest.mark.parametrize("size,stride,k,same,act", [((9, 8), 2, 3, True, 0), ((8, 8), 1, 1, True, 1),
                                                     ((7, 10), 2, 3, False, 3), ((6, 6), 1, 3, True, 0)])
def test_conv2d_matches_numpy(size, stride, k, same, act):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *size, 3))
    w, b = rng.normal(size=(5, k, k, 3)), rng.normal(size=5)
    ref = np_conv2d(x, w, b, stride, same)
    ref = {0: ref, 1: np.maximum(ref, 0), 3: np.clip(ref, 0, 6)}[act]
    g = GraphBuilder((1, *size, 3))
    out = g.op("CONV_2D", [g.input, g.const(w, fp16=False), g.const(b)], (1, *ref.shape[1:]),
               **{**CONV_OPTS, "padding": 0 if same else 1, "stride_w": stride, "stride_h": stride, "activation": act})
    (y,) = run_graph(g.model([out]), x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_depthwise_conv_fp16_weights_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 11, 9, 4))
    w = rng.normal(size=(1, 5, 5, 4)).astype(np.float16)  # stored fp16, dequantized by the graph
    b = rng.normal(size=4).astype(np.float16)
    ref = np_conv2d(x, w.astype(np.float64), b.astype(np.float64), 2, True, depthwise=True)
    g = GraphBuilder((1, 11, 9, 4))
    out = g.op("DEPTHWISE_CONV_2D", [g.input, g.const(w, fp16=True), g.const(b, fp16=True)], (1, 6, 5, 4),
               padding=0, stride_w=2, stride_h=2, depth_multiplier=1, activation=0, dilation_w=1, dilation_h=1)
    (y,) = run_graph(g.model([out]), x)
    np.testing.assert_allclose(y, ref, atol=1e-4)


@pytest.mark.parametrize("k,stride", [(2, 2), (3, 2), (4, 2)])
def test_transpose_conv_bias_is_the_adjoint_of_same_conv(k, stride):
    """MediaPipe's Convolution2DTransposeBias with SAME padding is the adjoint of TF's SAME conv with the
    same OHWI weights: <tconv(x), y> = <x, conv(y)> for all x, y; then the bias is added."""
    rng = np.random.default_rng(2)
    n, c_in, c_out = 5, 3, 2
    w, b = rng.normal(size=(c_out, k, k, c_in)), rng.normal(size=c_out)
    x = rng.normal(size=(1, n, n, c_in))
    y = rng.normal(size=(1, n * stride, n * stride, c_out))
    g = GraphBuilder((1, n, n, c_in))
    custom = np.array([1, stride, stride], "<i4").tobytes()  # padding SAME, stride_w, stride_h
    out = g.op("Convolution2DTransposeBias", [g.input, g.const(w), g.const(b)], (1, n * stride, n * stride, c_out),
               custom=custom)
    (tx,) = run_graph(g.model([out]), x)
    assert tx.shape == y.shape
    # forward SAME conv from c_out to c_in channels: weights w[o, ky, kx, i] read as (in=o, out=i)
    conv_y = np_conv2d(y, np.transpose(w, (3, 1, 2, 0)), None, stride, True)
    lhs = float(((tx - b) * y).sum())
    rhs = float((x * conv_y).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)


def test_pools_mean_elementwise_activations_resize_match_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, 7, 4))
    scale = rng.normal(size=(1, 1, 1, 4))
    g = GraphBuilder((1, 9, 7, 4))
    gap = g.op("AVERAGE_POOL_2D", [g.input], (1, 1, 1, 4), padding=1, stride_w=7, stride_h=9, filter_w=7,
               filter_h=9, activation=0)
    mean = g.op("MEAN", [g.input, g.const(np.array([1, 2], np.int32))], (1, 1, 1, 4), keep_dims=1)
    sig = g.op("LOGISTIC", [g.op("ADD", [gap, g.const(scale)], (1, 1, 1, 4), activation=0)], (1, 1, 1, 4))
    gated = g.op("MUL", [g.input, sig], (1, 9, 7, 4), activation=0)
    hs = g.op("HARD_SWISH", [gated], (1, 9, 7, 4))
    pool = g.op("AVERAGE_POOL_2D", [hs], (1, 5, 4, 4), padding=0, stride_w=2, stride_h=2, filter_w=3, filter_h=3,
                activation=0)
    up = g.op("RESIZE_BILINEAR", [pool, g.const(np.array([10, 8], np.int32))], (1, 10, 8, 4), new_height=0,
              new_width=0, align_corners=0, half_pixel_centers=1)
    legacy = g.op("RESIZE_BILINEAR", [pool, g.const(np.array([10, 8], np.int32))], (1, 10, 8, 4), new_height=0,
                  new_width=0, align_corners=0, half_pixel_centers=0)
    cat = g.op("CONCATENATION", [up, legacy], (1, 10, 8, 8), axis=3, activation=1)
    y_gap, y_mean, y_cat = run_graph(g.model([gap, mean, cat]), x)

    r_gap = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y_gap, r_gap, atol=1e-5)
    np.testing.assert_allclose(y_mean, r_gap, atol=1e-5)
    r_gated = x / (1 + np.exp(-(r_gap + scale)))
    r_hs = r_gated * np.clip(r_gated + 3, 0, 6) / 6
    r_pool = np_avg_pool_same(r_hs, 3, 2)
    r_cat = np.maximum(np.concatenate([np_resize_bilinear(r_pool, 10, 8, True),
                                       np_resize_bilinear(r_pool, 10, 8, False)], axis=3), 0)
    np.testing.assert_allclose(y_cat, r_cat, atol=1e-4)


def test_unsupported_op_quantized_graph_and_bad_files_are_clear_errors():
    g = GraphBuilder((1, 4, 4, 3))
    out = g.op("BUILTIN_999", [g.input], (1, 4, 4, 3))
    with pytest.raises(ValueError, match="BUILTIN_999"):
        TfliteTorchGraph(g.model([out]))
    g = GraphBuilder((1, 4, 4, 3))
    g.tensors[0] = TfliteTensor(0, "q", (1, 4, 4, 3), "INT8", np.dtype("i1"), None, True)
    out = g.op("RELU", [g.input], (1, 4, 4, 3))
    with pytest.raises(ValueError, match="quantized"):
        TfliteTorchGraph(g.model([out]))
    with pytest.raises(ValueError, match="TFL3"):
        parse_tflite(b"not a model at all")
    with pytest.raises(ValueError, match="corrupt|outside"):
        parse_tflite(b"\xff\xff\x00\x00TFL3" + bytes(16))
    g = GraphBuilder((1, 4, 4, 3))
    out = g.op("RELU", [g.input], (1, 4, 4, 3))
    with pytest.raises(ValueError, match="NHWC"):
        TfliteTorchGraph(g.model([out]))(torch.zeros(1, 5, 4, 3))


def _write_tflite(tensors, opcodes, operators, inputs, outputs) -> bytes:
    """Serialize a small TFLite model with the generic ``flatbuffers`` builder (field numbers from
    TensorFlow's schema.fbs), independently of the reader under test.

    tensors: [(shape, type code, data bytes or None)]; opcodes: [(builtin code, custom code or None)];
    operators: [(opcode index, inputs, outputs, {slot: (kind, value)} Conv2DOptions-like or None,
    custom option bytes)].
    """
    fb = pytest.importorskip("flatbuffers")
    b = fb.Builder(4096)

    def int_vec(vals):
        b.StartVector(4, len(vals), 4)
        for v in reversed(vals):
            b.PrependInt32(int(v))
        return b.EndVector()

    def table_vec(offs):
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    buffers = [b""] + [t[2] for t in tensors if t[2] is not None]
    buf_offs = []
    for data in buffers:
        vec = b.CreateByteVector(data) if data else None
        b.StartObject(3)
        if vec is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buf_offs.append(b.EndObject())
    t_offs, next_buf = [], 1
    for k, (shape, tcode, data) in enumerate(tensors):
        name, shp = b.CreateString(f"tensor_{k}"), int_vec(shape)
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, shp, 0)
        b.PrependInt8Slot(1, tcode, 0)
        if data is not None:
            b.PrependUint32Slot(2, next_buf, 0)
            next_buf += 1
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        t_offs.append(b.EndObject())
    op_offs = []
    for opcode, ins, outs, options, custom in operators:
        iv, ov = int_vec(ins), int_vec(outs)
        opt = cv = None
        if options:
            b.StartObject(max(options) + 1)
            for slot, (kind, value) in options.items():
                getattr(b, f"Prepend{kind}Slot")(slot, value, 0)
            opt = b.EndObject()
        if custom:
            cv = b.CreateByteVector(custom)
        b.StartObject(6)
        b.PrependUint32Slot(0, opcode, 0)
        b.PrependUOffsetTRelativeSlot(1, iv, 0)
        b.PrependUOffsetTRelativeSlot(2, ov, 0)
        if opt is not None:
            b.PrependUint8Slot(3, 1, 0)
            b.PrependUOffsetTRelativeSlot(4, opt, 0)
        if cv is not None:
            b.PrependUOffsetTRelativeSlot(5, cv, 0)
        op_offs.append(b.EndObject())
    code_offs = []
    for builtin, custom_code in opcodes:
        cc = b.CreateString(custom_code) if custom_code else None
        b.StartObject(4)
        b.PrependInt8Slot(0, min(builtin, 127), 0)
        if cc is not None:
            b.PrependUOffsetTRelativeSlot(1, cc, 0)
        b.PrependInt32Slot(2, 1, 0)
        b.PrependInt32Slot(3, builtin, 0)
        code_offs.append(b.EndObject())
    tv, iv, ov, opv = table_vec(t_offs), int_vec(inputs), int_vec(outputs), table_vec(op_offs)
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tv, 0)
    b.PrependUOffsetTRelativeSlot(1, iv, 0)
    b.PrependUOffsetTRelativeSlot(2, ov, 0)
    b.PrependUOffsetTRelativeSlot(3, opv, 0)
    graph = b.EndObject()
    codes, graphs, bufs, desc = table_vec(code_offs), table_vec([graph]), table_vec(buf_offs), b.CreateString("t")
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes, 0)
    b.PrependUOffsetTRelativeSlot(2, graphs, 0)
    b.PrependUOffsetTRelativeSlot(3, desc, 0)
    b.PrependUOffsetTRelativeSlot(4, bufs, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_reader_parses_a_written_model_and_the_graph_runs_it():
    """A model written with the flatbuffers builder: fp16 weights + DEQUANTIZE, CONV_2D (SAME, stride 2,
    fused RELU), MediaPipe's custom transposed conv (custom code + option bytes), HARD_SWISH; parsed records and
    the torch result against numpy."""
    rng = np.random.default_rng(4)
    w16 = rng.normal(size=(4, 3, 3, 3)).astype("<f2")
    bias = rng.normal(size=4).astype("<f4")
    tw, tb = rng.normal(size=(2, 2, 2, 4)).astype("<f4"), rng.normal(size=2).astype("<f4")
    tensors = [((1, 5, 6, 3), 0, None), ((4, 3, 3, 3), 1, w16.tobytes()), ((4, 3, 3, 3), 0, None),
               ((4,), 0, bias.tobytes()), ((1, 3, 3, 4), 0, None), ((2, 2, 2, 4), 0, tw.tobytes()),
               ((2,), 0, tb.tobytes()), ((1, 6, 6, 2), 0, None), ((1, 6, 6, 2), 0, None)]
    opcodes = [(6, None), (3, None), (32, "Convolution2DTransposeBias"), (117, None)]
    conv_opts = {0: ("Int8", 0), 1: ("Int32", 2), 2: ("Int32", 2), 3: ("Int8", 1)}  # SAME, stride 2, RELU
    custom = np.array([1, 2, 2], "<i4").tobytes()
    operators = [(0, [1], [2], None, b""), (1, [0, 2, 3], [4], conv_opts, b""), (2, [4, 5, 6], [7], None, custom),
                 (3, [7], [8], None, b"")]
    model = parse_tflite(_write_tflite(tensors, opcodes, operators, [0], [8]))

    assert [op.op for op in model.operators] == ["DEQUANTIZE", "CONV_2D", "Convolution2DTransposeBias", "HARD_SWISH"]
    assert model.operators[2].is_custom and model.operators[2].custom_options == custom
    assert model.operators[1].options == dict(padding=0, stride_w=2, stride_h=2, activation=1, dilation_w=1,
                                              dilation_h=1)
    assert model.tensors[1].type_name == "FLOAT16" and np.array_equal(model.tensors[1].data, w16)
    assert model.tensors[0].data is None and model.tensors[7].shape == (1, 6, 6, 2)
    assert model.inputs == (0,) and model.outputs == (8,) and model.version == 3

    x = rng.normal(size=(2, 5, 6, 3))
    h = np.maximum(np_conv2d(x, w16.astype(np.float64), bias, 2, True), 0)      # (2, 3, 3, 4)
    t = np.zeros((2, 6, 6, 2)) + tb
    for ky in range(2):
        for kx in range(2):
            t[:, ky::2, kx::2] += np.einsum("nhwc,oc->nhwo", h, tw[:, ky, kx, :])
    ref = t * np.clip(t + 3, 0, 6) / 6
    (y,) = run_graph(model, x)
    np.testing.assert_allclose(y, ref, atol=1e-4)


# ---------------------------------------------------------------------------------------------------
# model discovery and errors (no model needed)


@pytest.fixture
def no_default_model(monkeypatch):
    """Hide any installed mediapipe and the environment variable."""
    monkeypatch.delenv(person_mod.MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(person_mod, "_installed_mediapipe_dir", lambda: None)


def test_without_a_model_the_error_says_how_to_get_it(no_default_model, tmp_path):
    space = load_label_space()
    with pytest.raises(ValueError, match=r"pip download mediapipe==0\.10\.21 --no-deps"):
        PersonBackend(space)
    with pytest.raises(ValueError, match="does not exist"):
        PersonBackend(space, model_path=tmp_path / "missing.whl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no selfie_segmentation model"):
        PersonBackend(space, model_path=tmp_path / "empty")
    wheel = tmp_path / "mediapipe-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
    with pytest.raises(ValueError, match="no selfie_segmentation model"):
        PersonBackend(space, model_path=wheel)
    bad = tmp_path / "selfie_segmentation.tflite"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not load the person model"):
        PersonBackend(space, model_path=bad)
    with pytest.raises(ValueError, match="threshold"):
        PersonBackend(space, model_path=bad, threshold=1.5)


def test_registry_names_person_and_reports_a_missing_model(no_default_model):
    from metric_semantic_slam.core.panoptic import BACKENDS, make_backend

    if "person" not in BACKENDS:
        pytest.skip("registry.py does not list 'person' yet (diff in the person helper's report)")
    with pytest.raises(ValueError, match="mediapipe==0.10.21"):
        make_backend("person")


# ---------------------------------------------------------------------------------------------------
# the real model (skips when it is not on this machine)


def _model_source() -> str:
    try:
        _, source = find_person_model(None)
    except ValueError:
        pytest.skip(f"MediaPipe selfie-segmentation model not found: set {person_mod.MODEL_ENV_VAR} to the wheel "
                    "from `pip download mediapipe==0.10.21 --no-deps -d DIR` (or DIR) to run this test")
    return source


@pytest.fixture(scope="module")
def backend():
    _model_source()
    return PersonBackend(load_label_space())


def _hopper() -> np.ndarray:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"matplotlib's sample photo is missing: {path}")
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def _tum_person_frame(shared_data: Path) -> np.ndarray:
    path = shared_data / "tum_fr1_rpy_90" / "rgb" / "1305031234.893760.png"
    if not path.is_file():
        pytest.skip(f"TUM frame missing: {path}")
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def test_portrait_photo_person_covers_the_person(backend):
    img = _hopper()                                        # 600 x 512 portrait, person fills the lower middle
    res = backend.predict(PanopticInput(img))
    validate_result(res, img.shape[:2], None)
    person = res.semantic == backend.person_id
    assert backend.label_space.by_id(backend.person_id).is_private
    assert 0.45 < person.mean() < 0.75
    # hand-picked points: face, uniform (person); flag top-left, backdrop top-right (not person)
    assert person[280, 256] and person[500, 256] and person[560, 60]
    assert not person[60, 30] and not person[50, 480] and not person[150, 20]
    assert set(res.instance_classes.values()) == {backend.person_id}
    assert len(res.instance_classes) == 1 and res.instance_scores[1] > 0.9
    assert np.all((res.instance > 0) == person)
    for bad in (img[:0], img[..., 0], img.astype(np.float32)):  # empty, one channel, float
        with pytest.raises(ValueError, match="color"):
            backend.predict(PanopticInput(bad))
    tiny = backend.predict(PanopticInput(np.full((3, 5, 3), 128, np.uint8)))
    validate_result(tiny, (3, 5), None)


def test_real_rgbd_frame_person_behind_desk(backend, shared_data):
    """TUM fr1/rpy: a person sits behind the monitors. Hand-labelled head (ellipse) and torso (box)."""
    img = _tum_person_frame(shared_data)
    res = backend.predict(PanopticInput(img))
    person = res.semantic == backend.person_id
    gt = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(gt, (315, 243), (24, 30), 0, 0, 360, 1, -1)
    cv2.rectangle(gt, (262, 270), (358, 296), 1, -1)
    assert person[gt > 0].mean() > 0.9                           # the person is found
    assert person[195:380, 240:380].sum() > 0.95 * person.sum()  # and nothing far from them
    for y, x in ((150, 450), (250, 130), (50, 60), (420, 500)):  # door, chair, shelf, monitor
        assert not person[y, x]
    p = backend.person_probability([img])[0]
    strict = PersonBackend(backend.label_space, model_path=None, threshold=0.9).predict(PanopticInput(img))
    assert np.all((strict.semantic > 0) <= person) and (strict.semantic > 0).sum() < person.sum()
    assert p.shape == img.shape[:2] and p.dtype == np.float32 and 0.0 <= p.min() and p.max() <= 1.0


def test_batched_deterministic_and_variants(backend, shared_data):
    a, b = _hopper(), _tum_person_frame(shared_data)
    single = [backend.predict(PanopticInput(a)), backend.predict(PanopticInput(b))]
    batch = backend.predict_batch([PanopticInput(a), PanopticInput(b)])
    for s, t in zip(single, batch):
        assert np.array_equal(s.semantic, t.semantic) and np.array_equal(s.instance, t.instance)
    assert np.array_equal(backend.predict(PanopticInput(a)).semantic, single[0].semantic)
    # a 16:9 image goes to the landscape model, which also finds the portrait's person
    wide = np.ascontiguousarray(cv2.resize(a[60:348], (512, 288)))
    assert backend.variant_for(wide.shape[:2]) == "landscape" and backend.variant_for(b.shape[:2]) == "general"
    person = backend.predict(PanopticInput(wide)).semantic == backend.person_id
    assert person[150, 256] and not person[20, 20]
    stretch = PersonBackend(backend.label_space, resize="stretch").predict(PanopticInput(a))
    assert 0.45 < (stretch.semantic > 0).mean() < 0.75


def test_model_from_wheel_folder_and_tflite_file_agree(tmp_path):
    source = Path(_model_source())
    blobs, _ = find_person_model(source)
    tfl = tmp_path / "selfie_segmentation.tflite"
    tfl.write_bytes(blobs["general"])
    wheel = tmp_path / "mediapipe-0.10.21-test.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite", blobs["general"])
    space = load_label_space()
    img = _hopper()
    masks = [PersonBackend(space, model_path=p, variant="general").predict(PanopticInput(img)).semantic
             for p in (tfl, wheel, tmp_path)]
    assert np.array_equal(masks[0], masks[1]) and np.array_equal(masks[0], masks[2])
    with pytest.raises(ValueError, match="general model"):
        PersonBackend(space, model_path=tfl, variant="landscape")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_fp16_matches_cpu(backend):
    img = _hopper()
    gpu = PersonBackend(backend.label_space, device="cuda")
    assert gpu.fp16
    p_cpu = backend.person_probability([img])[0]
    p_gpu = gpu.person_probability([img])[0]
    assert np.abs(p_cpu - p_gpu).mean() < 0.01
    assert ((p_cpu > 0.5) == (p_gpu > 0.5)).mean() > 0.99


def _cut_before_custom_op(data: bytes) -> tuple[bytes, int]:
    """A copy of the model that stops before MediaPipe's custom op (which stock TFLite runtimes lack):
    the operator vector is shortened in place and the graph output becomes the custom op's input."""
    import struct

    from metric_semantic_slam.core.panoptic.tflite_reader import _Buf, _Table

    model = parse_tflite(data)
    cut = next(k for k, op in enumerate(model.operators) if op.is_custom)
    target = model.operators[cut].inputs[0]
    buf = bytearray(data)
    root = _Buf(data)
    graph = _Table(root, root.u32(0)).tables(2)[0]
    ops_start, _ = graph.vector(3)
    struct.pack_into("<I", buf, ops_start - 4, cut)       # vector length
    out_start, n_out = graph.vector(2)
    assert n_out == 1
    struct.pack_into("<i", buf, out_start, target)
    return bytes(buf), target


def test_torch_runner_matches_litert_up_to_the_custom_op():
    """Every op but the last two (custom transposed conv + sigmoid, checked above against numpy) against
    Google's LiteRT interpreter. Runs where ``ai_edge_litert`` is importable (it allows numpy 2, but is not a
    project dependency: e.g. `pip download ai-edge-litert==2.3.0 --no-deps`, unzip, add to PYTHONPATH)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai_edge_litert (LiteRT) not installed")
    source = Path(_model_source())
    blobs, _ = find_person_model(source)
    img = _hopper()
    for variant, blob in blobs.items():
        cut, _ = _cut_before_custom_op(blob)
        graph = TfliteTorchGraph(parse_tflite(cut)).eval()
        _, h, w, _ = graph.input_shape
        x = (cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)[None]
        interp = litert.Interpreter(model_content=cut)
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        ref = interp.get_tensor(interp.get_output_details()[0]["index"])
        with torch.no_grad():
            ours = graph(torch.from_numpy(x))[0].numpy()
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max(), variant
