"""``builtin`` panoptic backend: the project's compact network trained on simulator renders.

Weights: ``metric_semantic_slam/models/panoptic_builtin.pt`` (fp16 state dict + net and
post-processing configs), written by ``scripts/train_panoptic.py`` (the command, seeds and training
curves are in ``panoptic_builtin.json`` next to it and ``docs/panoptic_builtin_training.png``).

Input: RGB + registered depth. Each image is letterboxed to the net's input size (240 x 320 by
default; identity for 320 x 240 images) and the outputs are mapped back to the image size. Without
depth (``depth_m=None``) the depth channel is all zeros: the net was trained with the depth channel
dropped on a fraction of the samples, so it still works, with lower accuracy.
Runs batched on CPU or CUDA (fp16 on CUDA). Only trained on the simulator's indoor classes: on real
images expect poor results (use ``geometric`` or a user model there).
"""
from __future__ import annotations

from pathlib import Path

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import LabelSpace
from .builtin_net import (NetConfig, PanopticNet, PostprocessConfig, make_net_input, panoptic_postprocess,
                          panoptic_postprocess_dense)
from .device import inference_device
from .letterbox import Letterbox
from .types import PanopticInput, PanopticResult, validate_input

__all__ = ["BuiltinBackend", "default_weights_path"]

_log = logging.getLogger(__name__)


def default_weights_path() -> Path:
    """The committed weights file inside the package."""
    return Path(__file__).resolve().parents[2] / "models" / "panoptic_builtin.pt"


