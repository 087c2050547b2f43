"""``torchscript`` and ``onnx`` backends: a user's model file plus a small adapter YAML.

The adapter says how to feed the model and how to read its outputs::

    input:
      size: [240, 320]            # network input (H, W); the image is letterboxed to it. null: image size
      channels: rgb               # rgb | bgr
      scale: 255.0                # pixel values are divided by this ...
      mean: [0.485, 0.456, 0.406] # ... then (x - mean) / std per channel
      std: [0.229, 0.224, 0.225]
    outputs:                      # an output index (tuple / list / ONNX order) or a name (dict key / ONNX name)
      semantic_logits: 0          # (N, C, h, w) logits over the model's C classes (resized to the input)
      instance_masks: null        # (K, H, W) or (K, 1, H, W) mask probabilities (Mask R-CNN-like head)
      instance_boxes: null        # (K, 4) x0, y0, x1, y1 in network input pixels
      instance_classes: null      # (K,) model class ids
      instance_scores: null       # (K,) in [0, 1]
    remap: coco_panoptic          # model ids -> label-space ids: a bundled remap name, a path, or null (same ids)
    fusion: {score_threshold: 0.5, mask_threshold: 0.5, overlap_threshold: 0.5,
             min_instance_area_px: 16, min_stuff_area_px: 64}
    probabilities: true           # pass per-class probabilities (label-space ids) on to the result

A model needs ``semantic_logits`` or the instance outputs (or both). Its input is one float32 tensor
(N, 3, H, W). A model with instance outputs reads one image per call (Mask R-CNN style heads return
per-image lists), so ``predict_batch`` loops; a semantic-only model gets the whole batch at once.
Per-class probabilities: the softmax over the model's classes, summed over the model classes that map
to the same label-space class. The semantic map is their argmax; then :func:`fusion.fuse_panoptic`.
Paths in the adapter (``remap``) are relative to the adapter file. ``export_examples.py`` shows how to
wrap a torchvision Mask R-CNN or DeepLabV3 with a user-supplied weights file (nothing is downloaded).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..labels import LabelRemap, LabelSpace, load_remap
from .fusion import FusionConfig, fuse_panoptic, softmax_probabilities
from .letterbox import Letterbox
from .types import PanopticInput, PanopticResult, validate_input

__all__ = ["ModelAdapter", "load_adapter", "TorchScriptBackend", "OnnxBackend"]

_OUTPUT_KEYS = ("semantic_logits", "instance_masks", "instance_boxes", "instance_classes", "instance_scores")


@dataclass
class ModelAdapter:
    """Parsed adapter YAML (see the module doc)."""

    input_size: tuple[int, int] | None = None
    channels: str = "rgb"
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    outputs: dict[str, Any] = field(default_factory=dict)
    remap: str | None = None
    fusion: FusionConfig = field(default_factory=FusionConfig)
    probabilities: bool = True

    @property
    def has_instances(self) -> bool:
        return self.outputs.get("instance_masks") is not None

    @classmethod
    def from_dict(cls, d: dict, base_dir: Path | None = None) -> "ModelAdapter":
        if not isinstance(d, dict):
            raise ValueError("adapter must be a YAML mapping with 'input' and 'outputs'")
        unknown = set(d) - {"input", "outputs", "remap", "fusion", "probabilities", "description", "format"}
        if unknown:
            raise ValueError(f"unknown adapter keys {sorted(unknown)}")
        inp = d.get("input") or {}
        size = inp.get("size")
        if size is not None:
            if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
                raise ValueError(f"adapter input.size must be [H, W] > 0, got {size}")
            size = (int(size[0]), int(size[1]))
        channels = str(inp.get("channels", "rgb")).lower()
        if channels not in ("rgb", "bgr"):
            raise ValueError(f"adapter input.channels must be rgb or bgr, got {channels!r}")
        mean = tuple(float(x) for x in inp.get("mean", (0.0, 0.0, 0.0)))
        std = tuple(float(x) for x in inp.get("std", (1.0, 1.0, 1.0)))
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError("adapter input.mean / input.std need 3 values (std > 0)")
        scale = float(inp.get("scale", 255.0))
        if scale <= 0:
            raise ValueError(f"adapter input.scale must be > 0, got {scale}")
        outputs = dict(d.get("outputs") or {})
        bad = set(outputs) - set(_OUTPUT_KEYS)
        if bad:
            raise ValueError(f"unknown adapter outputs {sorted(bad)}; known: {_OUTPUT_KEYS}")
        inst = [outputs.get(k) is not None for k in ("instance_masks", "instance_classes")]
        if any(inst) and not all(inst):
            raise ValueError("instance outputs need at least instance_masks and instance_classes")
        if outputs.get("semantic_logits") is None and not all(inst):
            raise ValueError("adapter outputs need semantic_logits or the instance outputs")
        remap = d.get("remap")
        if remap is not None and base_dir is not None and (base_dir / str(remap)).is_file():
            remap = str(base_dir / str(remap))
        fus = d.get("fusion") or {}
        known = {f.name for f in fields(FusionConfig)}
        if set(fus) - known:
            raise ValueError(f"unknown fusion options {sorted(set(fus) - known)}; known: {sorted(known)}")
        fusion = FusionConfig(**fus)
        fusion.validate()
        return cls(size, channels, scale, mean, std, outputs, None if remap is None else str(remap), fusion,
                   bool(d.get("probabilities", True)))


def load_adapter(path: str | Path) -> ModelAdapter:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"adapter file {str(p)!r} not found")
    try:
        d = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"adapter file {p} is not valid YAML: {e}") from None
    return ModelAdapter.from_dict(d, p.parent)


def _pick(outputs, key, names: list[str] | None):
    """Output ``key`` (index or name) from a model's outputs (tensor, sequence or dict)."""
    if isinstance(outputs, dict):
        if key not in outputs:
            raise ValueError(f"model output {key!r} not found; outputs: {sorted(outputs)}")
        return outputs[key]
    seq = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    if isinstance(key, str):
        if names is None or key not in names:
            raise ValueError(f"model output {key!r} not found; outputs: {names}")
        key = names.index(key)
    if not 0 <= int(key) < len(seq):
        raise ValueError(f"model output index {key} out of range ({len(seq)} outputs)")
    return seq[int(key)]


