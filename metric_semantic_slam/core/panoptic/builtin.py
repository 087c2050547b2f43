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

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import LabelSpace
from .builtin_net import NetConfig, PanopticNet, PostprocessConfig, make_net_input, panoptic_postprocess
from .letterbox import Letterbox
from .types import PanopticInput, PanopticResult, validate_input

__all__ = ["BuiltinBackend", "default_weights_path"]


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
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"bad device {device!r}: {e}") from e
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        self.fp16 = bool(fp16 if fp16 is not None else self.device.type == "cuda") and self.device.type == "cuda"
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
        boxes = [Letterbox.fit(inp.shape, net_hw) for inp in inputs]
        rgb = np.stack([lb.apply(inp.color) for lb, inp in zip(boxes, inputs)])
        depth = []
        for lb, inp in zip(boxes, inputs):
            if inp.depth_m is None:
                depth.append(np.zeros(net_hw, np.float32))
            else:
                d = np.nan_to_num(inp.depth_m.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
                depth.append(lb.apply(d, nearest=True))  # nearest: no mixing across depth edges
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
                if not lb.is_identity:  # (invert copies through a channels-last view: skip when not needed)
                    probs = lb.invert(probs, channels_first=True).astype(np.float32, copy=False)
            if not lb.is_identity:
                sem_np = lb.invert(sem_np, nearest=True)
                ins_np = lb.invert(ins_np, nearest=True)
            sem_np, ins_np = sem_np.astype(np.uint16), ins_np.astype(np.uint16)
            # resizing can drop a small instance entirely: keep the bookkeeping consistent
            present = set(np.unique(ins_np).tolist()) - {0}
            classes = {i: c for i, c, _ in meta if i in present}
            scores = {i: float(min(1.0, max(0.0, s))) for i, _, s in meta if i in present}
            results.append(PanopticResult(sem_np, ins_np, probs, classes, scores))
        return results