class BuiltinBackend:
    """The trained compact panoptic network behind the :class:`PanopticBackend` interface.

    Options: ``model_path`` (default: the committed weights), ``device`` ("cpu", "cuda", "cuda:0";
    default "cpu"), ``fp16`` (default: True on CUDA, ignored on CPU), ``batch_size`` (images per
    forward pass in :meth:`predict_batch`), ``return_probabilities`` (default True: the (C, H, W)
    softmax, a channels-last view: ``np.ascontiguousarray`` it if needed; False saves ~10 ms), ``center_threshold`` / ``min_area_px`` (post-processing).
    """

    name = "builtin"

    def __init__(self, label_space: LabelSpace, model_path: str | Path | None = None, device: str = "cpu",
                 fp16: bool | None = None, batch_size: int = 8, return_probabilities: bool = True,
                 center_threshold: float | None = None, min_area_px: int | None = None) -> None:
        self.label_space = label_space
        path = Path(model_path) if model_path is not None else default_weights_path()
        if not path.is_file():
            raise ValueError(f"builtin panoptic weights not found: {path} (train them with scripts/train_panoptic.py)")
        try:
            # weights_only: never unpickle code; TorchVersion (a str) is recorded in the training meta
            with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(ckpt, dict) or ckpt.get("format") != "msslam_panoptic_builtin_v1":
                raise ValueError("not a msslam_panoptic_builtin_v1 checkpoint")
            self.net_config = NetConfig.from_dict(ckpt["net_config"])
            net = PanopticNet(self.net_config)
            net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
        except ValueError as e:
            raise ValueError(f"could not load builtin panoptic weights {path}: {e}") from e
        except Exception as e:  # torch raises many types for corrupt / foreign files
            raise ValueError(f"could not load builtin panoptic weights {path}: {type(e).__name__}: {e}") from e
        if self.net_config.num_classes != label_space.max_id + 1:
            raise ValueError(f"weights predict {self.net_config.num_classes} classes, label space "
                             f"{label_space.name!r} has ids 0..{label_space.max_id}")
        self.device, self.fp16 = inference_device(device, fp16)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.return_probabilities = bool(return_probabilities)
        # Post-processing: the code's defaults (tuned on the validation seed after training; the
        # checkpoint's "postprocess" entry only records what the per-epoch validation used).
        post = {}
        if center_threshold is not None:
            post["center_threshold"] = float(center_threshold)
        if min_area_px is not None:
            post["min_area_px"] = int(min_area_px)
        self.post = PostprocessConfig(**post)
        self.meta = ckpt.get("meta", {})
        net = net.to(self.device).eval()
        if self.fp16:
            net = net.half()
        elif self.device.type == "cpu":
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        # One frame per call on CUDA: the net + sync-free post-processing replayed from a CUDA graph
        # (a Python-driven forward is launch-bound: ~230 kernel launches and ~50 syncs per frame).
        self._graphed: _GraphedFrame | None = None
        self._graph_failed = False
        self._thing_lut = torch.from_numpy(label_space.thing_mask).to(self.device)

    def predict(self, inp: PanopticInput) -> PanopticResult:
        """Panoptic labels of one frame. Raises ValueError on bad input (see ``validate_input``)."""
        return self.predict_batch([inp])[0]

    @torch.no_grad()
    def predict_batch(self, inputs: list[PanopticInput]) -> list[PanopticResult]:
        """Panoptic labels of many frames, ``batch_size`` per forward pass. Frames may differ in size."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"predict_batch takes a list of PanopticInput, got {type(inputs).__name__}")
        for inp in inputs:
            validate_input(inp)
        results: list[PanopticResult] = []
        for a in range(0, len(inputs), self.batch_size):
            results.extend(self._run(list(inputs[a:a + self.batch_size])))
        return results

    def _run(self, inputs: list[PanopticInput]) -> list[PanopticResult]:
        net_hw = self.net_config.input_hw
        if len(inputs) == 1 and self.device.type == "cuda" and not self._graph_failed:
            return [self._run_graphed(inputs[0])]
        boxes = [Letterbox.fit(inp.shape, net_hw) for inp in inputs]
        rgb = np.stack([lb.apply(inp.color) for lb, inp in zip(boxes, inputs)])
        depth = [_net_depth(inp, lb, net_hw) for lb, inp in zip(boxes, inputs)]
        rgb_t = torch.from_numpy(rgb).to(self.device).permute(0, 3, 1, 2)
        dep_t = torch.from_numpy(np.stack(depth)).to(self.device)[:, None]
        x = make_net_input(rgb_t, dep_t)
        if self.fp16:
            x = x.half()
        elif self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.net(x)
        results = []
        logits = F.interpolate(out["semantic"].float(), size=net_hw, mode="bilinear", align_corners=False)
        logits = logits.contiguous(memory_format=torch.channels_last)  # fast per-pixel argmax / softmax
        for j, (lb, inp) in enumerate(zip(boxes, inputs)):
            sem, ins, meta = panoptic_postprocess(logits[j], out["center"][j], out["offset"][j],
                                                  self._thing_lut, self.post, out_hw=net_hw)
            sem_np = sem.to(torch.int32).cpu().numpy()
            ins_np = ins.to(torch.int32).cpu().numpy()
            probs = None
            if self.return_probabilities:
                # softmax over the innermost dimension of the channels-last logits (~8x faster than
                # over dim 0); the result is a (C, H, W) view of an (H, W, C) array
                probs = torch.softmax(logits[j].permute(1, 2, 0), -1).cpu().numpy().transpose(2, 0, 1)
            results.append(_result_in_image(lb, sem_np, ins_np, probs, meta))
        return results

    def _run_graphed(self, inp: PanopticInput) -> PanopticResult:
        net_hw = self.net_config.input_hw
        lb = Letterbox.fit(inp.shape, net_hw)
        rgb, depth = lb.apply(inp.color), _net_depth(inp, lb, net_hw)
        try:
            if self._graphed is None:
                self._graphed = _GraphedFrame(self, net_hw)
            packed, table, probs = self._graphed(rgb, depth)
        except RuntimeError as e:  # capture refused (driver, allocator): stay correct, eager from now on
            _log.warning("builtin panoptic: CUDA graph path failed (%s); running eagerly from now on", e)
            self._graph_failed, self._graphed = True, None
            return self._run([inp])[0]
        meta = [(int(i), int(c), float(sc)) for i, c, sc in table.T if i > 0]
        return _result_in_image(lb, packed[0], packed[1], probs, meta)


def _net_depth(inp: PanopticInput, lb: Letterbox, net_hw: tuple[int, int]) -> np.ndarray:
    """The depth channel at the net's size: invalid -> 0, letterboxed with nearest sampling (no mixing across
    depth edges); zeros without depth. Shape: -> (h, w) float32 meters."""
    if inp.depth_m is None:
        return np.zeros(net_hw, np.float32)
    return lb.apply(np.nan_to_num(inp.depth_m.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0), nearest=True)


def _result_in_image(lb: Letterbox, sem: np.ndarray, ins: np.ndarray, probs: np.ndarray | None,
                     meta: list[tuple[int, int, float]]) -> PanopticResult:
    """Labels at the net's size mapped back to the image (letterbox inverted) with their instance bookkeeping.

    Shape: sem, ins (h, w) int; probs (C, h, w) or None; meta [(instance id, class id, score)] -> result at the
    image size.
    """
    if probs is not None and not lb.is_identity:  # (invert copies a channels-last view: skipped when not needed)
        probs = lb.invert(probs, channels_first=True).astype(np.float32, copy=False)
    if not lb.is_identity:
        sem = lb.invert(sem, nearest=True)
        ins = lb.invert(ins, nearest=True)
    sem, ins = sem.astype(np.uint16), ins.astype(np.uint16)
    # resizing can drop a small instance entirely: keep the bookkeeping consistent
    present = set(np.unique(ins).tolist()) - {0}
    classes = {i: c for i, c, _ in meta if i in present}
    scores = {i: float(min(1.0, max(0.0, sc))) for i, _, sc in meta if i in present}
    return PanopticResult(sem, ins, probs, classes, scores)


class _GraphedFrame:
    """The net and :func:`panoptic_postprocess_dense` for one (H, W) frame, captured once in a CUDA graph.

    Inputs are copied into static device buffers through pinned host buffers; outputs come back the same
    way, with one stream synchronisation per frame. A capture failure raises RuntimeError, and the
    backend then runs the eager path.
    """

    def __init__(self, backend: BuiltinBackend, net_hw: tuple[int, int]) -> None:
        H, W = net_hw
        dev = backend.device
        self.backend, self.net_hw = backend, net_hw
        self.rgb = torch.zeros((1, H, W, 3), dtype=torch.uint8, device=dev)
        self.depth = torch.zeros((1, 1, H, W), dtype=torch.float32, device=dev)
        self.host_rgb = torch.zeros((1, H, W, 3), dtype=torch.uint8).pin_memory()
        self.host_depth = torch.zeros((1, 1, H, W), dtype=torch.float32).pin_memory()
        C = backend.net_config.num_classes
        self.host_packed = torch.zeros((2, H, W), dtype=torch.int32).pin_memory()
        self.host_table = torch.zeros((3, backend.post.top_k), dtype=torch.float32).pin_memory()
        self.host_probs = (torch.zeros((C, H, W), dtype=torch.float32).pin_memory()
                           if backend.return_probabilities else None)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_out = None
        self._capture()

    def _body(self):
        b = self.backend
        x = make_net_input(self.rgb.permute(0, 3, 1, 2), self.depth)
        if b.fp16:
            x = x.half()
        out = b.net(x)
        logits = F.interpolate(out["semantic"].float(), size=self.net_hw, mode="bilinear", align_corners=False)
        sem, ins, table = panoptic_postprocess_dense(logits[0], out["center"][0], out["offset"][0], b._thing_lut,
                                                     b.post, out_hw=self.net_hw)
        probs = torch.softmax(logits[0], 0) if self.host_probs is not None else None
        return torch.stack([sem.to(torch.int32), ins.to(torch.int32)]), table, probs

    def _capture(self) -> None:
        side = torch.cuda.Stream(self.backend.device)
        side.wait_stream(torch.cuda.current_stream(self.backend.device))
        with torch.cuda.stream(side):  # warm-up off the capture stream: cuDNN picks its kernels here
            for _ in range(3):
                self._body()
        torch.cuda.current_stream(self.backend.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_out = self._body()
        self.graph = graph

    def __call__(self, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Shape: rgb (H, W, 3) uint8, depth (H, W) float32 -> labels (2, H, W) int32 (class, instance),
        table (3, top_k) float32, probabilities (C, H, W) float32 or None."""
        self.host_rgb[0].numpy()[...] = rgb
        self.host_depth[0, 0].numpy()[...] = depth
        self.rgb.copy_(self.host_rgb, non_blocking=True)
        self.depth.copy_(self.host_depth, non_blocking=True)
        self.graph.replay()
        packed, table, probs = self.static_out
        self.host_packed.copy_(packed, non_blocking=True)
        self.host_table.copy_(table, non_blocking=True)
        if probs is not None:
            self.host_probs.copy_(probs, non_blocking=True)
        torch.cuda.current_stream(self.backend.device).synchronize()
        return (self.host_packed.numpy().copy(), self.host_table.numpy().copy(),
                None if probs is None else self.host_probs.numpy().copy())