class _ModelBackend:
    """Shared pre/post-processing of the two model backends; subclasses implement ``_run``."""

    name = "model"

    def __init__(self, label_space: LabelSpace, model_path: str | Path | None = None,
                 adapter_path: str | Path | None = None, device: str = "auto", **unused) -> None:
        if model_path is None or adapter_path is None:
            raise ValueError(f"the {self.name} backend needs model_path and adapter_path")
        self.label_space = label_space
        self.adapter = load_adapter(adapter_path)
        self.remap: LabelRemap | None = (load_remap(self.adapter.remap, label_space)
                                         if self.adapter.remap is not None else None)
        self.device = device
        p = Path(model_path)
        if not p.is_file():
            raise ValueError(f"{self.name} model file {str(p)!r} not found")
        self._load(p)

    # --- subclass hooks ---
    def _load(self, path: Path) -> None:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> tuple[Any, list[str] | None]:
        """Run the model on (N, 3, H, W) float32; returns (outputs, output names or None)."""
        raise NotImplementedError

    # --- shared ---
    def _preprocess(self, inp: PanopticInput) -> tuple[np.ndarray, Letterbox]:
        a = self.adapter
        hw = inp.shape
        lb = Letterbox.fit(hw, a.input_size if a.input_size is not None else hw)
        img = lb.apply(inp.color)
        if a.channels == "bgr":
            img = img[..., ::-1]
        x = img.astype(np.float32) / a.scale
        x = (x - np.asarray(a.mean, np.float32)) / np.asarray(a.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)), lb

    def _to_label_probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax over model classes, summed into label-space classes. (Cm, H, W) -> (C, H, W)."""
        prob = softmax_probabilities(logits)
        cm = prob.shape[0]
        C = self.label_space.max_id + 1
        target = self.remap(np.arange(cm)) if self.remap is not None else np.arange(cm)
        if target.max(initial=0) >= C:
            raise ValueError(f"model has {cm} classes but the label space only {C} ids and no remap maps them")
        out = np.zeros((C,) + prob.shape[1:], np.float32)
        np.add.at(out, target, prob)
        return out

    def _postprocess(self, outputs, names, index: int, lb: Letterbox) -> PanopticResult:
        a = self.adapter
        hn, wn = lb.net_hw
        probs = None
        if a.outputs.get("semantic_logits") is not None:
            logits = np.asarray(_np(_pick(outputs, a.outputs["semantic_logits"], names)), np.float32)
            if logits.ndim != 4:
                raise ValueError(f"semantic_logits must be (N, C, H, W), got shape {logits.shape}")
            lg = logits[index]
            if lg.shape[1:] != (hn, wn):
                import cv2

                lg = np.stack([cv2.resize(c, (wn, hn), interpolation=cv2.INTER_LINEAR) for c in lg])
            probs = lb.invert(self._to_label_probabilities(lg), channels_first=True)
            semantic = probs.argmax(axis=0).astype(np.int64)
        else:
            semantic = np.zeros(lb.src_hw, np.int64)
        masks = classes = scores = None
        if a.has_instances:
            masks = np.asarray(_np(_pick(outputs, a.outputs["instance_masks"], names)), np.float32)
            if masks.ndim == 4:
                masks = masks[:, 0]
            if masks.ndim != 3:
                raise ValueError(f"instance_masks must be (K, H, W) or (K, 1, H, W), got {masks.shape}")
            k = masks.shape[0]
            classes = np.asarray(_np(_pick(outputs, a.outputs["instance_classes"], names))).reshape(-1).astype(np.int64)
            scores = (np.asarray(_np(_pick(outputs, a.outputs["instance_scores"], names)), np.float64).reshape(-1)
                      if a.outputs.get("instance_scores") is not None else np.ones(k))
            if len(classes) != k or len(scores) != k:
                raise ValueError(f"instance outputs disagree: {k} masks, {len(classes)} classes, {len(scores)} scores")
            if k and masks.shape[1:] != (hn, wn):
                import cv2

                masks = np.stack([cv2.resize(m, (wn, hn), interpolation=cv2.INTER_LINEAR) for m in masks])
            if a.outputs.get("instance_boxes") is not None and k:
                boxes = np.asarray(_np(_pick(outputs, a.outputs["instance_boxes"], names)), np.float64).reshape(k, 4)
                inside = np.zeros_like(masks, dtype=bool)
                for j, (x0, y0, x1, y1) in enumerate(boxes):
                    inside[j, max(0, int(np.floor(y0))):max(0, int(np.ceil(y1))),
                           max(0, int(np.floor(x0))):max(0, int(np.ceil(x1)))] = True
                masks = np.where(inside, masks, 0.0).astype(np.float32)
            masks = (lb.invert(masks, channels_first=True) if k else np.zeros((0,) + lb.src_hw, np.float32))
            if self.remap is not None:
                classes = self.remap(classes)
        return fuse_panoptic(semantic, self.label_space, masks, classes, scores, None,
                             probs if a.probabilities else None, a.fusion)

    def predict(self, inp: PanopticInput) -> PanopticResult:
        return self.predict_batch([inp])[0]

    def predict_batch(self, inputs: list[PanopticInput]) -> list[PanopticResult]:
        for inp in inputs:
            validate_input(inp)
        if not inputs:
            return []
        prepped = [self._preprocess(i) for i in inputs]
        same = len({p[0].shape for p in prepped}) == 1
        if same and not self.adapter.has_instances:
            outputs, names = self._run(np.stack([p[0] for p in prepped]))
            return [self._postprocess(outputs, names, j, p[1]) for j, p in enumerate(prepped)]
        results = []
        for x, lb in prepped:
            outputs, names = self._run(x[None])
            results.append(self._postprocess(outputs, names, 0, lb))
        return results


def _np(x) -> np.ndarray:
    """A torch tensor or array-like as a numpy array."""
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


class TorchScriptBackend(_ModelBackend):
    """A TorchScript model file (``torch.jit.save``); runs on ``device`` (auto: CUDA when present, fp32)."""

    name = "torchscript"

    def _load(self, path: Path) -> None:
        import torch

        dev = self.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch_device = torch.device(dev)
        try:
            self._model = torch.jit.load(str(path), map_location=self._torch_device).eval()
        except Exception as e:  # torch raises RuntimeError / ValueError / pickle errors for bad files
            raise ValueError(f"cannot load TorchScript model {str(path)!r}: {type(e).__name__}: {e}") from None

    def _run(self, batch: np.ndarray):
        import torch

        with torch.inference_mode():
            try:
                out = self._model(torch.from_numpy(batch).to(self._torch_device))
            except Exception as e:
                raise ValueError(f"TorchScript model failed on input {batch.shape}: {type(e).__name__}: {e}") from None
        return out, None


class OnnxBackend(_ModelBackend):
    """An ONNX model file run with onnxruntime (CPU, or CUDA when ``device`` is cuda and available)."""

    name = "onnx"

    def _load(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as e:
            raise ImportError("the onnx backend needs onnxruntime (pip install onnxruntime)") from e
        providers = ["CPUExecutionProvider"]
        if self.device in ("cuda", "auto") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:
            raise ValueError(f"cannot load ONNX model {str(path)!r}: {type(e).__name__}: {e}") from None
        self._input_name = self._session.get_inputs()[0].name
        self._output_names = [o.name for o in self._session.get_outputs()]

    def _run(self, batch: np.ndarray):
        try:
            out = self._session.run(None, {self._input_name: batch})
        except Exception as e:
            raise ValueError(f"ONNX model failed on input {batch.shape}: {type(e).__name__}: {e}") from None
        return out, self._output_names
